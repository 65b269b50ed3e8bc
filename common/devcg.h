/* Device access for cgroup v2, which has no devices.allow: the kernel runs a
 * BPF_PROG_TYPE_CGROUP_DEVICE program on every open and mknod of a device node in the
 * cgroup and allows it when the program returns 1.  rt_devcg_v2_attach() builds a
 * straight-line allowlist (default deny; the shape runc and crun generate) and
 * attaches it.  Used by libsandbox (every sandbox's devices) and gpu-sched. */
#ifndef SP_COMMON_DEVCG_H
#define SP_COMMON_DEVCG_H

#include <stddef.h>

#include "error.h"

struct rt_dev_rule {
    char type;        /* 'c', 'b' or 'a' (any) */
    int major, minor; /* -1: any */
    unsigned access;  /* RT_DEV_READ | RT_DEV_WRITE | RT_DEV_MKNOD */
};
enum {
    RT_DEV_MKNOD = 1u << 0, /* the kernel's BPF_DEVCG_ACC_* values */
    RT_DEV_READ = 1u << 1,
    RT_DEV_WRITE = 1u << 2,
};

/* Loads a program allowing exactly @rules and attaches it to @cgroup_fd (a cgroup v2
 * directory) with BPF_F_ALLOW_MULTI, atomically replacing the program @replace_fd when
 * it is >= 0.  With several programs on a cgroup path the kernel allows only what all of
 * them allow.  Returns the new program's fd (close-on-exec; keep it to replace the
 * program later), or -errno with the verifier's words when it refused. */
int rt_devcg_v2_attach(int cgroup_fd, const struct rt_dev_rule *rules, size_t n, int replace_fd,
                       struct rt_err *err);

#endif
