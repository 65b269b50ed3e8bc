/* Schema migrations (runtimed/store.c) from every earlier version: a database left at
 * version v by an older runtimed, holding data written against that version's schema,
 * opens with this runtimed, reaches the newest version and still has every row.
 *
 * seeds[v] is the data, as SQL for schema v.  A migration that breaks the newest seed
 * (say it adds a NOT NULL column without a default) fails here: then add seeds[NEW]
 * written for the new schema, and keep the old ones, so each old version stays tested. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <unistd.h>

#include "../tap.h"
#include "error.h"
#include "runtimed/store.h"

static const char *const seeds[] = {
    [1] = "INSERT INTO users (id, name, admin, created_at) VALUES (7, 'seed', 1, 1700000000000);"
          "INSERT INTO tokens (id, public_id, user_id, role, name, hash, created_at)"
          "  VALUES (3, '00000000000000aa', 7, 'write', 'ci', 'feedface', 1700000000001);"
          "INSERT INTO token_spaces (token_id, space) VALUES (3, 'seed/app');"
          "INSERT INTO hardware (name, pretty_name, cpus, memory, created_at)"
          "  VALUES ('seed-cpu', 'Seed CPU', 2, 1073741824, 1700000000002);"
          "INSERT INTO spaces (id, owner, name, host, sdk, private, hardware, stage, sha,"
          "  created_at, updated_at, last_activity) VALUES (11, 'seed', 'app', 'seed-app',"
          "  'gradio', 1, 'seed-cpu', 'RUNTIME_ERROR', 'abc123', 1, 2, 3);"
          "INSERT INTO revisions (space_id, sha, ref, created_at)"
          "  VALUES (11, 'abc123', 'refs/heads/main', 4);"
          "INSERT INTO builds (space_id, sha, status, created_at) VALUES (11, 'abc123', 'ok', 5);"
          "INSERT INTO secrets (space_id, key, value, updated_at) VALUES (11, 'TOKEN', 's3', 6);"
          "INSERT INTO variables (space_id, key, value, updated_at) VALUES (11, 'MODE', 'x', 7);"
          "INSERT INTO logs (space_id, kind, ts, line) VALUES (11, 0, 8, 'build line one');"
          "INSERT INTO events (space_id, ts, kind) VALUES (11, 9, 'created');",
    /* 2: light sleep per tier and per Space */
    [2] = "INSERT INTO users (id, name, admin, created_at) VALUES (7, 'seed', 1, 1700000000000);"
          "INSERT INTO tokens (id, public_id, user_id, role, name, hash, created_at)"
          "  VALUES (3, '00000000000000aa', 7, 'write', 'ci', 'feedface', 1700000000001);"
          "INSERT INTO token_spaces (token_id, space) VALUES (3, 'seed/app');"
          "INSERT INTO hardware (name, pretty_name, cpus, memory, created_at, light_sleep)"
          "  VALUES ('seed-cpu', 'Seed CPU', 2, 1073741824, 1700000000002, 45);"
          "INSERT INTO spaces (id, owner, name, host, sdk, private, hardware, stage, sha,"
          "  created_at, updated_at, last_activity, light_sleep) VALUES (11, 'seed', 'app',"
          "  'seed-app', 'gradio', 1, 'seed-cpu', 'RUNTIME_ERROR', 'abc123', 1, 2, 3, -1);"
          "INSERT INTO revisions (space_id, sha, ref, created_at)"
          "  VALUES (11, 'abc123', 'refs/heads/main', 4);"
          "INSERT INTO builds (space_id, sha, status, created_at) VALUES (11, 'abc123', 'ok', 5);"
          "INSERT INTO secrets (space_id, key, value, updated_at) VALUES (11, 'TOKEN', 's3', 6);"
          "INSERT INTO variables (space_id, key, value, updated_at) VALUES (11, 'MODE', 'x', 7);"
          "INSERT INTO logs (space_id, kind, ts, line) VALUES (11, 0, 8, 'build line one');"
          "INSERT INTO events (space_id, ts, kind) VALUES (11, 9, 'created');",
    /* 3: users.plan */
    [3] = "INSERT INTO users (id, name, admin, created_at, plan)"
          "  VALUES (7, 'seed', 1, 1700000000000, 'pro');"
          "INSERT INTO tokens (id, public_id, user_id, role, name, hash, created_at)"
          "  VALUES (3, '00000000000000aa', 7, 'write', 'ci', 'feedface', 1700000000001);"
          "INSERT INTO token_spaces (token_id, space) VALUES (3, 'seed/app');"
          "INSERT INTO hardware (name, pretty_name, cpus, memory, created_at, light_sleep)"
          "  VALUES ('seed-cpu', 'Seed CPU', 2, 1073741824, 1700000000002, 45);"
          "INSERT INTO spaces (id, owner, name, host, sdk, private, hardware, stage, sha,"
          "  created_at, updated_at, last_activity, light_sleep) VALUES (11, 'seed', 'app',"
          "  'seed-app', 'gradio', 1, 'seed-cpu', 'RUNTIME_ERROR', 'abc123', 1, 2, 3, -1);"
          "INSERT INTO revisions (space_id, sha, ref, created_at)"
          "  VALUES (11, 'abc123', 'refs/heads/main', 4);"
          "INSERT INTO builds (space_id, sha, status, created_at) VALUES (11, 'abc123', 'ok', 5);"
          "INSERT INTO secrets (space_id, key, value, updated_at) VALUES (11, 'TOKEN', 's3', 6);"
          "INSERT INTO variables (space_id, key, value, updated_at) VALUES (11, 'MODE', 'x', 7);"
          "INSERT INTO logs (space_id, kind, ts, line) VALUES (11, 0, 8, 'build line one');"
          "INSERT INTO events (space_id, ts, kind) VALUES (11, 9, 'created');",
};
#define N_SEEDS ((int) (sizeof(seeds) / sizeof(seeds[0])))

static char dir[] = "/tmp/rtcore-migrate-XXXXXX";

static int on_kv(const struct rt_kv *kv, void *userdata)
{
    if (kv->value)
        (void) snprintf(userdata, 64, "%s=%s", kv->key, kv->value);
    return 0;
}

static int on_line(const struct rt_log_line *l, void *userdata)
{
    (void) snprintf(userdata, 64, "%s", l->line);
    return 0;
}

static int on_status(const char *status, int64_t n, void *userdata)
{
    (void) snprintf(userdata, 64, "%s:%lld", status, (long long) n);
    return 0;
}

static int seed(const char *path, int version)
{
    sqlite3 *db = NULL;
    char *msg = NULL;
    int v = version < N_SEEDS ? version : N_SEEDS - 1, rc;

    while (v > 0 && !seeds[v])
        v--;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        return -1;
    rc = sqlite3_exec(db, seeds[v], NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        printf("# seed %d on schema %d: %s\n", v, version, msg ? msg : "?");
    sqlite3_free(msg);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

static void from_version(int v)
{
    struct rt_store *st = NULL;
    struct rt_err err = { 0 };
    struct rt_user u;
    struct rt_space s;
    struct rt_token t;
    struct rt_tier tier;
    char path[300], got[64];
    int latest = rt_store_schema_latest();

    (void) snprintf(path, sizeof(path), "%s/v%d.db", dir, v);
    is_int(rt_store_create_at_version(path, v, &err), 0, "create a database at an old version");
    if (v > 0)
        is_int(seed(path, v), 0, "seed it with data written for that version");
    if (!ok(rt_store_open(path, &st, &err) == 0, "schema %d opens: %s", v, err.msg))
        return;
    is_int(rt_store_schema_version(st), latest, "migrated to the newest schema");
    if (v > 0) {
        ok(rt_store_user_get(st, "seed", &u, &err) == 0 && u.admin, "user kept");
        ok(rt_store_token_find(st, "feedface", &t, &err) == 0 && strcmp(t.user, "seed") == 0 &&
               t.n_spaces == 1 && strcmp(t.spaces[0], "seed/app") == 0,
           "token and its scope kept");
        rt_store_token_done(&t);
        ok(rt_store_space_get(st, "seed", "app", &s, &err) == 0 && s.private_ &&
               strcmp(s.stage, "RUNTIME_ERROR") == 0 && strcmp(s.hardware, "seed-cpu") == 0 &&
               strcmp(s.sha, "abc123") == 0,
           "Space kept");
        got[0] = '\0';
        (void) rt_store_kv_list(st, RT_KV_SECRET, 11, true, on_kv, got, &err);
        is_str(got, "TOKEN=s3", "secret kept with its value");
        got[0] = '\0';
        (void) rt_store_kv_list(st, RT_KV_VARIABLE, 11, true, on_kv, got, &err);
        is_str(got, "MODE=x", "variable kept");
        got[0] = '\0';
        (void) rt_store_log_list(st, 11, RT_LOGS_BUILD, 0, 10, on_line, got, &err);
        is_str(got, "build line one", "build log kept");
        got[0] = '\0';
        (void) rt_store_build_stats(st, on_status, got, &err);
        is_str(got, "ok:1", "build kept");
        is_int(rt_store_event_count(st, 11, "created", &err), 1, "event kept");
        /* Light sleep (schema 2): unset where an older schema had no such setting. */
        ok(rt_store_tier_get(st, "seed-cpu", &tier, &err) == 0 && tier.default_sleep == -1,
           "tier kept");
        if (v < 2)
            ok(!s.light_set && !tier.light_set,
               "no light sleep of its own: the node's setting applies as before");
        else
            ok(s.light_set && s.light_sleep == -1 && tier.light_set && tier.light_sleep == 45,
               "light sleep kept (Space %lld, tier %lld)", (long long) s.light_sleep,
               (long long) tier.light_sleep);
        {
            struct rt_space m = s;
            m.light_set = true;
            m.light_sleep = 20;
            ok(rt_store_space_update(st, &m, &err) == 0 &&
                   rt_store_space_get_by_id(st, 11, &m, &err) == 0 && m.light_set &&
                   m.light_sleep == 20,
               "a migrated Space takes a light sleep: %s", err.msg);
        }
        /* Plans (schema 3): users from before had none and are on the free plan. */
        is_str(u.plan, v < 3 ? "free" : "pro", "user's plan after migration");
        ok(rt_store_user_set_plan(st, "seed", v < 3 ? "pro" : "free", &err) == 0 &&
               rt_store_user_get(st, "seed", &u, &err) == 0 &&
               strcmp(u.plan, v < 3 ? "pro" : "free") == 0,
           "a migrated user changes plan: %s", err.msg);
        is_int(rt_store_user_set_plan(st, "seed", "gold", &err), -EINVAL, "unknown plan refused");
    }
    rt_store_close(st);
}

int main(void)
{
    struct rt_store *st = NULL;
    struct rt_err err = { 0 };
    char path[300], cmd[400];
    int latest;

    tap_start();
    if (!mkdtemp(dir))
        return 1;
    latest = rt_store_schema_latest();
    ok(latest >= 1, "there is a schema (%d)", latest);
    ok(seeds[N_SEEDS - 1] != NULL, "a seed for the newest seeded version");
    for (int v = 0; v <= latest; v++)
        from_version(v);

    /* a database from a newer runtimed is refused, not damaged */
    (void) snprintf(path, sizeof(path), "%s/newer.db", dir);
    is_int(rt_store_create_at_version(path, latest, &err), 0, "create at the newest");
    {
        sqlite3 *db = NULL;
        char sql[64];
        (void) snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", latest + 1);
        ok(sqlite3_open(path, &db) == SQLITE_OK &&
               sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK,
           "pretend a newer runtimed wrote it");
        sqlite3_close(db);
    }
    is_int(rt_store_open(path, &st, &err), -EPROTO, "newer schema refused");
    ok(strstr(err.msg, "newer") != NULL, "and says why: %s", err.msg);
    ok(rt_store_create_at_version(path, latest + 1, &err) < 0, "no version past the newest");

    (void) snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return tap_done();
}
