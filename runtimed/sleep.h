/* Light sleep settings: which one applies to a Space.  Light sleep freezes a Space's
 * cgroup after it idled for a while (no CPU; a visit thaws it in milliseconds); deep
 * sleep (rt_space.sleep_time, the Hub's) stops it.  A Space's own light sleep wins, then
 * its tier's default, then the node's light_sleep_ms.  Settings are in seconds, -1 never. */
#ifndef SP_RUNTIMED_SLEEP_H
#define SP_RUNTIMED_SLEEP_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

#define RT_LIGHT_SLEEP_MAX (86400LL * 365) /* seconds: a year */

/* The light sleep of @s in ms, -1 never: its own setting, else that of its tier @t (NULL
 * when the tier row is gone), else the node's @node_ms. */
int64_t rt_sleep_light_ms(const struct rt_space *s, const struct rt_tier *t, int64_t node_ms);

/* The same for the Space with row id @space_id, read from @st now: a change through the
 * API applies at its next idle check, without a restart.  Takes the store lock, so call
 * it without.  Returns @node_ms when the row cannot be read. */
int64_t rt_sleep_light_ms_of(struct rt_store *st, int64_t space_id, int64_t node_ms);

/* Whether @secs is a light-sleep setting: -1 (never) or 1 .. RT_LIGHT_SLEEP_MAX. */
bool rt_sleep_light_valid(long long secs);

#endif
