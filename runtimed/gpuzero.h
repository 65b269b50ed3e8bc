/* ZeroGPU in runtimed: the `spaces` device API (gpu-sched/devapi.h) served to every
 * running Space on a zero tier, over the node's ZeroGPU pool (gpunode.h).
 *
 * Reachable only from inside a Space's sandbox: each running instance gets its own
 * listening socket, made by a short-lived thread that setns()'d into the sandbox's
 * network namespace and bound 127.0.0.1:RT_GPUZERO_PORT there (a socket keeps the
 * namespace it was made in).  So the listener itself says which Space calls; the
 * cgroupPath the client sends is never trusted.  The port is the same in every
 * sandbox, so the Space's environment (SPACES_ZERO_DEVICE_API_URL) is known before
 * the app starts and a restarted runtimed re-creates the same listener.
 *
 * Device access (gpuzero-cg.h, cgroup v1 or v2): the sandbox binds the pool's nodes
 * (spec "gpus") without allowing them (spec "gpusDeferred"), so its app can never open
 * one, not even before attach isolates it; /allow moves the worker into a group that
 * allows the sandbox's base devices and exactly the leased unit's nodes (v2: the
 * sandbox group's own program allows the pool too, through the shim's "allow-gpus",
 * once the app is in main).  Expiry or death: the worker is killed through its pidfd
 * and its group goes.
 *
 * One thread runs the device API's epoll loop; every call here takes the same lock. */
#ifndef SP_RUNTIMED_GPUZERO_H
#define SP_RUNTIMED_GPUZERO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conftable.h"
#include "error.h"

#define RT_GPUZERO_PORT 7911 /* inside each zero Space's own network namespace */

struct rt_gpunode;
struct rt_gpuzero;

struct rt_gpuzero_config {
    struct rt_gpunode *gpus;    /* the pool: rt_gpunode_zero_slots() */
    const char *visitor_secret; /* the proxy token (its visitor key signs X-IP-Token) */
};

/* Creates the device API over the pool and starts its thread.  A pool of 0 units is
 * -ENODEV (no ZeroGPU on this node). */
int rt_gpuzero_new(const struct rt_gpuzero_config *cfg, struct rt_gpuzero **ret,
                   struct rt_err *err);
/* rt_gpuzero_new() for this node: the pool of @gpus, the visitor key from
 * DATA_DIR/proxy.token (as spaceproxy derives it).  *ret is NULL when the node has no
 * pool.  Returns 0 or -errno. */
int rt_gpuzero_for_node(struct rt_gpunode *gpus, const char *data_dir, struct rt_gpuzero **ret,
                        struct rt_err *err);
/* Stops the thread and frees.  Workers are not killed (their Spaces own them). */
void rt_gpuzero_free(struct rt_gpuzero *z);

/* Appends what a zero Space's sandbox needs to its environment ("K=V": SPACES_ZERO_GPU,
 * SPACES_ZERO_DEVICE_API_URL, ZEROGPU_CUDA_DEVICE_NAME, ZEROGPU_CUDA_TOTAL_MEMORY) and
 * to nodes[*n..cap) (host device nodes to bind in: every pool unit's; the strings live
 * as long as @z).  -ENOMEM, -ENOSPC. */
int rt_gpuzero_sandbox(struct rt_gpuzero *z, struct rt_strv *env, const char **nodes, size_t *n,
                       size_t cap);

/* A zero Space's instance runs: deny the pool in its device cgroup (v2: then the shim's
 * "allow-gpus", for the workers' groups below), then listen inside its network
 * namespace.  @key names the instance (its state dir); @pid is its sandbox
 * init as the host sees it.  Called at start and again at reattach. */
int rt_gpuzero_attach(struct rt_gpuzero *z, const char *key, const char *space, pid_t pid,
                      struct rt_err *err);
/* The instance stops (or stopped): its listener closes, the Space's leases end (their
 * workers killed) and its worker groups are removed. */
void rt_gpuzero_detach(struct rt_gpuzero *z, const char *key, const char *space);

/* GET /api/admin/gpu-leases: {"pool", "queueSize", "leases": [...], "queue": [...],
 * "stats": {...}}. */
json_t *rt_gpuzero_leases_json(struct rt_gpuzero *z);
/* The quota of @identity (NULL: @space's own) and, with @space, its leases and queued
 * requests.  @token: an X-IP-Token to verify instead (NULL: none). */
json_t *rt_gpuzero_quota_json(struct rt_gpuzero *z, const char *token, const char *identity,
                              int cls, const char *space);

#endif
