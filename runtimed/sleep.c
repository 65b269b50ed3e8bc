#include "sleep.h"

#include "error.h"
#include "banned.h"

int64_t rt_sleep_light_ms(const struct rt_space *s, const struct rt_tier *t, int64_t node_ms)
{
    int64_t secs;

    if (s->light_set)
        secs = s->light_sleep;
    else if (t && t->light_set)
        secs = t->light_sleep;
    else
        return node_ms < 0 ? -1 : node_ms;
    return secs < 0 ? -1 : secs * 1000;
}

int64_t rt_sleep_light_ms_of(struct rt_store *st, int64_t space_id, int64_t node_ms)
{
    struct rt_err err = { 0 };
    struct rt_space s;
    struct rt_tier t;
    int64_t ms = node_ms;

    rt_store_lock(st);
    if (rt_store_space_get_by_id(st, space_id, &s, &err) >= 0) {
        bool have = rt_store_tier_get(st, s.hardware, &t, &err) >= 0;
        ms = rt_sleep_light_ms(&s, have ? &t : NULL, node_ms);
    }
    rt_store_unlock(st);
    return ms;
}

bool rt_sleep_light_valid(long long secs)
{
    return secs == -1 || (secs >= 1 && secs <= RT_LIGHT_SLEEP_MAX);
}
