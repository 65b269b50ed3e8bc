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

/* Counts the GPUs of this node when @configured is -1 (/dev/nvidiaN devices). */
int rt_tiers_node_gpus(int configured);

/* Returns 0 when this node (@node_gpus) can run @t, or -ENODEV with the reason. CPU and
 * memory are cgroup ceilings the kernel can share, so only devices the node lacks make
 * a tier unsatisfiable. */
int rt_tiers_check_node(const struct rt_tier *t, int node_gpus, struct rt_err *err);

/* Checks a tier an admin wants to add. */
int rt_tiers_validate(const struct rt_tier *t, struct rt_err *err);

#endif
