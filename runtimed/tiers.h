/* Hardware tiers are data: a default set (the Hub's names) seeded at first start, and
 * a check of whether this node can satisfy a tier at all. */
#ifndef SP_RUNTIMED_TIERS_H
#define SP_RUNTIMED_TIERS_H

#include <stdbool.h>

#include "store.h"

#define RT_TIER_DEFAULT "cpu-basic"
#define RT_SLEEP_FREE_TIER 172800 /* 48 h: the Hub's fixed sleep time on free hardware */

/* Adds the default tiers to an empty store. */
int rt_tiers_seed(struct rt_store *st, struct rt_err *err);

/* What this node has for one tier's GPU kind (runtimed/gpunode.c fills it from the
 * inventory; rtcore itself knows no GPUs). */
struct rt_tier_gpus {
    unsigned have; /* units of the tier's kind on the node, held or not */
    unsigned free; /* of those, free (or already held by the Space asking) */
    unsigned zero; /* units in the ZeroGPU pool */
};

/* Returns 0 when this node can run @t now, or -ENODEV with the reason (the API answers
 * 422): too few units of its kind at all, or too few free.  CPU and memory are cgroup
 * ceilings the kernel can share, so only devices make a tier unsatisfiable. */
int rt_tiers_check_node(const struct rt_tier *t, const struct rt_tier_gpus *n, struct rt_err *err);

/* Checks a tier an admin wants to add. */
int rt_tiers_validate(const struct rt_tier *t, struct rt_err *err);

#endif
