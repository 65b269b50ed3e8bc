/* Unit tests for common/spawn.c: exit codes, exec failures, capture, and no fd leaks. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "../tap.h"
#include "cleanup.h"
#include "spawn.h"

static void test_exit_codes(void)
{
    struct rt_err err = { 0 };
    char out[64];

    is_int(rt_run_capture((const char *const[]){ "true", NULL }, NULL, out, sizeof(out), NULL, 0,
                          &err),
           0, "true exits 0");
    is_int(rt_run_capture((const char *const[]){ "sh", "-c", "exit 7", NULL }, NULL, out,
                          sizeof(out), NULL, 0, &err),
           7, "exit status passed through");
    is_int(rt_run_capture((const char *const[]){ "sh", "-c", "kill -TERM $$", NULL }, NULL, out,
                          sizeof(out), NULL, 0, &err),
           128 + 15, "killed by signal N gives 128+N");
}

static void test_exec_failure(void)
{
    struct rt_err err = { 0 };
    char out[64];
    int r = rt_run_capture((const char *const[]){ "/nonexistent/prog", NULL }, NULL, out,
                           sizeof(out), NULL, 0, &err);

    is_int(r, -ENOENT, "a missing program is an error, not exit 127");
    is_str(err.msg, "exec '/nonexistent/prog'", "the message names the step and program");
    r = rt_run_capture((const char *const[]){ "true", NULL }, "/nonexistent-dir", out, sizeof(out),
                       NULL, 0, &err);
    is_int(r, -ENOENT, "a missing cwd is an error");
    is_str(err.msg, "chdir 'true'", "chdir failure is named");
}

static void test_capture(void)
{
    struct rt_err err = { 0 };
    char out[8], errbuf[64];
    int r =
        rt_run_capture((const char *const[]){ "sh", "-c", "echo 0123456789; echo oops >&2", NULL },
                       NULL, out, sizeof(out), errbuf, sizeof(errbuf), &err);

    is_int(r, 0, "capture runs");
    is_str(out, "0123456", "stdout is truncated to the buffer, NUL-terminated");
    is_str(errbuf, "oops\n", "stderr captured separately");
}

static void test_no_fd_leak(void)
{
    struct rt_err err = { 0 };
    char out[256];
    int fd =
        open("/dev/null", O_RDONLY); /* cloexec-ok: deliberately leaky, the sweep must catch it */
    int r;

    ok(fd >= 0, "opened a non-CLOEXEC fd");
    /* The child lists its fds: 0-2 and the one ls itself opens for the directory. */
    r = rt_run_capture((const char *const[]){ "sh", "-c", "ls /proc/self/fd | wc -l", NULL }, NULL,
                       out, sizeof(out), NULL, 0, &err);
    is_int(r, 0, "ls ran");
    is_str(out, "4\n", "only stdio (and ls's own dir fd) reach the child");
    fd = rt_close(fd);
}

int main(void)
{
    tap_start();
    test_exit_codes();
    test_exec_failure();
    test_capture();
    test_no_fd_leak();
    return tap_done();
}
