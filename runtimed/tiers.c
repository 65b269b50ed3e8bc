#include "tiers.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "error.h"
#include "names.h"
#include "banned.h"

#define GB (1000ULL * 1000 * 1000)

/* The Hub's flavors (REFERENCE.md section 4): vCPU, RAM, disk, GPUs of one kind.  No light
 * sleep of their own: the node's light_sleep_ms applies until an admin sets one. */
static const struct rt_tier defaults[] = {
    { "cpu-basic", "CPU basic", 2, 16 * GB, 50 * GB, 0, "", 0, false, RT_SLEEP_FREE_TIER, 0, false,
      0 },
    { "cpu-upgrade", "CPU upgrade", 8, 32 * GB, 50 * GB, 0, "", 0, false, -1, 0, false, 0 },
    { "zero-a10g", "ZeroGPU", 2, 16 * GB, 50 * GB, 0, "a10g", 24 * GB, true, RT_SLEEP_FREE_TIER, 0,
      false, 0 },
    { "t4-small", "Nvidia T4 small", 4, 15 * GB, 50 * GB, 1, "t4", 16 * GB, false, -1, 0, false,
      0 },
    { "t4-medium", "Nvidia T4 medium", 8, 30 * GB, 100 * GB, 1, "t4", 16 * GB, false, -1, 0, false,
      0 },
    { "l4x1", "1x Nvidia L4", 8, 30 * GB, 400 * GB, 1, "l4", 24 * GB, false, -1, 0, false, 0 },
    { "l4x4", "4x Nvidia L4", 48, 186 * GB, 3200 * GB, 4, "l4", 24 * GB, false, -1, 0, false, 0 },
    { "l40sx1", "1x Nvidia L40S", 8, 62 * GB, 380 * GB, 1, "l40s", 48 * GB, false, -1, 0, false,
      0 },
    { "l40sx4", "4x Nvidia L40S", 48, 382 * GB, 3200 * GB, 4, "l40s", 48 * GB, false, -1, 0, false,
      0 },
    { "l40sx8", "8x Nvidia L40S", 192, 1534 * GB, 6500 * GB, 8, "l40s", 48 * GB, false, -1, 0,
      false, 0 },
    { "a10g-small", "Nvidia A10G small", 4, 15 * GB, 110 * GB, 1, "a10g", 24 * GB, false, -1, 0,
      false, 0 },
    { "a10g-large", "Nvidia A10G large", 12, 46 * GB, 200 * GB, 1, "a10g", 24 * GB, false, -1, 0,
      false, 0 },
    { "a10g-largex2", "2x Nvidia A10G large", 24, 92 * GB, 1000 * GB, 2, "a10g", 24 * GB, false, -1,
      0, false, 0 },
    { "a10g-largex4", "4x Nvidia A10G large", 48, 184 * GB, 2000 * GB, 4, "a10g", 24 * GB, false,
      -1, 0, false, 0 },
    { "a100-large", "Nvidia A100", 12, 142 * GB, 1000 * GB, 1, "a100", 80 * GB, false, -1, 0, false,
      0 },
    { "a100x4", "4x Nvidia A100", 48, 568 * GB, 4000 * GB, 4, "a100", 80 * GB, false, -1, 0, false,
      0 },
    { "a100x8", "8x Nvidia A100", 96, 1136 * GB, 8000 * GB, 8, "a100", 80 * GB, false, -1, 0, false,
      0 },
};

int rt_tiers_seed(struct rt_store *st, struct rt_err *err)
{
    for (size_t i = 0; i < ARRAY_SIZE(defaults); i++) {
        int r = rt_store_tier_add(st, &defaults[i], err);
        if (r < 0 && r != -EEXIST)
            return rt_err_wrap(err, "seed hardware tier '%s'", defaults[i].name);
    }
    return 0;
}

int rt_tiers_check_node(const struct rt_tier *t, const struct rt_tier_gpus *n, struct rt_err *err)
{
    const char *pl = t->gpus == 1 ? "" : "s";

    if (t->gpus > 0 && (unsigned) t->gpus > n->have)
        return rt_err_set(err, ENODEV,
                          "hardware '%s' needs %d GPU%s of kind '%s' and this node has %u", t->name,
                          t->gpus, pl, t->gpu_kind, n->have);
    if (t->gpus > 0 && (unsigned) t->gpus > n->free)
        return rt_err_set(
            err, ENODEV,
            "hardware '%s' needs %d GPU%s of kind '%s' and %u of this node's %u %s free", t->name,
            t->gpus, pl, t->gpu_kind, n->free, n->have, n->free == 1 ? "is" : "are");
    if (t->zero && n->zero < 1)
        return rt_err_set(err, ENODEV,
                          "hardware '%s' (ZeroGPU) needs a GPU pool and this node has none "
                          "(zero_gpus)",
                          t->name);
    return 0;
}

int rt_tiers_validate(const struct rt_tier *t, struct rt_err *err)
{
    int r = rt_name_check(t->name, "tier name", err);

    if (r < 0)
        return r;
    if (!(t->cpus > 0 && t->cpus <= 4096))
        return rt_err_set(err, EINVAL, "cpus must be between 0 and 4096");
    if (t->memory < (1ULL << 20))
        return rt_err_set(err, EINVAL, "memory must be at least 1 MiB");
    if (t->gpus < 0 || t->gpus > 64)
        return rt_err_set(err, EINVAL, "gpus must be between 0 and 64");
    if (t->zero && t->gpus > 0)
        return rt_err_set(err, EINVAL, "a ZeroGPU tier shares GPUs: gpus must be 0");
    if (t->gpus > 0 && !t->gpu_kind[0])
        return rt_err_set(err, EINVAL, "a GPU tier needs gpuKind");
    for (const char *p = t->gpu_kind; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
            return rt_err_set(err, EINVAL,
                              "gpuKind may contain only lowercase letters, digits and '-'");
    return 0;
}
