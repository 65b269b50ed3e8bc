/* ZeroGPU device cgroups (private to gpuzero.c; tests/unit/rtlife/test-zerocg.c): the
 * app of a zero Space may not open the pool's GPUs, a worker allowed by /allow may open
 * exactly its unit.
 *
 *  The sandbox's spec defers the pool's nodes (bound, not allowed at spawn), so the
 *  app can never open one before zcg_isolate.
 *
 *  - cgroup v1 (devices on its own hierarchy): the sandbox's group never allows the
 *    pool's nodes (zcg_isolate denies them again, harmlessly); a worker moves, in the devices hierarchy only, into the sibling group
 *    "<sandbox group>.gpu-<index>", which allows the sandbox's base devices (copied from
 *    its devices.list) and the unit's nodes.  A sibling, because a v1 child can never
 *    allow more than its parent, and the shim cannot remove a sandbox group that has
 *    children.
 *  - cgroup v2 (eBPF): an ancestor's program applies to every descendant, so the app
 *    moves into "<sandbox group>/main" (base devices only) and a worker into
 *    "<sandbox group>/gpu-<index>" (base + its unit); only then does the sandbox
 *    group's own program (the shim's) allow the pool, through the shim's "allow-gpus"
 *    (gpuzero.c); both leave again at stop, so the
 *    shim finds its group as it made it.  Memory, pids and freezing stay the sandbox
 *    group's (they cover the subtree). */
#ifndef SP_RUNTIMED_GPUZERO_CG_H
#define SP_RUNTIMED_GPUZERO_CG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"
#include "gpu-sched/gpu.h"

#define ZCG_PATH 512

struct zcg {
    int ver;            /* 1 or 2 */
    char dir[ZCG_PATH]; /* the sandbox's devices group (v1) or its group (v2) */
};

/* Where the devices controller is mounted: the v1 devices hierarchy, else the cgroup2
 * mount ("" each when absent). */
void zcg_roots(char v1[ZCG_PATH], char v2[ZCG_PATH]);

/* The group of @pid that device rules apply to.  @v1root "": devices is not on v1. */
int zcg_of_pid(const char *v1root, const char *v2root, pid_t pid, struct zcg *ret,
               struct rt_err *err);

/* The sandbox's own processes lose the pool's @nodes (v2: moved into main).  Idempotent
 * (a reattach calls it again). */
int zcg_isolate(const struct zcg *cg, const struct gpu_node *nodes, size_t n, struct rt_err *err);

/* The group a worker of unit @index goes into. */
void zcg_worker_dir(const struct zcg *cg, unsigned index, char *buf, size_t len);

/* Moves the host pid @pid into @u's worker group, which allows the base devices and @u. */
int zcg_worker_add(const struct zcg *cg, const struct gpu_unit *u, pid_t pid, struct rt_err *err);

/* The worker of @u lost the unit (it was killed or died): its group denies the unit
 * (v1) and goes once empty.  With @kill, whatever is still in it is SIGKILLed first
 * (workers a previous runtimed allowed). */
void zcg_worker_end(const struct zcg *cg, const struct gpu_unit *u, bool kill);

/* The host pid of the process that is @pid inside the sandbox, among the sandbox's
 * processes (its group, main, and the worker groups of @units); 0 when none. */
pid_t zcg_host_pid(const struct zcg *cg, const struct gpu_unit *const *units, size_t n, pid_t pid);

/* The sandbox stops: v2 moves its processes back out of main and removes main, the
 * pool still denied to them (a base-only program on the sandbox group too); both
 * remove the worker groups of @units that are empty. */
void zcg_release(const struct zcg *cg, const struct gpu_unit *const *units, size_t n);

#endif
