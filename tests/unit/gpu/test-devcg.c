/* Unit tests for device-cgroup rules, for real on this machine: a temporary v1
 * devices cgroup (rules written, devices.list read back, a child moved in and
 * its opens checked), and a temporary v2 cgroup with the eBPF program.  Each
 * part skips when its hierarchy or privilege is missing. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tap.h"
#include "cleanup.h"
#include "gpu-sched/gpu.h"
#include "util.h"

#define V1_ROOT "/sys/fs/cgroup/devices"
#define V2_ROOT "/sys/fs/cgroup/unified"

static int write_str(const char *path, const char *s)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    return write(fd, s, strlen(s)) == (ssize_t) strlen(s) ? 0 : -errno;
}

static void read_str(const char *path, char *buf, size_t len)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : rt_read_all(fd, buf, len - 1);

    buf[n > 0 ? n : 0] = '\0';
}

/* Forks a child that joins @procs (a cgroup.procs file), opens /dev/null rw and
 * /dev/zero ro, and reports each result as a bit: 1 = null opened, 2 = zero opened. */
static int probe_child(const char *procs)
{
    pid_t pid = fork();
    int status;

    if (pid < 0)
        return -1;
    if (pid == 0) {
        int code = 0, fd;

        if (write_str(procs, "0") < 0)
            _exit(100);
        fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (fd >= 0)
            code |= 1;
        fd = rt_close(fd);
        fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
            code |= 2;
        fd = rt_close(fd);
        _exit(code);
    }
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static void test_v1(void)
{
    char dir[128], path[160], list[1024];
    struct gpu_config cfg = { .backend = "fake", .fake_spec = "1xa100:80G:mig=1x3g.40gb" };
    struct gpu_inventory *inv = NULL;
    struct rt_err err = { 0 };
    struct gpu_node devnull = { "/dev/null", 1, 3, 0 };

    if (access(V1_ROOT "/devices.allow", W_OK) < 0) {
        ok(1, "# skip no writable cgroup v1 devices hierarchy");
        return;
    }
    (void) snprintf(dir, sizeof(dir), V1_ROOT "/spaceport-gpu-test-%d", (int) getpid());
    if (mkdir(dir, 0755) < 0) {
        ok(0, "mkdir '%s': %s", dir, strerror(errno));
        return;
    }
    (void) snprintf(path, sizeof(path), "%s/devices.list", dir);
    ok(gpu_inventory_load(&cfg, &inv, &err) == 0, "fake MIG inventory");
    /* A new cgroup inherits "a *:* rwm"; start from nothing. */
    (void) snprintf(list, sizeof(list), "%s/devices.deny", dir);
    ok(write_str(list, "a") == 0, "deny all");
    read_str(path, list, sizeof(list));
    is_str(list, "", "devices.list empty");
    is_int(gpu_devcg_v1_allow(dir, inv->units[0].nodes, inv->units[0].n_nodes, &err), 0,
           "allow the MIG unit's nodes");
    read_str(path, list, sizeof(list));
    is_str(list, "c 120:0 rw\nc 120:255 rw\nc 121:0 rw\nc 122:1 rw\nc 122:2 rw\n",
           "devices.list: gpu, ctl, uvm, both caps; not uvm-tools or modeset");
    is_int(gpu_devcg_v1_deny(dir, inv->units[0].nodes, inv->units[0].n_nodes, false, &err), 0,
           "deny the unit but keep shared nodes");
    read_str(path, list, sizeof(list));
    is_str(list, "c 120:255 rw\nc 121:0 rw\n", "only ctl and uvm remain");
    is_int(gpu_devcg_v1_deny(dir, inv->units[0].nodes, inv->units[0].n_nodes, true, &err), 0,
           "deny including shared");
    read_str(path, list, sizeof(list));
    is_str(list, "", "nothing left");

    /* Enforcement: a child in the cgroup may open /dev/null, not /dev/zero. */
    is_int(gpu_devcg_v1_allow(dir, &devnull, 1, &err), 0, "allow /dev/null only");
    (void) snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    is_int(probe_child(path), 1, "child: /dev/null opens, /dev/zero is refused");

    is_int(gpu_devcg_v1_allow("/tmp", &devnull, 1, &err), -EINVAL, "not a cgroup: refused");
    is_str(err.msg, "'/tmp' is not a cgroup v1 directory", "says why");
    ok(rmdir(dir) == 0, "temp cgroup removed: %s", strerror(errno));
    gpu_inventory_free(inv);
}

static void test_v2(void)
{
    char dir[128], procs[160];
    struct rt_dev_rule rules[8];
    size_t n = 0;
    struct gpu_node nodes[] = { { "/dev/nvidia0", 195, 0, 0 },
                                { "/dev/nvidia-uvm-tools", 510, 1, GPU_NODE_OPTIONAL } };
    struct rt_err err = { 0 };
    _cleanup_close_ int cg = -1, prog = -1, prog2 = -1;

    is_int(gpu_dev_rules_from_nodes(nodes, 2, rules, &n, 8), 0, "rules from nodes");
    ok(n == 1 && rules[0].major == 195 && rules[0].type == 'c', "optional node skipped");
    is_int(gpu_dev_rules_from_nodes(nodes, 1, rules, &n, 1), -ENOSPC, "full rule array");
    if (access(V2_ROOT "/cgroup.procs", W_OK) < 0) {
        ok(1, "# skip no writable cgroup v2 hierarchy at " V2_ROOT);
        return;
    }
    (void) snprintf(dir, sizeof(dir), V2_ROOT "/spaceport-gpu-test-%d", (int) getpid());
    (void) snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
    if (mkdir(dir, 0755) < 0) {
        ok(0, "mkdir '%s': %s", dir, strerror(errno));
        return;
    }
    cg = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ok(cg >= 0, "open the cgroup");
    /* Only /dev/null (c 1:3) read-write. */
    rules[0] = (struct rt_dev_rule){ 'c', 1, 3, RT_DEV_READ | RT_DEV_WRITE };
    prog = rt_devcg_v2_attach(cg, rules, 1, -1, &err);
    if (prog == -EPERM || prog == -ENOSYS) {
        ok(1, "# skip bpf not permitted here: %s", err.msg);
    } else {
        ok(prog >= 0, "program loaded and attached: %s", prog < 0 ? err.msg : "ok");
        ok(prog < 0 || (fcntl(prog, F_GETFD) & FD_CLOEXEC), "program fd is close-on-exec");
        is_int(probe_child(procs), 1, "v2 child: /dev/null opens, /dev/zero is refused");
        /* Replace atomically: now /dev/zero read-only too, /dev/null no more. */
        rules[0] = (struct rt_dev_rule){ 'c', 1, 5, RT_DEV_READ };
        prog2 = rt_devcg_v2_attach(cg, rules, 1, prog, &err);
        ok(prog2 >= 0, "replace: %s", prog2 < 0 ? err.msg : "ok");
        is_int(probe_child(procs), 2, "after replace: /dev/zero opens, /dev/null is refused");
        /* A wildcard rule: any char device of major 1, any access. */
        rules[0] = (struct rt_dev_rule){ 'c', 1, -1, 7 };
        {
            int p3 = rt_devcg_v2_attach(cg, rules, 1, prog2, &err);

            ok(p3 >= 0, "replace with a wildcard: %s", p3 < 0 ? err.msg : "ok");
            is_int(probe_child(procs), 3, "major 1, any minor: both open");
            p3 = rt_close(p3);
        }
    }
    rules[0] = (struct rt_dev_rule){ 'x', 1, 3, 7 };
    is_int(rt_devcg_v2_attach(cg, rules, 1, -1, &err), -EINVAL, "bad rule type refused");
    ok(rmdir(dir) == 0, "temp cgroup removed: %s", strerror(errno));
}

int main(void)
{
    tap_start();
    test_v1();
    test_v2();
    return tap_done();
}
