/* The shim's spec.json for one Space: its SDK template's run command and environment,
 * its tier's limits, its variables and secrets as environment, and the layers of the
 * build it runs (docs: runtimed/shim.h for the format). */
#ifndef SP_RUNTIMED_RUNSPEC_H
#define SP_RUNTIMED_RUNSPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "store.h"

struct rt_templates;

struct rt_runspec_in {
    const struct rt_templates *templates;
    const struct rt_space *space;
    const struct rt_tier *tier;
    const char *domain;     /* Spaces live at OWNER-NAME.DOMAIN */
    const char *app_layer;  /* DATA/layers/app/<sha>: the commit's files */
    const char *app_mount;  /* RT_BUILD_APP_MOUNT (build.h) */
    const char *deps_mount; /* RT_BUILD_DEPS_MOUNT */
    const char *rootfs;     /* base image; NULL or "": the host's */
    const char *deps_layer; /* DATA/layers/deps/<key>, or "" */
    const char *const *env; /* "KEY=VALUE" from variables then secrets */
    size_t n_env;
    /* Dedicated GPUs (runtimed/gpunode.h): the host device nodes the sandbox binds in and
     * its device cgroup allows, and the units' UUIDs for CUDA_/NVIDIA_VISIBLE_DEVICES.
     * With a rootfs the host's NVIDIA driver files are bound in read-only too. */
    const char *const *gpu_nodes;
    size_t n_gpu_nodes;
    const char *gpu_visible; /* "GPU-...,GPU-..." or NULL */
    /* The resolvers a Space with egress gets (rt_config.space_nameservers): space-separated,
     * "" or NULL none.  Written to resolv.conf beside spec.json, bound at /etc/resolv.conf. */
    const char *nameservers;
};

/* What the supervisor needs to watch the app. */
struct rt_runspec_out {
    uint16_t port;
    char health_path[256];
    uint64_t health_interval_ms;
    uint64_t health_timeout_ms;
    uint64_t startup_timeout_ms;
};

/* True when the host forwards IPv4: Spaces then get egress (public addresses only). */
bool rt_runspec_host_forwards(void);

/* Writes @path (spec.json).  Returns 0, or -errno with the reason a Space author can
 * act on (a broken README, an unsupported SDK). */
int rt_runspec_write(const struct rt_runspec_in *in, const char *path, struct rt_runspec_out *ret,
                     struct rt_err *err);

#endif
