/* Unit tests for sandbox/cgroup.c: detection from mountinfo, and create / limits / freeze /
 * OOM counters / destroy on fake v1 and v2 cgroupfs trees, then for real on this host's
 * hierarchies (v1 here) when run as root. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tap.h"
#include "devcg.h"
#include "sandbox/sandbox.h"

static char tmp[256];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static const char *read_file(const char *path)
{
    static char buf[512];
    FILE *f = fopen(path, "re");
    size_t n;

    buf[0] = '\0';
    if (!f)
        return "(missing)";
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    return remove(p);
}

static void test_detect(void)
{
    struct sbx_cgroup_host h;
    struct rt_err err = { 0 };
    char mi[300], path[600], v2[300];

    (void) snprintf(mi, sizeof(mi), "%s/mountinfo", tmp);
    (void) snprintf(v2, sizeof(v2), "%s/unified", tmp);
    (void) mkdir(v2, 0755);
    (void) snprintf(path, sizeof(path), "%s/cgroup.controllers", v2);
    write_file(path, "hugetlb\n");
    {
        char text[2048];
        (void) snprintf(text, sizeof(text),
                        "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
                        "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu,cpuacct\n"
                        "33 31 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
                        "34 31 0:31 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
                        "35 31 0:32 /sub /elsewhere rw - cgroup cgroup rw,freezer\n"
                        "36 31 0:33 / %s rw - cgroup2 cgroup2 rw\n",
                        v2);
        write_file(mi, text);
    }
    is_int(sbx_cgroup_host_detect(mi, &h, &err), 0, "hybrid mountinfo parses");
    is_str(h.v1[SBX_CTL_CPU], "/sys/fs/cgroup/cpu", "cpu co-mounted with cpuacct is found");
    is_str(h.v1[SBX_CTL_MEMORY], "/sys/fs/cgroup/memory", "memory on v1");
    is_str(h.v1[SBX_CTL_FREEZER], "", "a bind of a sub-directory is not a hierarchy root");
    is_str(h.v2, v2, "the cgroup2 mount");
    is_int(h.v2_mask, 0, "v2 holds only hugetlb (as on this host)");
    is_int(sbx_cgroup_host_version(&h, SBX_CTL_MEMORY), 1, "memory driven on v1");
    is_int(sbx_cgroup_host_version(&h, SBX_CTL_FREEZER), 2, "freezer falls back to v2's built-in");
    is_int(sbx_cgroup_host_version(&h, SBX_CTL_DEVICES), 2,
           "devices not on v1: v2's eBPF device program");
    is_int(sbx_cgroup_host_detect("/nonexistent/mountinfo", &h, &err), -ENOENT,
           "missing mountinfo is an error");
}

static void test_fake_v2(void)
{
    struct sbx_cgroup_host h = { .fake = true };
    struct sbx_cgroup_limits lim = { .memory_max = 64 << 20, .pids_max = 100, .cpu_milli = 500 };
    struct sbx_cgroup_limits back;
    struct sbx_cgroup *cg = NULL;
    struct rt_err err = { 0 };
    char p[600];
    uint64_t kills = 0;

    (void) snprintf(h.v2, sizeof(h.v2), "%s/v2", tmp);
    (void) mkdir(h.v2, 0755);
    h.v2_mask = (1u << SBX_CTL_CPU) | (1u << SBX_CTL_MEMORY) | (1u << SBX_CTL_PIDS);
    is_int(sbx_cgroup_create(&h, "spaceport", "t1", &lim, &cg, &err), 0, "v2 group created");
    if (!cg) {
        printf("# %s\n", err.msg);
        return;
    }
    (void) snprintf(p, sizeof(p), "%s/cgroup.subtree_control", h.v2);
    is_str(read_file(p), "+cpu +memory +pids", "controllers enabled at the root");
    (void) snprintf(p, sizeof(p), "%s/spaceport/cgroup.subtree_control", h.v2);
    is_str(read_file(p), "+cpu +memory +pids", "and in the parent");
    is_str(sbx_cgroup_path(cg, SBX_CTL_MEMORY), sbx_cgroup_path(cg, SBX_CTL_PIDS),
           "one directory for every v2 controller");
    (void) snprintf(p, sizeof(p), "%s/spaceport/t1/memory.max", h.v2);
    is_str(read_file(p), "67108864", "memory.max");
    (void) snprintf(p, sizeof(p), "%s/spaceport/t1/memory.swap.max", h.v2);
    is_str(read_file(p), "0", "no swap by default");
    (void) snprintf(p, sizeof(p), "%s/spaceport/t1/memory.oom.group", h.v2);
    is_str(read_file(p), "1", "OOM kills the whole group");
    (void) snprintf(p, sizeof(p), "%s/spaceport/t1/pids.max", h.v2);
    is_str(read_file(p), "100", "pids.max");
    (void) snprintf(p, sizeof(p), "%s/spaceport/t1/cpu.max", h.v2);
    is_str(read_file(p), "50000 100000", "cpu.max");
    is_int(sbx_cgroup_read_limits(cg, &back, &err), 0, "limits read back");
    is_int(back.memory_max, lim.memory_max, "memory read back");
    is_int(back.pids_max, 100, "pids read back");
    is_int(back.cpu_milli, 500, "cpu read back");
    is_int(sbx_cgroup_freeze(cg, true, &err), 0, "freeze");
    (void) snprintf(p, sizeof(p), "%s/spaceport/t1/cgroup.freeze", h.v2);
    is_str(read_file(p), "1", "cgroup.freeze written");
    is_int(sbx_cgroup_freeze(cg, false, &err), 0, "thaw");
    is_str(read_file(p), "0", "cgroup.freeze cleared");
    (void) snprintf(p, sizeof(p), "%s/spaceport/t1/memory.events", h.v2);
    write_file(p, "low 0\nhigh 0\nmax 4\noom 1\noom_kill 2\n");
    is_int(sbx_cgroup_oom_kills(cg, &kills, &err), 0, "memory.events parsed");
    is_int(kills, 2, "oom_kill counter");
    is_int(sbx_cgroup_add_pid(cg, 4242, &err), 0, "pid added");
    (void) snprintf(p, sizeof(p), "%s/spaceport/t1/cgroup.procs", h.v2);
    is_str(read_file(p), "4242", "cgroup.procs written");
    is_int(sbx_cgroup_destroy(cg, &err), 0, "destroyed");
    (void) snprintf(p, sizeof(p), "%s/spaceport/t1", h.v2);
    ok(access(p, F_OK) < 0, "directory removed");
}

static void test_fake_v1(void)
{
    static const char *const ctl[] = { "cpu", "memory", "pids", "freezer", "devices" };
    struct sbx_cgroup_host h = { .fake = true };
    struct sbx_cgroup_limits lim = {
        .memory_max = 32 << 20, .swap_max = 16 << 20, .pids_max = 7, .cpu_milli = 1500
    };
    struct sbx_cgroup_limits back;
    struct sbx_cgroup *cg = NULL;
    struct rt_err err = { 0 };
    char p[600], base[300];
    uint64_t kills = 0;

    for (int i = 0; i < 5; i++) {
        (void) snprintf(h.v1[i], sizeof(h.v1[i]), "%s/v1-%s", tmp, ctl[i]);
        (void) mkdir(h.v1[i], 0755);
    }
    is_int(sbx_cgroup_create(&h, "spaceport", "t2", &lim, &cg, &err), 0, "v1 groups created");
    if (!cg) {
        printf("# %s\n", err.msg);
        return;
    }
    (void) snprintf(base, sizeof(base), "%s/v1-memory/spaceport/t2", tmp);
    is_str(sbx_cgroup_path(cg, SBX_CTL_MEMORY), base, "one directory per hierarchy");
    (void) snprintf(p, sizeof(p), "%s/memory.limit_in_bytes", base);
    is_str(read_file(p), "33554432", "memory.limit_in_bytes");
    (void) snprintf(p, sizeof(p), "%s/memory.memsw.limit_in_bytes", base);
    is_str(read_file(p), "50331648", "memsw is memory plus swap");
    (void) snprintf(p, sizeof(p), "%s/v1-pids/spaceport/t2/pids.max", tmp);
    is_str(read_file(p), "7", "pids.max");
    (void) snprintf(p, sizeof(p), "%s/v1-cpu/spaceport/t2/cpu.cfs_quota_us", tmp);
    is_str(read_file(p), "150000", "cfs quota for 1.5 CPUs");
    (void) snprintf(p, sizeof(p), "%s/v1-devices/spaceport/t2/devices.deny", tmp);
    is_str(read_file(p), "a", "devices: deny all first");
    is_int(sbx_cgroup_allow_device(cg, 'c', 195, 0, &err), 0, "allow a GPU node");
    (void) snprintf(p, sizeof(p), "%s/v1-devices/spaceport/t2/devices.allow", tmp);
    is_str(read_file(p), "c 195:0 rw", "devices.allow written");
    is_int(sbx_cgroup_read_limits(cg, &back, &err), 0, "limits read back");
    is_int(back.memory_max, lim.memory_max, "memory");
    is_int(back.swap_max, lim.swap_max, "swap derived from memsw");
    is_int(back.cpu_milli, 1500, "cpu");
    is_int(sbx_cgroup_freeze(cg, true, &err), 0, "freeze via freezer.state");
    (void) snprintf(p, sizeof(p), "%s/v1-freezer/spaceport/t2/freezer.state", tmp);
    is_str(read_file(p), "FROZEN", "freezer.state FROZEN");
    (void) snprintf(p, sizeof(p), "%s/memory.oom_control", base);
    write_file(p, "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
    is_int(sbx_cgroup_oom_kills(cg, &kills, &err), 0, "oom_control parsed");
    is_int(kills, 3, "oom_kill counter");
    is_int(sbx_cgroup_destroy(cg, &err), 0, "destroyed");
    ok(access(base, F_OK) < 0, "directories removed");
    is_int(sbx_cgroup_create(&h, "spaceport", "bad/name", &lim, &cg, &err), -EINVAL,
           "a name with '/' is refused");
}

/* This host: memory, pids, cpu, freezer on v1 (hybrid).  Real files, real kernel. */
static void test_real_host(void)
{
    struct sbx_cgroup_host h;
    struct sbx_cgroup_limits lim = { .memory_max = 48 << 20, .pids_max = 9, .cpu_milli = 250 };
    struct sbx_cgroup_limits back;
    struct sbx_cgroup *cg = NULL;
    struct rt_err err = { 0 };
    char name[64];

    if (geteuid() != 0 || sbx_cgroup_host_detect(NULL, &h, &err) < 0 ||
        sbx_cgroup_host_version(&h, SBX_CTL_MEMORY) == 0) {
        ok(1, "# SKIP real cgroups need root and a memory controller");
        return;
    }
    (void) snprintf(name, sizeof(name), "unit-%d", (int) getpid());
    is_int(sbx_cgroup_create(&h, "spaceport-unit", name, &lim, &cg, &err), 0, "real group created");
    if (!cg) {
        printf("# %s\n", err.msg);
        return;
    }
    is_int(sbx_cgroup_read_limits(cg, &back, &err), 0, "real limits read back");
    is_int(back.memory_max, lim.memory_max, "kernel holds the memory limit");
    is_int(back.pids_max, 9, "kernel holds the pids limit");
    is_int(back.cpu_milli, 250, "kernel holds the cpu quota");
    if (sbx_cgroup_path(cg, SBX_CTL_FREEZER)) {
        is_int(sbx_cgroup_freeze(cg, true, &err), 0, "an empty group freezes");
        is_int(sbx_cgroup_freeze(cg, false, &err), 0, "and thaws");
    }
    {
        char parents[_SBX_CTL_MAX][512];
        int n = 0;
        for (int c = 0; c < _SBX_CTL_MAX; c++) {
            const char *d = sbx_cgroup_path(cg, (enum sbx_ctl) c);
            if (d) {
                (void) snprintf(parents[n], sizeof(parents[n]), "%s", d);
                *strrchr(parents[n++], '/') = '\0';
            }
        }
        is_int(sbx_cgroup_destroy(cg, &err), 0, "real group removed");
        for (int i = 0; i < n; i++)
            (void) rmdir(parents[i]); /* the unit test's own parent, empty now */
    }
}

/* In a child moved into @cg: 0 when @path opens, else errno. */
static int open_in(struct sbx_cgroup *cg, const char *path)
{
    struct rt_err err = { 0 };
    int st = 0;
    pid_t pid = fork();

    if (pid == 0) {
        int fd;
        if (sbx_cgroup_add_pid(cg, getpid(), &err) < 0)
            _exit(100);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        _exit(fd >= 0 ? 0 : errno);
    }
    if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

/* A group of the cgroup2 mount alone, as a pure v2 host has (on this hybrid host the
 * devices controller is on v1): spaceport-unit/PREFIX-PID, or NULL (skipped, or the
 * failure printed) when there is no such mount or no root. */
static struct sbx_cgroup *real_v2_group(const char *prefix, const char *what)
{
    struct sbx_cgroup_host real, h = { 0 };
    struct sbx_cgroup_limits lim = { 0 };
    struct sbx_cgroup *cg = NULL;
    struct rt_err err = { 0 };
    char name[64];

    if (geteuid() != 0 || sbx_cgroup_host_detect(NULL, &real, &err) < 0 || !real.v2[0]) {
        ok(1, "# SKIP the device program needs root and a cgroup2 mount");
        return NULL;
    }
    (void) snprintf(h.v2, sizeof(h.v2), "%s", real.v2);
    (void) snprintf(name, sizeof(name), "%s-%d", prefix, (int) getpid());
    is_int(sbx_cgroup_create(&h, "spaceport-unit", name, &lim, &cg, &err), 0, what);
    if (!cg)
        printf("# %s\n", err.msg);
    return cg;
}

/* The v2 device program, for real: on this hybrid host the devices controller is on v1,
 * so the test drives a group of the cgroup2 mount alone (as a pure v2 host would). */
static void test_real_v2_devices(void)
{
    struct sbx_cgroup *cg = real_v2_group("dev", "v2 group with a device program");
    struct rt_err err = { 0 };
    char parent[600];

    if (!cg)
        return;
    is_int(open_in(cg, "/dev/null"), 0, "/dev/null opens (a minimal /dev's node)");
    is_int(open_in(cg, "/dev/kmsg"), EPERM, "/dev/kmsg does not: default deny");
    is_int(sbx_cgroup_allow_device(cg, 'c', 1, 11, &err), 0, "allow 1:11 (a GPU's way in)");
    is_int(open_in(cg, "/dev/kmsg"), 0, "then /dev/kmsg opens, the program replaced");
    is_int(open_in(cg, "/dev/loop-control"), EPERM, "and /dev/loop-control still does not");
    (void) snprintf(parent, sizeof(parent), "%s", sbx_cgroup_path(cg, SBX_CTL_DEVICES));
    *strrchr(parent, '/') = '\0'; /* spaceport-unit, removed once empty */
    is_int(sbx_cgroup_destroy(cg, &err), 0, "v2 group removed");
    (void) rmdir(parent);
}

/* A process that joins @dir (a v2 group), opens @path and exits with the errno (0). */
static int open_at(const char *dir, const char *path)
{
    char procs[700];
    int st = 0;
    pid_t pid;

    (void) snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
    pid = fork();
    if (pid == 0) {
        int fd;
        FILE *f = fopen(procs, "we");
        if (!f || fprintf(f, "0") < 0 || fclose(f) != 0)
            _exit(100);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        _exit(fd >= 0 ? 0 : errno);
    }
    if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

/* A child group of @parent with its own program allowing /dev/null and, with @kmsg, 1:11. */
static int child_group(const char *parent, const char *name, bool kmsg, char *dir, size_t len)
{
    struct rt_dev_rule rules[] = { { 'c', 1, 3, RT_DEV_READ | RT_DEV_WRITE },
                                   { 'c', 1, 11, RT_DEV_READ | RT_DEV_WRITE } };
    struct rt_err err = { 0 };
    int fd, prog;

    (void) snprintf(dir, len, "%s/%s", parent, name);
    if (mkdir(dir, 0755) < 0 || (fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return -1;
    prog = rt_devcg_v2_attach(fd, rules, kmsg ? 2 : 1, -1, &err);
    (void) close(fd);
    if (prog < 0)
        return -1;
    (void) close(prog); /* the attachment holds it */
    return 0;
}

/* Issue #12, the v2 half of ZeroGPU's deferred devices: /dev/kmsg (1:11) stands in for a
 * pool node the sandbox binds but its group does not allow at spawn.  Nothing in the
 * group, nor in a child that allows it, may open it until sbx_cgroup_allow_below, which
 * waits for the group's own processes to be in a child ("main") that denies it. */
static void test_real_v2_deferred(void)
{
    struct sbx_cgroup *cg = real_v2_group("defer", "v2 sandbox group, its pool node deferred");
    struct rt_err err = { 0 };
    char parent[600], main_dir[700] = "", gpu_dir[700] = "", procs[720], v[32];
    const dev_t kmsg = makedev(1, 11);
    const char *dir;
    pid_t app = -1;
    FILE *f;

    if (!cg)
        return;
    dir = sbx_cgroup_path(cg, SBX_CTL_DEVICES);
    if (!ok(dir && child_group(dir, "main", false, main_dir, sizeof(main_dir)) == 0 &&
                child_group(dir, "gpu-0", true, gpu_dir, sizeof(gpu_dir)) == 0,
            "main (base devices) and gpu-0 (base and 1:11) below it"))
        goto out;
    /* the app: in the sandbox group from its start, as the shim puts it */
    app = fork();
    if (app == 0) {
        if (sbx_cgroup_add_pid(cg, getpid(), &err) < 0)
            _exit(100);
        pause();
        _exit(0);
    }
    for (int i = 0; i < 500; i++) { /* bounded: it joins at once, but the host is busy */
        (void) snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
        if (strlen(read_file(procs)) > 0)
            break;
        usleep(2000);
    }
    is_int(open_at(dir, "/dev/kmsg"), EPERM, "before: a process of the group cannot open it");
    is_int(open_at(gpu_dir, "/dev/kmsg"), EPERM,
           "nor one in a child whose program allows it (every program must)");
    is_int(open_at(dir, "/dev/null"), 0, "the base devices open");
    is_int(sbx_cgroup_allow_below(cg, &kmsg, 1, &err), -EBUSY,
           "allowing it is refused while the app is in the group itself");
    /* runtimed's zcg_isolate: the app moves into main */
    (void) snprintf(procs, sizeof(procs), "%s/cgroup.procs", main_dir);
    (void) snprintf(v, sizeof(v), "%d", (int) app);
    f = fopen(procs, "we");
    ok(f && fputs(v, f) >= 0 && fclose(f) == 0, "the app moved into main");
    err.msg[0] = '\0';
    is_int(sbx_cgroup_allow_below(cg, &kmsg, 1, &err), 0, "then allowed (allow-gpus)");
    if (err.msg[0])
        printf("# %s\n", err.msg);
    is_int(open_at(gpu_dir, "/dev/kmsg"), 0, "a worker's group opens it");
    is_int(open_at(main_dir, "/dev/kmsg"), EPERM, "the app's (main) still cannot");
    is_int(sbx_cgroup_allow_below(cg, &kmsg, 1, &err), 0, "again (a reattach): idempotent");
    is_int(open_at(gpu_dir, "/dev/kmsg"), 0, "the worker still opens it");
    is_int(open_at(main_dir, "/dev/kmsg"), EPERM, "the app still cannot");
    is_int(open_at(main_dir, "/dev/null"), 0, "but its base devices");
out:
    if (app > 0) {
        (void) kill(app, SIGKILL);
        (void) waitpid(app, NULL, 0);
    }
    for (int i = 0; i < 200 && ((main_dir[0] && rmdir(main_dir) < 0 && errno == EBUSY) ||
                                (gpu_dir[0] && rmdir(gpu_dir) < 0 && errno == EBUSY));
         i++)
        usleep(5000);
    (void) snprintf(parent, sizeof(parent), "%s", sbx_cgroup_path(cg, SBX_CTL_DEVICES));
    *strrchr(parent, '/') = '\0'; /* spaceport-unit, removed once empty */
    is_int(sbx_cgroup_destroy(cg, &err), 0, "v2 group removed");
    (void) rmdir(parent);
}

int main(void)
{
    tap_start();
    (void) snprintf(tmp, sizeof(tmp), "/tmp/sbx-cgtest-XXXXXX");
    if (!mkdtemp(tmp)) {
        printf("1..0 # SKIP mkdtemp failed\n");
        return 0;
    }
    test_detect();
    test_fake_v2();
    test_fake_v1();
    test_real_host();
    test_real_v2_devices();
    test_real_v2_deferred();
    (void) nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return tap_done();
}
