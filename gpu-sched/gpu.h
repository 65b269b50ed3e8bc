/* gpu-sched: what GPUs this node has (inventory), who holds which (dedicated
 * allocation), and the device-cgroup rules that let a sandbox open them.
 * ZeroGPU time-slices live in lease.h.  Nothing here logs; errors come back in
 * struct rt_err.  Nothing here blocks except the inventory probe (NVML). */
#ifndef SP_GPU_GPU_H
#define SP_GPU_GPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devcg.h"
#include "error.h"

#define GPU_UUID_MAX 96
#define GPU_NAME_MAX 96
#define GPU_KIND_MAX 48
#define GPU_PATH_MAX 256
#define GPU_NODES_MAX 8

/* Node flags. */
enum {
    GPU_NODE_SHARED = 1u << 0,   /* nvidiactl, nvidia-uvm*: every GPU needs it; deny it only
                                    when the sandbox holds no GPU any more */
    GPU_NODE_OPTIONAL = 1u << 1, /* uvm-tools (profiling) and modeset (display): listed so the
                                    caller can choose, not granted by gpu_devcg_*_nodes() */
};

/* A character device a sandbox must be able to open to use a GPU. */
struct gpu_node {
    char path[GPU_PATH_MAX]; /* on the host, e.g. /dev/nvidia0 */
    unsigned major, minor;
    unsigned flags;
};

/* One allocatable thing: a whole GPU, or one MIG instance of a GPU in MIG mode
 * (then the GPU itself is not allocatable). */
struct gpu_unit {
    unsigned index;          /* position in the inventory; also the ZeroGPU nvidiaIndex */
    unsigned gpu_index;      /* the physical GPU's NVML index (/dev/nvidiaN uses its minor) */
    int mig_gi, mig_ci;      /* MIG GPU / compute instance ids, -1 for a whole GPU */
    char uuid[GPU_UUID_MAX]; /* GPU-... or MIG-...: the CUDA_VISIBLE_DEVICES value */
    char name[GPU_NAME_MAX]; /* as the driver says: "NVIDIA A100-SXM4-80GB MIG 3g.40gb" */
    char kind[GPU_KIND_MAX]; /* what tiers ask for: "a100", "a100-3g.40gb" */
    uint64_t memory;         /* bytes */
    size_t n_nodes;
    struct gpu_node nodes[GPU_NODES_MAX];
};

struct gpu_inventory {
    char backend[16]; /* "nvml", "fake" or "none" */
    char driver[32];  /* driver version, "" when unknown */
    size_t n_gpus;    /* physical GPUs */
    size_t n_units;
    struct gpu_unit *units;
};

/* How to find GPUs; runtimed fills it from its config ([gpu] backend = nvml|fake|none). */
struct gpu_config {
    const char *backend;      /* "nvml" (default), "fake" or "none" */
    const char *nvml_library; /* default "libnvidia-ml.so.1" */
    const char *root;         /* prefix for /proc and /dev (tests), default "" */
    const char *fake_spec;    /* fake: "2xa10g:24G,1xa100:80G:mig=2x3g.40gb" (README) */
    const char *fake_dev_dir; /* fake: directory holding the nodes gpu_fake_mknod() made;
                                 NULL: synthetic nodes, nothing on disk (simulator) */
};

/* Probes the configured backend.  Returns 0 and *ret_inv (free with
 * gpu_inventory_free()), -ENODEV when the NVIDIA driver or library is absent
 * ("none" is never absent: it yields zero GPUs), -EINVAL for a bad fake spec,
 * -ENOENT when a fake node is missing. */
int gpu_inventory_load(const struct gpu_config *cfg, struct gpu_inventory **ret_inv,
                       struct rt_err *err);
void gpu_inventory_free(struct gpu_inventory *inv);

/* NULL when absent. */
const struct gpu_unit *gpu_inventory_find_uuid(const struct gpu_inventory *inv, const char *uuid);

/* Writes the inventory as one JSON object (for gpu-sim and `spacectl gpu list`).
 * Returns the length written (truncated like snprintf). */
size_t gpu_inventory_json(const struct gpu_inventory *inv, char *buf, size_t len);

/* "NVIDIA A100-SXM4-80GB" -> "a100", "Tesla T4" -> "t4", "NVIDIA L40S" -> "l40s",
 * "NVIDIA RTX PRO 6000 Blackwell ..." -> "rtx-pro-6000".  Writes "" when nothing fits. */
void gpu_kind_from_name(const char *name, char *buf, size_t len);

/* Creates, under @dir, the character devices the fake backend expects for @spec
 * (mode 0600; needs CAP_MKNOD).  Numbers are from the LOCAL/EXPERIMENTAL majors
 * 120-122 of the kernel's devices.txt, which no driver ever takes, so opening one
 * fails with ENXIO and granting one grants nothing. */
int gpu_fake_mknod(const char *dir, const char *spec, struct rt_err *err);

/* --- dedicated allocation ---------------------------------------------------------------- */

struct gpu_alloc; /* which holder owns each unit; in memory, rebuilt from the store */

int gpu_alloc_new(const struct gpu_inventory *inv, struct gpu_alloc **ret_alloc,
                  struct rt_err *err);
void gpu_alloc_free(struct gpu_alloc *a);

/* Gives @holder (a Space id, or "@zerogpu" for the lease pool) @count units of
 * @kind, exclusively, and stores their indexes in ret_units[0..count).
 * -ENOENT: the node has no unit of that kind at all; -EBUSY: not enough free
 * (the message says what is free); -EEXIST: @holder already holds units.
 * All or nothing: on failure nothing changes. */
int gpu_alloc_reserve(struct gpu_alloc *a, const char *holder, const char *kind, unsigned count,
                      unsigned *ret_units, struct rt_err *err);

/* Frees what @holder holds.  Returns how many units were freed. */
unsigned gpu_alloc_release(struct gpu_alloc *a, const char *holder);

/* The holder of @unit or NULL when free (or out of range). */
const char *gpu_alloc_holder(const struct gpu_alloc *a, unsigned unit);

/* Units of @kind (NULL: any) that are free. */
unsigned gpu_alloc_free_count(const struct gpu_alloc *a, const char *kind);

/* Stores up to @cap unit indexes @holder holds; returns how many it holds. */
unsigned gpu_alloc_held(const struct gpu_alloc *a, const char *holder, unsigned *ret_units,
                        unsigned cap);

/* "a10g x1, a100-3g.40gb x2" (free units by kind) or "none". */
const char *gpu_alloc_describe_free(const struct gpu_alloc *a, char *buf, size_t len);

/* The store's view after a restart: who held which GPU (by UUID). */
struct gpu_holding {
    const char *holder;
    const char *uuid;
};

/* Replaces the whole state with @h.  A UUID the node no longer has is skipped and
 * counted in *ret_missing (the caller marks that Space); two holders claiming one
 * unit is -EINVAL and leaves the old state. */
int gpu_alloc_rebuild(struct gpu_alloc *a, const struct gpu_holding *h, size_t n,
                      size_t *ret_missing, struct rt_err *err);

/* --- device cgroup ----------------------------------------------------------------------- */

/* cgroup v1: writes one "c MAJ:MIN rw" line per node to devices.allow (or
 * devices.deny) of the cgroup directory @cgroup_dir.  Optional nodes are skipped;
 * shared nodes are skipped when @include_shared is false (a deny that must leave
 * nvidiactl to the sandbox's other GPUs). */
int gpu_devcg_v1_allow(const char *cgroup_dir, const struct gpu_node *nodes, size_t n,
                       struct rt_err *err);
int gpu_devcg_v1_deny(const char *cgroup_dir, const struct gpu_node *nodes, size_t n,
                      bool include_shared, struct rt_err *err);

/* cgroup v2 device rules and their eBPF program: common/devcg.h. */

/* Appends the rules for @nodes (non-optional, rw) to rules[*n..cap). -ENOSPC when full. */
int gpu_dev_rules_from_nodes(const struct gpu_node *nodes, size_t n_nodes,
                             struct rt_dev_rule *rules, size_t *n, size_t cap);

#endif
