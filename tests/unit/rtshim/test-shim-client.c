/* Unit tests for runtimed/shim-client.c against the real bin/spaceport-shim: start a
 * detached shim, ask its status, stop it, read how it ended.  Needs root; run from the
 * repository root (prove does). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../tap.h"
#include "runtimed/shim.h"
#include "spawn.h"
#include "util.h"

static void write_spec(const char *dir, const char *json)
{
    char path[PATH_MAX];
    FILE *f;

    (void) snprintf(path, sizeof(path), "%s/spec.json", dir);
    f = fopen(path, "we");
    if (f) {
        fputs(json, f);
        fclose(f);
    }
}

static int wait_exited(const char *dir, struct rt_shim_status *st)
{
    struct rt_err err;

    for (int i = 0; i < 200; i++) {
        if (rt_shim_read_status(dir, st, &err) == 0 && strcmp(st->state, "exited") == 0)
            return 0;
        usleep(50 * 1000);
    }
    return -ETIMEDOUT;
}

int main(void)
{
    struct rt_err err = { 0 };
    struct rt_shim_status st;
    char tmp[] = "/tmp/spt-shim-XXXXXX", bin[PATH_MAX], cwd[PATH_MAX];

    if (geteuid() != 0) {
        printf("1..0 # SKIP the shim runs sandboxes, which need root\n");
        return 0;
    }
    tap_start();
    if (!mkdtemp(tmp) || !getcwd(cwd, sizeof(cwd)))
        return 1;
    (void) snprintf(bin, sizeof(bin), "%s/bin/spaceport-shim", cwd);

    write_spec(tmp, "{\"id\": \"a/b\", \"argv\": [\"/bin/sleep\", \"60\"], \"net\": \"none\"}");
    is_int(rt_shim_start(bin, tmp, &err), 0, "start a shim");
    if (err.code)
        printf("# %s\n", err.msg);
    is_int(rt_shim_command(tmp, "status", &st, &err), 0, "ask its status");
    is_str(st.state, "running", "it runs");
    ok(st.pid > 0 && st.shim_pid > 0 && st.pid != st.shim_pid, "with a sandbox pid and its own");
    is_int(rt_shim_command(tmp, "dance", &st, &err), -EINVAL, "an unknown command is refused");
    ok(strstr(err.msg, "unknown command") != NULL, "saying so");
    is_int(rt_shim_command(tmp, "stop 0", &st, &err), 0, "stop it at once");
    is_int(wait_exited(tmp, &st), 0, "it ends");
    is_str(st.reason, "killed", "killed from outside, and the reason says so");
    is_int(st.code, 128 + 9, "SIGKILL");
    is_int(rt_shim_command(tmp, "status", &st, &err) < 0, 1, "no shim answers afterwards");

    write_spec(tmp, "{\"id\": \"a/b\", \"argv\": [\"/no/such/app\"]}");
    is_int(rt_shim_start(bin, tmp, &err), -EIO, "a sandbox that cannot start is an error");
    ok(strstr(err.msg, "/no/such/app") != NULL, "naming what failed");
    printf("# %s\n", err.msg);

    /* A shim that stopped answering with its listen queue full: the command fails in
     * bounded time instead of blocking its caller (the supervisor) for good. */
    {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), queued[64], nq = 0;
        struct timespec t0, t1;

        (void) snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/shim.sock", tmp);
        (void) unlink(sa.sun_path);
        ok(lfd >= 0 && bind(lfd, (struct sockaddr *) &sa, sizeof(sa)) == 0 && listen(lfd, 0) == 0,
           "a listener that never accepts");
        while (nq < 64) {
            int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
            if (c < 0 || connect(c, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                if (c >= 0)
                    (void) close(c);
                break;
            }
            queued[nq++] = c;
        }
        ok(nq < 64, "its queue fills (%d connections)", nq);
        (void) clock_gettime(CLOCK_MONOTONIC, &t0);
        is_int(rt_shim_command(tmp, "status", &st, &err), -EAGAIN, "a command is refused");
        (void) clock_gettime(CLOCK_MONOTONIC, &t1);
        ok(t1.tv_sec - t0.tv_sec < 10, "in bounded time: %s", err.msg);
        while (nq > 0)
            (void) close(queued[--nq]);
        (void) close(lfd);
        (void) unlink(sa.sun_path);
    }

    /* A shim that cannot even run (a missing library: the loader's 127) says why. */
    {
        char fake[PATH_MAX + 16];
        FILE *f;

        (void) snprintf(fake, sizeof(fake), "%s/fake-shim", tmp);
        f = fopen(fake, "we");
        if (f) {
            fputs("#!/bin/sh\necho 'fake-shim: error while loading shared libraries: "
                  "libx.so.1' >&2\nexit 127\n",
                  f);
            fclose(f);
        }
        (void) chmod(fake, 0755);
        is_int(rt_shim_start(fake, tmp, &err), -EIO, "a shim that exits at once is an error");
        ok(strstr(err.msg, "status 127") && strstr(err.msg, "libx.so.1"),
           "with its status and the last line it wrote: %s", err.msg);
    }

    {
        char cmd[PATH_MAX + 16];
        (void) snprintf(cmd, sizeof(cmd), "%s", tmp);
        (void) rt_run_capture((const char *const[]){ "rm", "-rf", cmd, NULL }, NULL, NULL, 0, NULL,
                              0, &err);
    }
    return tap_done();
}
