/* Light sleep settings (runtimed/sleep.c) and their store columns (runtimed/store.c,
 * schema 2): a Space's own light sleep wins over its tier's default, which wins over the
 * node's light_sleep_ms; -1 is never; a change is seen at the next read. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tap.h"
#include "error.h"
#include "runtimed/names.h"
#include "runtimed/sleep.h"
#include "runtimed/store.h"
#include "runtimed/tiers.h"

static char dir[] = "/tmp/rtcore-sleep-XXXXXX";

static void test_resolution(void)
{
    struct rt_space s = { 0 };
    struct rt_tier t = { 0 };

    is_int(rt_sleep_light_ms(&s, &t, 60000), 60000, "nothing set: the node's setting");
    is_int(rt_sleep_light_ms(&s, NULL, 1500), 1500, "tier row gone: the node's setting");
    is_int(rt_sleep_light_ms(&s, &t, -1), -1, "the node's never");
    is_int(rt_sleep_light_ms(&s, &t, -7), -1, "any negative node value is never");
    t.light_set = true;
    t.light_sleep = 30;
    is_int(rt_sleep_light_ms(&s, &t, 60000), 30000, "the tier's default beats the node's");
    t.light_sleep = -1;
    is_int(rt_sleep_light_ms(&s, &t, 60000), -1, "a tier may say never");
    s.light_set = true;
    s.light_sleep = 2;
    is_int(rt_sleep_light_ms(&s, &t, 60000), 2000, "the Space's own beats its tier's");
    s.light_sleep = -1;
    t.light_sleep = 5;
    is_int(rt_sleep_light_ms(&s, &t, 60000), -1, "a Space may say never on a tier that freezes");
    is_int(rt_sleep_light_ms(&s, NULL, 60000), -1, "its own setting without a tier row");

    ok(rt_sleep_light_valid(-1), "-1 is valid");
    ok(rt_sleep_light_valid(1) && rt_sleep_light_valid(RT_LIGHT_SLEEP_MAX), "1 .. max valid");
    ok(!rt_sleep_light_valid(0), "0 is not");
    ok(!rt_sleep_light_valid(-2), "-2 is not");
    ok(!rt_sleep_light_valid(RT_LIGHT_SLEEP_MAX + 1), "past the max is not");
}

static void add_space(struct rt_store *st, struct rt_space *s, const char *name, const char *tier)
{
    struct rt_err err = { 0 };

    memset(s, 0, sizeof(*s));
    (void) snprintf(s->owner, sizeof(s->owner), "alice");
    (void) snprintf(s->name, sizeof(s->name), "%s", name);
    rt_space_host(s->owner, s->name, s->host);
    (void) snprintf(s->sdk, sizeof(s->sdk), "static");
    (void) snprintf(s->hardware, sizeof(s->hardware), "%s", tier);
    (void) snprintf(s->stage, sizeof(s->stage), "NO_APP_FILE");
    if (!ok(rt_store_space_add(st, s, &err) == 0, "add Space '%s': %s", name, err.msg))
        exit(1);
}

static void test_store(void)
{
    struct rt_store *st = NULL;
    struct rt_err err = { 0 };
    struct rt_space a, b, got;
    struct rt_tier t = { .cpus = 1, .memory = 1 << 30, .default_sleep = -1 };
    char path[300];

    (void) snprintf(path, sizeof(path), "%s/sleep.db", dir);
    if (!ok(rt_store_open(path, &st, &err) == 0, "open: %s", err.msg))
        return;
    ok(rt_store_schema_version(st) >= 2, "schema 2 or later has the light-sleep columns");
    is_int(rt_tiers_seed(st, &err), 0, "seed the default tiers");
    is_int(rt_store_tier_get(st, "cpu-basic", &t, &err), 0, "read cpu-basic");
    ok(!t.light_set && t.default_sleep == RT_SLEEP_FREE_TIER,
       "cpu-basic: no light sleep of its own, the Hub's 48 h deep sleep");

    memset(&t, 0, sizeof(t));
    (void) snprintf(t.name, sizeof(t.name), "cpu-snappy");
    (void) snprintf(t.pretty, sizeof(t.pretty), "Snappy");
    t.cpus = 1;
    t.memory = 1 << 30;
    t.default_sleep = -1;
    t.light_set = true;
    t.light_sleep = 3;
    is_int(rt_store_tier_add(st, &t, &err), 0, "add a tier with a light-sleep default");
    memset(&t, 0, sizeof(t));
    is_int(rt_store_tier_get(st, "cpu-snappy", &t, &err), 0, "read it back");
    ok(t.light_set && t.light_sleep == 3, "its light sleep kept (%d, %lld)", t.light_set,
       (long long) t.light_sleep);

    add_space(st, &a, "plain", "cpu-snappy");
    add_space(st, &b, "never", "cpu-snappy");
    is_int(rt_store_space_get_by_id(st, a.id, &got, &err), 0, "get by id");
    is_str(got.name, "plain", "the right row");
    ok(!got.light_set, "a new Space has no light sleep of its own");
    is_int(rt_store_space_get_by_id(st, a.id + 1000, &got, &err), -ENOENT, "no such id");
    is_int(rt_sleep_light_ms_of(st, a.id, 60000), 3000, "the tier's default applies");
    is_int(rt_sleep_light_ms_of(st, a.id + 1000, 60000), 60000,
           "a missing row falls back to the node");

    is_int(rt_store_space_get_by_id(st, b.id, &got, &err), 0, "read the other");
    got.light_set = true;
    got.light_sleep = -1;
    is_int(rt_store_space_update(st, &got, &err), 0, "set it to never freeze");
    is_int(rt_sleep_light_ms_of(st, b.id, 60000), -1, "its own never wins");
    is_int(rt_sleep_light_ms_of(st, a.id, 60000), 3000, "the other still follows its tier");
    got.light_sleep = 0;
    is_int(rt_store_space_update(st, &got, &err), -EINVAL, "the schema refuses 0");
    got.light_set = false;
    is_int(rt_store_space_update(st, &got, &err), 0, "back to the tier's default");
    is_int(rt_sleep_light_ms_of(st, b.id, 60000), 3000, "and it follows the tier again");

    /* the tier's defaults change under its Spaces, and they see it at once */
    is_int(rt_store_tier_get(st, "cpu-snappy", &t, &err), 0, "read the tier");
    t.light_sleep = 7;
    t.default_sleep = 600;
    is_int(rt_store_tier_set_sleep(st, &t, &err), 0, "change its sleep defaults");
    is_int(rt_sleep_light_ms_of(st, a.id, 60000), 7000, "the new tier default applies");
    memset(&t, 0, sizeof(t));
    is_int(rt_store_tier_get(st, "cpu-snappy", &t, &err), 0, "read it again");
    ok(t.default_sleep == 600 && t.light_set && t.light_sleep == 7, "both stored");
    t.light_set = false;
    is_int(rt_store_tier_set_sleep(st, &t, &err), 0, "unset its light sleep");
    is_int(rt_sleep_light_ms_of(st, a.id, 1500), 1500, "the node's setting applies again");
    (void) snprintf(t.name, sizeof(t.name), "no-such-tier");
    is_int(rt_store_tier_set_sleep(st, &t, &err), -ENOENT, "an unknown tier");

    /* the other mutable fields leave light sleep alone */
    is_int(rt_store_space_get_by_id(st, a.id, &got, &err), 0, "read the first");
    got.light_set = true;
    got.light_sleep = 9;
    is_int(rt_store_space_update(st, &got, &err), 0, "give it its own");
    is_int(rt_store_space_get(st, "alice", "plain", &got, &err), 0, "read by name");
    (void) snprintf(got.stage, sizeof(got.stage), "RUNNING");
    got.sleep_set = true;
    got.sleep_time = 120;
    is_int(rt_store_space_update(st, &got, &err), 0, "change stage and deep sleep");
    is_int(rt_store_space_get_by_host(st, "alice-plain", &got, &err), 0, "read by host");
    ok(got.light_set && got.light_sleep == 9 && got.sleep_time == 120,
       "light and deep sleep are separate settings");
    rt_store_close(st);
}

int main(void)
{
    char cmd[400];

    tap_start();
    if (!mkdtemp(dir)) {
        printf("1..0 # SKIP no temp dir\n");
        return 77;
    }
    test_resolution();
    test_store();
    (void) snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return tap_done();
}
