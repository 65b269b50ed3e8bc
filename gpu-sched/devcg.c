/* Device-cgroup rules for GPU nodes, cgroup v1: one "c MAJ:MIN rw" line per
 * write to devices.allow / devices.deny (the kernel parses one rule per write).
 * This is what libnvidia-container writes for a GPU (research/sandbox.md §6). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "cleanup.h"
#include "gpu.h"
#include "util.h"

#include "banned.h"

#ifndef CGROUP_SUPER_MAGIC
#define CGROUP_SUPER_MAGIC 0x27e0eb
#endif

static int write_rules(const char *cgroup_dir, const char *file, const struct gpu_node *nodes,
                       size_t n, bool include_shared, struct rt_err *err)
{
    _cleanup_close_ int dfd = -1, fd = -1;
    struct statfs st;

    dfd = open(cgroup_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return rt_err_set(err, errno, "open cgroup '%s'", cgroup_dir);
    /* Only a v1 cgroup directory: never write rules into some other file tree. */
    if (fstatfs(dfd, &st) < 0 || st.f_type != CGROUP_SUPER_MAGIC)
        return rt_err_set(err, EINVAL, "'%s' is not a cgroup v1 directory", cgroup_dir);
    fd = openat(dfd, file, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return rt_err_set(err, errno, "open '%s/%s'", cgroup_dir, file);
    for (size_t i = 0; i < n; i++) {
        char rule[48];
        int len;

        if (nodes[i].flags & GPU_NODE_OPTIONAL)
            continue;
        if ((nodes[i].flags & GPU_NODE_SHARED) && !include_shared)
            continue;
        len = snprintf(rule, sizeof(rule), "c %u:%u rw", nodes[i].major, nodes[i].minor);
        if (write(fd, rule, (size_t) len) != len)
            return rt_err_set(err, errno ? errno : EIO, "write '%s' to '%s/%s'", rule, cgroup_dir,
                              file);
    }
    return 0;
}

int gpu_devcg_v1_allow(const char *cgroup_dir, const struct gpu_node *nodes, size_t n,
                       struct rt_err *err)
{
    return write_rules(cgroup_dir, "devices.allow", nodes, n, true, err);
}

int gpu_devcg_v1_deny(const char *cgroup_dir, const struct gpu_node *nodes, size_t n,
                      bool include_shared, struct rt_err *err)
{
    return write_rules(cgroup_dir, "devices.deny", nodes, n, include_shared, err);
}

int gpu_dev_rules_from_nodes(const struct gpu_node *nodes, size_t n_nodes,
                             struct rt_dev_rule *rules, size_t *n, size_t cap)
{
    for (size_t i = 0; i < n_nodes; i++) {
        if (nodes[i].flags & GPU_NODE_OPTIONAL)
            continue;
        if (*n >= cap)
            return -ENOSPC;
        rules[(*n)++] = (struct rt_dev_rule){
            .type = 'c',
            .major = (int) nodes[i].major,
            .minor = (int) nodes[i].minor,
            .access = RT_DEV_READ | RT_DEV_WRITE,
        };
    }
    return 0;
}
