/* The JSON shapes of the Hub: SpaceInfo, SpaceRuntime and the hardware list. */
#include <stdio.h>
#include <string.h>

#include "api-internal.h"
#include "sleep.h"
#include "tiers.h"
#include "banned.h"

const char *rt__space_stage(const struct rt_space *s)
{
    return s->paused ? "PAUSED" : s->stage;
}

/* The Hub: cpu-basic sleeps after 48 h; upgraded hardware never sleeps unless asked. */
static json_t *gc_timeout(struct rt_req *r, const struct rt_space *s)
{
    struct rt_tier t;
    struct rt_err err = { 0 };
    int64_t secs = -1;

    if (s->sleep_set)
        secs = s->sleep_time;
    else if (rt_store_tier_get(r->st, s->hardware, &t, &err) >= 0)
        secs = t.default_sleep;
    return secs < 0 ? json_null() : json_integer(secs);
}

/* Spaceport's light sleep (the cgroup frozen) in seconds, null for never: the Space's own
 * setting, else its tier's default, else the node's light_sleep_ms. */
static json_t *light_sleep_time(struct rt_req *r, const struct rt_space *s)
{
    struct rt_tier t;
    struct rt_err err = { 0 };
    bool have = rt_store_tier_get(r->st, s->hardware, &t, &err) >= 0;
    int64_t ms = rt_sleep_light_ms(s, have ? &t : NULL, r->api->cfg->light_sleep_ms);

    if (ms < 0)
        return json_null();
    return ms % 1000 == 0 ? json_integer(ms / 1000) : json_real((double) ms / 1000.0);
}

json_t *rt__json_runtime(struct rt_req *r, const struct rt_space *s)
{
    char domain[RT_HOST_SIZE + 160];
    json_t *j;

    (void) snprintf(domain, sizeof(domain), "%s.%s", s->host, r->api->cfg->domain);
    j = json_pack("{s:s, s:{s:o, s:s}, s:n, s:o, s:{s:i}, s:b, s:[{s:s, s:b, s:s}]}", "stage",
                  rt__space_stage(s), "hardware", "current",
                  s->hardware_current[0] ? json_string(s->hardware_current) : json_null(),
                  "requested", s->hardware, "storage", "gcTimeout", gc_timeout(r, s), "replicas",
                  "requested", 1, "devMode", 0, "domains", "domain", domain, "isCustom", 0, "stage",
                  "READY");
    if (j)
        (void) json_object_set_new(j, "lightSleepTime", light_sleep_time(r, s));
    if (j && s->sha[0])
        (void) json_object_set_new(j, "sha", json_string(s->sha));
    if (j && s->error[0])
        (void) json_object_set_new(j, "errorMessage", json_string(s->error));
    return j;
}

json_t *rt__json_space(struct rt_req *r, const struct rt_space *s, bool full)
{
    char id[RT_ID_SIZE], _id[32], host[RT_HOST_SIZE + 200];
    json_t *j;

    (void) snprintf(id, sizeof(id), "%s/%s", s->owner, s->name);
    (void) snprintf(_id, sizeof(_id), "%024llx", (long long) s->id);
    j = json_pack("{s:s, s:s, s:s, s:b, s:i, s:s, s:[], s:o, s:o, s:o, s:b, s:b}", "_id", _id, "id",
                  id, "author", s->owner, "private", s->private_, "likes", 0, "sdk", s->sdk, "tags",
                  "createdAt", rt__json_time(s->created_at), "lastModified",
                  rt__json_time(s->updated_at), "sha",
                  s->sha[0] ? json_string(s->sha) : json_null(), "gated", 0, "disabled", 0);
    if (!j || !full)
        return j;
    (void) snprintf(host, sizeof(host), "http://%s.%s:%lld", s->host, r->api->cfg->domain,
                    (long long) r->api->cfg->proxy_port);
    (void) json_object_set_new(j, "host", json_string(host));
    (void) json_object_set_new(j, "subdomain", json_string(s->host));
    (void) json_object_set_new(j, "siblings", json_array());
    (void) json_object_set_new(j, "cardData", json_pack("{s:s}", "sdk", s->sdk));
    (void) json_object_set_new(j, "runtime", rt__json_runtime(r, s));
    return j;
}

static void fmt_gb(char *buf, size_t len, uint64_t bytes)
{
    (void) snprintf(buf, len, "%.4g GB", (double) bytes / 1e9);
}

json_t *rt__json_tier(const struct rt_tier *t)
{
    char cpu[32], ram[32], vram[32];
    json_t *acc = json_null();

    (void) snprintf(cpu, sizeof(cpu), "%g vCPU", t->cpus);
    fmt_gb(ram, sizeof(ram), t->memory);
    if (t->gpus > 0 || t->zero) {
        fmt_gb(vram, sizeof(vram), t->vram * (uint64_t) (t->gpus > 0 ? t->gpus : 1));
        acc =
            json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "gpu", "model", t->gpu_kind, "quantity",
                      t->zero ? "zero" : "", "vram", t->vram ? vram : "", "manufacturer", "NVIDIA");
        if (acc && t->gpus > 0) {
            char q[16];
            (void) snprintf(q, sizeof(q), "%d", t->gpus);
            (void) json_object_set_new(acc, "quantity", json_string(q));
        }
    }
    /* Spaceport's sleep defaults: sleepTimeSeconds -1 never; lightSleepSeconds null when
     * the node's light_sleep_ms applies. */
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:o, s:i, s:f, s:s, s:f, s:I, s:I, s:i, s:s?, s:b, s:I, s:o}", "name",
        t->name, "prettyName", t->pretty, "cpu", cpu, "ram", ram, "accelerator",
        acc ? acc : json_null(), "unitCostMicroUSD", 0, "unitCostUSD", 0.0, "unitLabel", "hour",
        "cpus", t->cpus, "memory", (json_int_t) t->memory, "disk", (json_int_t) t->disk, "gpus",
        t->gpus, "gpuKind", t->gpu_kind[0] ? t->gpu_kind : NULL, "zero", t->zero,
        "sleepTimeSeconds", (json_int_t) t->default_sleep, "lightSleepSeconds",
        t->light_set ? json_integer((json_int_t) t->light_sleep) : json_null());
}
