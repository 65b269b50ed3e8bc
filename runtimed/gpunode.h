/* This node's GPUs as runtimed sees them: the inventory (gpu-sched, backend nvml, fake
 * or none), who holds which unit (a Space id, "@zerogpu" for the ZeroGPU pool, or
 * nobody), and what a holder's sandbox needs (device nodes, visible-devices string).
 * One per runtimed, created in main.c from the gpu_* config keys; every call takes
 * its own lock, so the API threads and the lifecycle loop share it directly. */
#ifndef SP_RUNTIMED_GPUNODE_H
#define SP_RUNTIMED_GPUNODE_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "gpu-sched/gpu.h"
#include "gpu-sched/lease.h"

struct rt_tier;

#define RT_GPU_ZERO_HOLDER "@zerogpu"
#define RT_GPU_GRANT_MAX 8  /* units one Space may hold (the Hub's largest tiers: 8) */
#define RT_GPU_NODES_MAX 16 /* nodes of one grant (SBX_MAX_GPUS): each unit's + ctl/uvm */

struct rt_gpunode;

struct rt_gpunode_config {
    const char *backend;      /* "auto" (nvml when the driver loads, else none), "nvml",
                                 "fake", "none" */
    const char *fake_spec;    /* fake: "2xa10g:24G" (gpu-sched/README.md) */
    const char *fake_dev_dir; /* fake: where the nodes are (gpu_fake_mknod); NULL/"":
                                 synthetic /dev/nvidiaN that do not exist (no sandbox use) */
    unsigned zero_gpus;       /* units reserved for the ZeroGPU pool (holder "@zerogpu") */
    const char *zero_kind;    /* their kind; NULL/"": the kind of the node's first unit */
};

/* What one holder got: the units, the host device nodes its sandbox binds in and its
 * device cgroup allows (each unit's, then the shared ones once), and the UUIDs for
 * CUDA_VISIBLE_DEVICES / NVIDIA_VISIBLE_DEVICES ("GPU-a,GPU-b"). */
struct rt_gpu_grant {
    unsigned n_units;
    unsigned units[RT_GPU_GRANT_MAX]; /* inventory indexes */
    size_t n_nodes;
    char nodes[RT_GPU_NODES_MAX][GPU_PATH_MAX];
    char visible[RT_GPU_GRANT_MAX * GPU_UUID_MAX];
};

/* Loads the inventory and reserves the ZeroGPU pool.  -ENODEV: backend nvml without a
 * driver; -EBUSY/-ENOENT: the pool does not fit.  Free with rt_gpunode_free(). */
int rt_gpunode_new(const struct rt_gpunode_config *cfg, struct rt_gpunode **ret,
                   struct rt_err *err);
void rt_gpunode_free(struct rt_gpunode *g);

/* The inventory (immutable after rt_gpunode_new). */
const struct gpu_inventory *rt_gpunode_inventory(const struct rt_gpunode *g);

/* Units of @kind (NULL: any) that nobody holds: what a tier check compares with. */
unsigned rt_gpunode_free_count(struct rt_gpunode *g, const char *kind);
/* Units of @kind the node has at all, held or not. */
unsigned rt_gpunode_count(const struct rt_gpunode *g, const char *kind);

/* Whether this node can give @t now (rt_tiers_check_node() with this node's counts for
 * @t's kind): 0, or -ENODEV with the reason (the API's 422).  Units @holder (a Space id,
 * or NULL) already holds count as free: a Space changing tiers gives its own back.
 * @g NULL: a node without GPUs. */
int rt_gpunode_check_tier(struct rt_gpunode *g, const struct rt_tier *t, const char *holder,
                          struct rt_err *err);

/* Gives @space @count units of @kind, exclusively, all or nothing, and fills *ret.
 * Errors are gpu_alloc_reserve()'s, with its message ("2 'a10g' gpu(s) wanted, 1 of 2
 * free (free: ...)"): -EBUSY, -ENOENT, -EEXIST (already holds: use rt_gpunode_held). */
int rt_gpunode_reserve(struct rt_gpunode *g, const char *space, const char *kind, unsigned count,
                       struct rt_gpu_grant *ret, struct rt_err *err);
/* Fills *ret with what @space holds; returns the number of units (0: none). */
unsigned rt_gpunode_held(struct rt_gpunode *g, const char *space, struct rt_gpu_grant *ret);
/* Frees what @space holds; returns how many units. */
unsigned rt_gpunode_release(struct rt_gpunode *g, const char *space);

/* After a restart: the holdings running shims still have, by UUID (from their specs).
 * Replaces every Space holding; the ZeroGPU pool is kept.  UUIDs the node lacks are
 * counted in *ret_missing; a unit claimed twice is -EINVAL (old state stays). */
int rt_gpunode_rebuild(struct rt_gpunode *g, const struct gpu_holding *h, size_t n,
                       size_t *ret_missing, struct rt_err *err);

/* Stops every later rt_gpunode_reserve() (-EBUSY, saying @why): after a restart whose
 * holdings could not be rebuilt, a unit that looks free may still be in a sandbox, so
 * the node grants nothing until runtimed restarts. */
void rt_gpunode_fence(struct rt_gpunode *g, const char *why);

/* The ZeroGPU pool as slots for gpu_api_new() (nvidia_index = position in the pool).
 * Points into @g; valid until rt_gpunode_free(). */
size_t rt_gpunode_zero_slots(const struct rt_gpunode *g, const struct gpu_slot **ret);
/* The pool's units (inventory indexes), n = rt_gpunode_zero_slots()'s count. */
const unsigned *rt_gpunode_zero_units(const struct rt_gpunode *g);

/* GET /api/admin/gpus: {"backend", "driver", "gpus", "units": [{index, uuid, name,
 * kind, memory, nodes: [...], holder: "owner/name" | "@zerogpu" | null}], "free": {kind:
 * n}}.  Returns malloc'd text or NULL (ENOMEM). */
char *rt_gpunode_json(struct rt_gpunode *g);

#endif
