/* gpu-sched internals shared by the inventory and its backends.  Not installed,
 * not included outside gpu-sched/ and its unit tests. */
#ifndef SP_GPU_INTERNAL_H
#define SP_GPU_INTERNAL_H

#include "gpu.h"

/* A backend fills @inv (already zeroed, backend name set) with units. */
struct gpu__backend {
    const char *name;
    bool
        isolate; /* probe in a child process (vendor libraries: their fds and threads stay there) */
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
    unsigned mig_count;   /* 0: no MIG */
    char mig_profile[24]; /* "3g.40gb" */
    uint64_t mig_memory;  /* parsed from the profile */
};

#define GPU__FAKE_ENTRIES_MAX 16

int gpu__fake_parse(const char *spec, struct gpu__fake_entry *out, size_t cap, size_t *ret_n,
                    struct rt_err *err);

/* The fake numbering (see gpu_fake_mknod()). */
#define GPU__FAKE_MAJOR 120      /* /dev/nvidiaN, nvidiactl, nvidia-modeset */
#define GPU__FAKE_UVM_MAJOR 121  /* nvidia-uvm, nvidia-uvm-tools */
#define GPU__FAKE_CAPS_MAJOR 122 /* nvidia-caps/nvidia-capN */

/* --- ZeroGPU quota accounting (quota.c), used by lease.c ----------------------------- */

#include "lease.h"

/* What one identity (a visitor, or a Space billed for token-less calls) used in
 * its current window.  Records are allocated one by one, so pointers stay valid
 * while a lease holds one (pending_ms > 0). */
struct gpu__quota_rec {
    struct gpu__quota_rec *next; /* hash chain */
    char key[GPU_ID_MAX + 8];
    enum gpu_class cls;
    bool window; /* a window is open (first use seen) */
    uint64_t window_start_ms;
    uint64_t used_ms;    /* charged in this window */
    uint64_t pending_ms; /* declared durations of queued and running leases */
};

struct gpu__quota {
    struct gpu__quota_rec **buckets;
    size_t n_buckets, n;
    uint64_t period_ms;
    uint64_t last_gc_ms;
};

int gpu__quota_init(struct gpu__quota *q, uint64_t period_ms);
void gpu__quota_done(struct gpu__quota *q);

/* The record for @space/@identity (the key is the identity, or "space:" + @space);
 * NULL when absent and !@create, or on ENOMEM.  Rolls the window when it ended. */
struct gpu__quota_rec *gpu__quota_get(struct gpu__quota *q, const char *space, const char *identity,
                                      bool create, uint64_t now_ms);

/* Milliseconds left of @limit_s (may be negative); INT64_MAX when @limit_s is 0. */
int64_t gpu__quota_left_ms(const struct gpu__quota_rec *r, uint32_t limit_s);

/* Reserves @ms for a queued or running lease; opens the window at first use. */
void gpu__quota_reserve(struct gpu__quota_rec *r, uint64_t ms, uint64_t now_ms);

/* Ends a reservation of @reserved_ms, charging @charged_ms of it. */
void gpu__quota_settle(struct gpu__quota_rec *r, uint64_t reserved_ms, uint64_t charged_ms);

/* Forgets identities with no open window and nothing pending (at most hourly). */
void gpu__quota_gc(struct gpu__quota *q, uint64_t now_ms);

#endif
