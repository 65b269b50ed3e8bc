/* Unit tests for ZeroGPU's device cgroups (runtimed/gpuzero-cg.c), for real on this
 * machine: a temporary "sandbox" group holding an app process and a worker process, a
 * fake GPU node on a LOCAL/EXPERIMENTAL major (opening it allowed is ENXIO, denied
 * EPERM), under cgroup v1 (devices hierarchy) and v2 (the unified hierarchy, eBPF).  Each
 * part skips when its hierarchy or privilege is missing. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tap.h"
#include "cleanup.h"
#include "devcg.h"
#include "runtimed/gpuzero-cg.h"
#include "util.h"

#define V1_ROOT "/sys/fs/cgroup/devices"
#define V2_ROOT "/sys/fs/cgroup/unified"

static char node_dir[128], node[160];
static struct gpu_unit unit;

static int cur_ver;

/* "vN: @s", for is_int's plain names. */
static const char *nm(const char *s)
{
    static char buf[4][160];
    static unsigned i;
    char *b = buf[i++ % 4];

    (void) snprintf(b, sizeof(buf[0]), "v%d: %s", cur_ver, s);
    return b;
}

static int write_str(const char *path, const char *s)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    return write(fd, s, strlen(s)) == (ssize_t) strlen(s) ? 0 : -errno;
}

/* A process that opens what it is told: one byte 'n' (the fake node) or 'z' (/dev/null)
 * in, the errno of the open (0: opened) out; EOF ends it. */
struct proc {
    pid_t pid;
    int cmd, res;
};

static int spawn(struct proc *p, const char *procs)
{
    int a[2], b[2];

    if (pipe2(a, O_CLOEXEC) < 0 || pipe2(b, O_CLOEXEC) < 0)
        return -1;
    p->pid = fork();
    if (p->pid == 0) {
        char c;

        if (write_str(procs, "0") < 0)
            _exit(100);
        while (read(a[0], &c, 1) == 1) {
            int fd = open(c == 'n' ? node : "/dev/null", O_RDWR | O_CLOEXEC),
                e = fd < 0 ? errno : 0;

            fd = rt_close(fd);
            if (write(b[1], &e, sizeof(e)) != sizeof(e))
                _exit(101);
        }
        _exit(0);
    }
    (void) close(a[0]);
    (void) close(b[1]);
    p->cmd = a[1];
    p->res = b[0];
    return 0;
}

static int probe(struct proc *p, char what)
{
    int e = -1;

    if (write(p->cmd, &what, 1) != 1 || read(p->res, &e, sizeof(e)) != sizeof(e))
        return -1;
    return e;
}

/* Ends @p.  Never kill() a pid <= 1: -1 would signal every process on the machine. */
static void reap(struct proc *p)
{
    p->cmd = rt_close(p->cmd);
    p->res = rt_close(p->res);
    if (p->pid > 1) {
        (void) kill(p->pid, SIGKILL);
        (void) waitpid(p->pid, NULL, 0);
    }
    p->pid = 0;
}

static bool in_group(pid_t pid, const char *suffix)
{
    char path[64], buf[1024];
    _cleanup_close_ int fd = -1;
    ssize_t n;

    (void) snprintf(path, sizeof(path), "/proc/%d/cgroup", (int) pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    n = fd < 0 ? -1 : rt_read_all(fd, buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = '\0';
    return strstr(buf, suffix) != NULL;
}

static void run(int ver, const char *root)
{
    const struct gpu_unit *units[1] = { &unit };
    struct zcg cg = { .ver = ver };

    cur_ver = ver;
    struct rt_err err = { 0 };
    struct proc app, worker;
    char procs[ZCG_PATH + 32], dir[ZCG_PATH + 32];
    struct rt_dev_rule rules[2] = {
        { 'c', 1, 3, RT_DEV_READ | RT_DEV_WRITE },
        { 'c', (int) unit.nodes[0].major, (int) unit.nodes[0].minor, RT_DEV_READ | RT_DEV_WRITE },
    };
    int r, prog = -1;

    (void) snprintf(cg.dir, sizeof(cg.dir), "%s/spaceport-test-zerocg-%d", root, (int) getpid());
    if (access(root, W_OK) < 0 || mkdir(cg.dir, 0755) < 0) {
        ok(1, "# skip v%d: no writable hierarchy at %s", ver, root);
        return;
    }
    app.pid = worker.pid = 0;
    app.cmd = app.res = worker.cmd = worker.res = -1;
    /* The sandbox as the shim makes it with the pool's nodes deferred in its spec
     * (gpusDeferred): base devices only, the nodes bound but not allowed. */
    if (ver == 1) {
        (void) snprintf(procs, sizeof(procs), "%s/devices.deny", cg.dir);
        (void) write_str(procs, "a");
        (void) snprintf(procs, sizeof(procs), "%s/devices.allow", cg.dir);
        (void) write_str(procs, "c 1:3 rwm");
    } else {
        _cleanup_close_ int fd = open(cg.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        prog = fd < 0 ? -1 : rt_devcg_v2_attach(fd, rules, 1, -1, &err);
        if (!ok(prog >= 0, "v2: the shim's program (base devices)"))
            goto out;
    }
    (void) snprintf(procs, sizeof(procs), "%s/cgroup.procs", cg.dir);
    if (!ok(spawn(&app, procs) == 0 && spawn(&worker, procs) == 0, "v%d: app and worker", ver))
        goto out;
    /* each answers only once it joined the group */
    is_int(probe(&app, 'z'), 0, nm("/dev/null opens"));
    is_int(probe(&worker, 'z'), 0, nm("in the worker too"));
    /* issue #12: allowed at spawn, an app could open a node here and keep the fd */
    is_int(probe(&app, 'n'), EPERM, nm("before isolation the app cannot open the pool"));
    r = zcg_isolate(&cg, unit.nodes, unit.n_nodes, &err);
    if (r < 0)
        printf("# %s\n", err.msg);
    is_int(r, 0, nm("isolated"));
    if (ver == 2) {
        /* the shim's allow-gpus, the app being in main (v1: never) */
        _cleanup_close_ int fd = open(cg.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int p = fd < 0 ? -1 : rt_devcg_v2_attach(fd, rules, 2, prog, &err);

        if (ok(p >= 0, "v2: the shim's program allows the pool (allow-gpus)")) {
            (void) close(prog);
            prog = p;
        }
    }
    is_int(probe(&app, 'n'), EPERM, nm("the app cannot open the pool's node"));
    is_int(probe(&app, 'z'), 0, nm("but its base devices"));
    if (ver == 2)
        ok(in_group(app.pid, "-zerocg-") && in_group(app.pid, "/main\n"), "v2: the app is in main");
    is_int(zcg_isolate(&cg, unit.nodes, unit.n_nodes, &err), 0, nm("again (a reattach)"));
    is_int(zcg_host_pid(&cg, units, 1, worker.pid), worker.pid, nm("the worker is found"));
    is_int(zcg_host_pid(&cg, units, 1, getpid()), 0, nm("a process outside is not"));
    r = zcg_worker_add(&cg, &unit, worker.pid, &err);
    if (r < 0)
        printf("# %s\n", err.msg);
    is_int(r, 0, nm("worker allowed"));
    is_int(probe(&worker, 'n'), ENXIO, nm("the worker opens its unit (ENXIO: fake)"));
    is_int(probe(&worker, 'z'), 0, nm("and its base devices"));
    is_int(probe(&app, 'n'), EPERM, nm("the app still cannot"));
    is_int(zcg_host_pid(&cg, units, 1, worker.pid), worker.pid, nm("found in its group"));
    zcg_worker_dir(&cg, unit.index, dir, sizeof(dir));
    zcg_worker_end(&cg, &unit, true);
    {
        int ws = 0;
        pid_t w = 0;

        for (int i = 0; i < 400 && w == 0; i++) /* bounded: never hang on a survivor */
            if ((w = waitpid(worker.pid, &ws, WNOHANG)) == 0)
                usleep(5000);
        ok(w == worker.pid && WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL,
           "v%d: the worker was killed", ver);
        if (w == worker.pid)
            worker.pid = 0; /* reaped */
    }
    ok(access(dir, F_OK) < 0, "v%d: and its group is gone", ver);
    reap(&worker);
    zcg_release(&cg, units, 1);
    /* Between the release and the shim's kill the app runs on (its stop grace): back in
     * the sandbox group, whose own program allows the pool, it must still be denied. */
    is_int(probe(&app, 'n'), EPERM, nm("released, the app still cannot open the pool"));
    is_int(probe(&app, 'z'), 0, nm("but its base devices"));
    if (ver == 2) {
        (void) snprintf(dir, sizeof(dir), "%s/main", cg.dir);
        ok(access(dir, F_OK) < 0 && !in_group(app.pid, "/main"), "v2: at stop the app leaves main");
    }
out:
    (void) rt_close(prog);
    reap(&app);
    reap(&worker);
    for (int i = 0; i < 200 && rmdir(cg.dir) < 0 && errno == EBUSY; i++)
        usleep(5000);
    ok(access(cg.dir, F_OK) < 0, "v%d: the sandbox group can be removed", ver);
}

int main(void)
{
    tap_start();
    if (geteuid() != 0) {
        ok(1, "# skip needs root (cgroups, mknod)");
        return tap_done();
    }
    /* /dev: a devtmpfs, where device nodes work (a nodev /tmp would refuse them all) */
    (void) snprintf(node_dir, sizeof(node_dir), "/dev/spaceport-test-zerocg-%d", (int) getpid());
    (void) snprintf(node, sizeof(node), "%s/nvidia0", node_dir);
    if (!ok(mkdir(node_dir, 0700) == 0 && mknod(node, S_IFCHR | 0600, makedev(120, 0)) == 0,
            "a fake GPU node on major 120"))
        return tap_done();
    unit.index = 0;
    unit.n_nodes = 1;
    (void) snprintf(unit.nodes[0].path, sizeof(unit.nodes[0].path), "%s", node);
    unit.nodes[0].major = 120;
    unit.nodes[0].minor = 0;
    run(1, V1_ROOT);
    run(2, V2_ROOT);
    (void) unlink(node);
    (void) rmdir(node_dir);
    return tap_done();
}
