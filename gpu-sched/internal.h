/* gpu-sched internals shared by the inventory and its backends.  Not installed,
 * not included outside gpu-sched/ and its unit tests. */
#ifndef SP_GPU_INTERNAL_H
#define SP_GPU_INTERNAL_H

#include "gpu.h"

/* A backend fills @inv (already zeroed, backend name set) with units. */
struct gpu__backend {
    const char *name;
    int (*probe)(const struct gpu_config *cfg, struct gpu_inventory *inv, struct rt_err *err);
};

extern const struct gpu__backend gpu__backend_nvml;
extern const struct gpu__backend gpu__backend_fake;

/* Appends a zeroed unit (index set, mig ids -1).  Returns it or NULL on ENOMEM. */
struct gpu_unit *gpu__inventory_add(struct gpu_inventory *inv);

/* Appends a node to @u.  -ENOSPC when the unit is full, -ENAMETOOLONG for a long path. */
int gpu__node_add(struct gpu_unit *u, const char *path, unsigned major, unsigned minor,
                  unsigned flags);

/* Looks up the character major named @name ("nvidia-uvm") in a /proc/devices file. */
int gpu__proc_devices_major(const char *path, const char *name, unsigned *ret_major);

/* Looks up the nvidia-caps minor of GPU @gpu's GPU instance @gi (@ci < 0) or of its
 * compute instance @ci in a /proc/driver/nvidia-caps/mig-minors file, whose lines
 * read "gpu0/gi1/access 12" and "gpu0/gi1/ci0/access 13". */
int gpu__mig_minor(const char *path, unsigned gpu, int gi, int ci, unsigned *ret_minor);

/* One entry of a fake spec: "2xa10g:24G" or "1xa100:80G:mig=2x3g.40gb". */
struct gpu__fake_entry {
    unsigned count;
    char kind[GPU_KIND_MAX];
    uint64_t memory;
    unsigned mig_count;      /* 0: no MIG */
    char mig_profile[24];    /* "3g.40gb" */
    uint64_t mig_memory;     /* parsed from the profile */
};

#define GPU__FAKE_ENTRIES_MAX 16

int gpu__fake_parse(const char *spec, struct gpu__fake_entry *out, size_t cap, size_t *ret_n,
                    struct rt_err *err);

/* The fake numbering (see gpu_fake_mknod()). */
#define GPU__FAKE_MAJOR 120      /* /dev/nvidiaN, nvidiactl, nvidia-modeset */
#define GPU__FAKE_UVM_MAJOR 121  /* nvidia-uvm, nvidia-uvm-tools */
#define GPU__FAKE_CAPS_MAJOR 122 /* nvidia-caps/nvidia-capN */

#endif
