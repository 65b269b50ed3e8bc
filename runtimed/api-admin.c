/* whoami-v2 and the admin endpoints for users, tokens and hardware tiers (docs/API.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "builder.h"
#include "gc.h"
#include "gpunode.h"
#include "log.h"
#include "names.h"
#include "sleep.h"
#include "tiers.h"
#include "banned.h"

int rt__api_whoami(struct rt_req *r)
{
    const struct rt_token *t = &r->who.token;
    char uid[32];
    json_t *token, *j;

    if (!rt__is(r, "GET"))
        return rt__reply_error(r, 405, "use GET");
    if (!rt_auth_is_user(&r->who))
        return rt__reply_error(r, 401, "whoami needs a user token (Authorization: Bearer TOKEN)");
    (void) snprintf(uid, sizeof(uid), "%024llx", (long long) t->user_id);
    token =
        json_pack("{s:s, s:s, s:o}", "displayName", t->name, "role",
                  t->n_spaces ? "fineGrained" : t->role, "createdAt", rt__json_time(t->created_at));
    if (token && t->n_spaces) {
        json_t *scoped = json_array();
        bool write = strcmp(t->role, "write") == 0;
        for (size_t i = 0; scoped && i < t->n_spaces; i++) {
            json_t *perms = write ? json_pack("[s, s]", "repo.content.read", "repo.write")
                                  : json_pack("[s]", "repo.content.read");
            (void) json_array_append_new(
                scoped, json_pack("{s:{s:s, s:s, s:s}, s:o}", "entity", "_id", t->spaces[i], "name",
                                  t->spaces[i], "type", "space", "permissions",
                                  perms ? perms : json_array()));
        }
        (void) json_object_set_new(token, "fineGrained",
                                   json_pack("{s:o, s:[], s:b}", "scoped",
                                             scoped ? scoped : json_array(), "global",
                                             "canReadGatedRepos", 0));
    }
    j = json_pack("{s:s, s:s, s:s, s:s, s:n, s:b, s:b, s:b, s:s, s:n, s:s, s:[], s:b, s:{s:s, "
                  "s:o}}",
                  "type", "user", "id", uid, "name", t->user, "fullname", t->user, "email",
                  "emailVerified", 0, "isPro", 0, "canPay", 0, "billingMode", "prepaid",
                  "periodEnd", "avatarUrl", "", "orgs", "isAdmin", t->admin, "auth", "type",
                  "access_token", "accessToken", token ? token : json_object());
    return rt__reply_json(r, 200, j);
}

/* --- users ----------------------------------------------------------------------------- */

static json_t *user_json(const struct rt_user *u)
{
    return json_pack("{s:s, s:b, s:s, s:o}", "name", u->name, "admin", u->admin, "plan",
                     u->plan[0] ? u->plan : "free", "createdAt", rt__json_time(u->created_at));
}

static int on_user(const struct rt_user *u, void *userdata)
{
    (void) json_array_append_new(userdata, user_json(u));
    return 0;
}

static int users(struct rt_req *r)
{
    struct rt_err err = { 0 };
    struct rt_user u;
    int rc;

    if (r->nseg == 2 && rt__is(r, "GET")) {
        json_t *out = json_array();
        if (!out)
            return rt__reply_error(r, 503, "out of memory");
        rc = rt_store_user_list(r->st, on_user, out, &err);
        if (rc < 0) {
            json_decref(out);
            return rt__reply_err(r, rc, &err);
        }
        return rt__reply_json(r, 200, out);
    }
    if (r->nseg == 2 && strcmp(r->method, "POST") == 0) {
        json_t *body = rt__req_object(r, false);
        const char *name = NULL, *plan = NULL;
        bool admin = false;

        if (!body)
            return r->status;
        if (rt__field_str(r, body, "name", true, &name) < 0 ||
            rt__field_bool(r, body, "admin", &admin) < 0 ||
            rt__field_str(r, body, "plan", false, &plan) < 0)
            goto out;
        if (rt_name_check(name, "user name", &err) < 0) {
            rt__reply_error(r, 400, "%s", err.msg);
            goto out;
        }
        if (plan && !rt_plan_valid(plan)) {
            rt__reply_error(r, 400, "field 'plan' must be 'free' or 'pro'");
            goto out;
        }
        /* One transaction: a user never exists without the plan it was created with. */
        rc = rt_store_begin(r->st, &err);
        if (rc < 0) {
            rt__reply_err(r, rc, &err);
            goto out;
        }
        rc = rt_store_user_add(r->st, name, admin, &u, &err);
        if (rc >= 0 && plan && strcmp(plan, "free") != 0) {
            rc = rt_store_user_set_plan(r->st, name, plan, &err);
            (void) snprintf(u.plan, sizeof(u.plan), "%s", plan);
        }
        if (rc >= 0)
            rc = rt_store_commit(r->st, &err);
        else
            rt_store_rollback(r->st);
        if (rc < 0) {
            rt__reply_err(r, rc, &err);
            goto out;
        }
        {
            struct rt_log_ctx ctx = { .action = "add user" };
            rt_log(RT_LOG_INFO, &ctx, "added %suser '%s'", admin ? "admin " : "", name);
        }
        rt__reply_json(r, 201, user_json(&u));
    out:
        json_decref(body);
        return r->status;
    }
    if (r->nseg == 3 && strcmp(r->method, "PATCH") == 0) {
        json_t *body = rt__req_object(r, false);
        const char *plan = NULL;

        if (!body)
            return r->status;
        if (rt__field_str(r, body, "plan", true, &plan) < 0)
            goto out_patch;
        if (!rt_plan_valid(plan)) {
            rt__reply_error(r, 400, "field 'plan' must be 'free' or 'pro'");
            goto out_patch;
        }
        rc = rt_store_user_set_plan(r->st, r->seg[2], plan, &err);
        if (rc >= 0)
            rc = rt_store_user_get(r->st, r->seg[2], &u, &err);
        if (rc < 0) {
            rt__reply_err(r, rc, &err);
            goto out_patch;
        }
        {
            struct rt_log_ctx ctx = { .action = "set plan" };
            rt_log(RT_LOG_INFO, &ctx, "user '%s' is on the %s plan", u.name, u.plan);
        }
        rt__reply_json(r, 200, user_json(&u));
    out_patch:
        json_decref(body);
        return r->status;
    }
    if (r->nseg == 3 && strcmp(r->method, "DELETE") == 0) {
        rc = rt_store_user_get(r->st, r->seg[2], &u, &err);
        if (rc < 0)
            return rt__reply_err(r, rc, &err);
        rc = rt_store_space_count_owned(r->st, u.name, &err);
        if (rc < 0)
            return rt__reply_err(r, rc, &err);
        if (rc > 0)
            return rt__reply_error(r, 409, "user '%s' still owns %d Space%s: delete them first",
                                   u.name, rc, rc == 1 ? "" : "s");
        if (u.admin) {
            rc = rt_store_user_count(r->st, true, &err);
            if (rc < 0)
                return rt__reply_err(r, rc, &err);
            if (rc <= 1)
                return rt__reply_error(r, 409, "'%s' is the last admin", u.name);
        }
        rc = rt_store_user_delete(r->st, u.id, &err);
        if (rc < 0)
            return rt__reply_err(r, rc, &err);
        return rt__reply_empty(r, 204);
    }
    return r->nseg > 3 ? rt__reply_error(r, 404, "no such endpoint")
                       : rt__reply_error(r, 405, "method not allowed");
}

/* --- tokens ---------------------------------------------------------------------------- */

static json_t *token_json(const struct rt_token *t)
{
    json_t *spaces = json_array();
    json_t *j;

    for (size_t i = 0; spaces && i < t->n_spaces; i++)
        (void) json_array_append_new(spaces, json_string(t->spaces[i]));
    j = json_pack("{s:s, s:s, s:s, s:o, s:s, s:o}", "id", t->id, "user", t->user, "role", t->role,
                  "spaces", spaces ? spaces : json_array(), "name", t->name, "createdAt",
                  rt__json_time(t->created_at));
    return j;
}

static int on_token(const struct rt_token *t, void *userdata)
{
    (void) json_array_append_new(userdata, token_json(t));
    return 0;
}

static int create_token(struct rt_req *r)
{
    json_t *body = rt__req_object(r, false), *spaces;
    const char *user = NULL, *role = NULL, *name = NULL;
    struct rt_token t = { 0 };
    char secret[RT_TOKEN_SIZE];
    struct rt_err err = { 0 };
    struct rt_user u;
    json_t *j;
    int rc;

    if (!body)
        return r->status;
    if (rt__field_str(r, body, "user", true, &user) < 0 ||
        rt__field_str(r, body, "role", true, &role) < 0 ||
        rt__field_str(r, body, "name", false, &name) < 0)
        goto out;
    if (strcmp(role, "read") != 0 && strcmp(role, "write") != 0) {
        rt__reply_error(r, 400, "role must be 'read' or 'write'");
        goto out;
    }
    if (name && strlen(name) >= sizeof(t.name)) {
        rt__reply_error(r, 400, "token name longer than %zu bytes", sizeof(t.name) - 1);
        goto out;
    }
    spaces = json_object_get(body, "spaces");
    if (spaces && !json_is_null(spaces)) {
        size_t i;
        json_t *v;
        if (!json_is_array(spaces) || json_array_size(spaces) > 1000) {
            rt__reply_error(r, 400, "field 'spaces' must be a list of 'owner/name'");
            goto out;
        }
        t.spaces = calloc(json_array_size(spaces) + 1, sizeof(*t.spaces));
        if (!t.spaces) {
            rt__reply_error(r, 503, "out of memory");
            goto out;
        }
        json_array_foreach(spaces, i, v)
        {
            char o[RT_NAME_SIZE], n[RT_NAME_SIZE];
            if (!json_is_string(v) || rt_id_split(json_string_value(v), o, n, &err) < 0) {
                rt__reply_error(r, 400, "spaces[%zu]: %s", i,
                                json_is_string(v) ? err.msg : "must be a string 'owner/name'");
                goto out;
            }
            (void) snprintf(t.spaces[t.n_spaces++], RT_ID_SIZE, "%s/%s", o, n);
        }
    }
    rc = rt_store_user_get(r->st, user, &u, &err);
    if (rc < 0) {
        rt__reply_err(r, rc, &err);
        goto out;
    }
    t.user_id = u.id;
    t.admin = u.admin;
    (void) snprintf(t.user, sizeof(t.user), "%s", u.name);
    (void) snprintf(t.role, sizeof(t.role), "%s", role);
    (void) snprintf(t.name, sizeof(t.name), "%s", name ? name : "");
    rc = rt_auth_token_create(r->st, &t, secret, &err);
    if (rc < 0) {
        rt__reply_err(r, rc, &err);
        goto out;
    }
    {
        struct rt_log_ctx ctx = { .action = "create token" };
        rt_log(RT_LOG_INFO, &ctx, "created %s token %s for '%s'", t.role, t.id, t.user);
    }
    j = token_json(&t);
    if (j)
        (void) json_object_set_new(j, "token", json_string(secret));
    rt__reply_json(r, 201, j);
    explicit_bzero(secret, sizeof(secret));
out:
    rt_store_token_done(&t);
    json_decref(body);
    return r->status;
}

static int tokens(struct rt_req *r)
{
    struct rt_err err = { 0 };
    int rc;

    if (r->nseg == 2 && rt__is(r, "GET")) {
        char user[RT_NAME_SIZE + 1];
        json_t *out = json_array();
        int n = rt__query(r, "user", user, sizeof(user));

        if (!out)
            return rt__reply_error(r, 503, "out of memory");
        rc = n == -2 ? rt__reply_error(r, 400, "user too long") : 0;
        if (rc == 0)
            rc = rt_store_token_list(r->st, n >= 0 ? user : NULL, on_token, out, &err);
        if (rc != 0) {
            json_decref(out);
            return rc < 0 ? rt__reply_err(r, rc, &err) : r->status;
        }
        return rt__reply_json(r, 200, out);
    }
    if (r->nseg == 2 && strcmp(r->method, "POST") == 0)
        return create_token(r);
    if (r->nseg == 3 && strcmp(r->method, "DELETE") == 0) {
        rc = rt_store_token_delete(r->st, r->seg[2], &err);
        return rc < 0 ? rt__reply_err(r, rc, &err) : rt__reply_empty(r, 204);
    }
    return r->nseg > 3 ? rt__reply_error(r, 404, "no such endpoint")
                       : rt__reply_error(r, 405, "method not allowed");
}

/* --- hardware tiers -------------------------------------------------------------------- */

/* "lightSleepSeconds": absent leaves @t as it is, null is the node's light_sleep_ms, else
 * -1 (never) or seconds.  Returns 0 or -1 after a 400. */
static int read_tier_light(struct rt_req *r, json_t *body, struct rt_tier *t)
{
    json_t *v = json_object_get(body, "lightSleepSeconds");

    if (!v)
        return 0;
    if (json_is_null(v)) {
        t->light_set = false;
        return 0;
    }
    if (!json_is_integer(v))
        return rt__reply_error(r, 400,
                               "field 'lightSleepSeconds' must be an integer number of seconds, "
                               "-1 (never) or null (the node's light_sleep_ms)"),
               -1;
    if (!rt_sleep_light_valid(json_integer_value(v)))
        return rt__reply_error(r, 400, "lightSleepSeconds must be -1 (never) or 1 to %lld seconds",
                               RT_LIGHT_SLEEP_MAX),
               -1;
    t->light_set = true;
    t->light_sleep = json_integer_value(v);
    return 0;
}

static int add_tier(struct rt_req *r)
{
    json_t *body = rt__req_object(r, false);
    const char *name = NULL, *pretty = NULL, *kind = NULL;
    struct rt_tier t = { .default_sleep = -1 };
    struct rt_err err = { 0 };
    double cpus = 0, memory = 0, disk = 0, vram = 0;
    long long gpus = 0, sleep = -1;
    int rc;

    if (!body)
        return r->status;
    if (rt__field_str(r, body, "name", true, &name) < 0 ||
        rt__field_str(r, body, "prettyName", false, &pretty) < 0 ||
        rt__field_num(r, body, "cpus", true, 0.001, 4096, &cpus) < 0 ||
        rt__field_num(r, body, "memory", true, 1 << 20, 1e15, &memory) < 0 ||
        rt__field_num(r, body, "disk", false, 0, 1e16, &disk) < 0 ||
        rt__field_int(r, body, "gpus", false, 0, 64, &gpus) < 0 ||
        rt__field_str(r, body, "gpuKind", false, &kind) < 0 ||
        rt__field_num(r, body, "vram", false, 0, 1e15, &vram) < 0 ||
        rt__field_bool(r, body, "zero", &t.zero) < 0 ||
        rt__field_int(r, body, "sleepTimeSeconds", false, -1, 0x7fffffff, &sleep) < 0 ||
        read_tier_light(r, body, &t) < 0)
        goto out;
    if (strlen(name) >= sizeof(t.name) || (pretty && strlen(pretty) >= sizeof(t.pretty)) ||
        (kind && strlen(kind) >= sizeof(t.gpu_kind))) {
        rt__reply_error(r, 400, "name, prettyName or gpuKind too long");
        goto out;
    }
    (void) snprintf(t.name, sizeof(t.name), "%s", name);
    (void) snprintf(t.pretty, sizeof(t.pretty), "%s", pretty ? pretty : name);
    (void) snprintf(t.gpu_kind, sizeof(t.gpu_kind), "%s", kind ? kind : "");
    t.cpus = cpus;
    t.memory = (uint64_t) memory;
    t.disk = (uint64_t) disk;
    t.vram = (uint64_t) vram;
    t.gpus = (int) gpus;
    t.default_sleep = sleep == 0 ? -1 : sleep;
    if (rt_tiers_validate(&t, &err) < 0) {
        rt__reply_error(r, 400, "%s", err.msg);
        goto out;
    }
    rc = rt_store_tier_add(r->st, &t, &err);
    if (rc < 0) {
        rt__reply_err(r, rc, &err);
        goto out;
    }
    rc = rt_store_tier_get(r->st, t.name, &t, &err);
    if (rc < 0) {
        rt__reply_err(r, rc, &err);
        goto out;
    }
    {
        struct rt_log_ctx ctx = { .action = "add tier" };
        rt_log(RT_LOG_INFO, &ctx, "added hardware tier '%s'", t.name);
    }
    rt__reply_json(r, 201, rt__json_tier(&t));
out:
    json_decref(body);
    return r->status;
}

/* PATCH: the sleep defaults of a tier; Spaces on it see them at their next idle check. */
static int update_tier(struct rt_req *r, const char *name)
{
    json_t *body = rt__req_object(r, false);
    struct rt_tier t;
    struct rt_err err = { 0 };
    long long sleep = 0;
    int rc;

    if (!body)
        return r->status;
    rc = rt_store_tier_get(r->st, name, &t, &err);
    if (rc < 0) {
        rt__reply_err(r, rc, &err);
        goto out;
    }
    rc = rt__field_int(r, body, "sleepTimeSeconds", false, -1, 0x7fffffff, &sleep);
    if (rc < 0 || read_tier_light(r, body, &t) < 0)
        goto out;
    if (rc > 0)
        t.default_sleep = sleep == 0 ? -1 : sleep;
    rc = rt_store_tier_set_sleep(r->st, &t, &err);
    if (rc >= 0)
        rc = rt_store_tier_get(r->st, name, &t, &err);
    if (rc < 0) {
        rt__reply_err(r, rc, &err);
        goto out;
    }
    {
        struct rt_log_ctx ctx = { .action = "update tier" };
        rt_log(RT_LOG_INFO, &ctx, "updated the sleep defaults of hardware tier '%s'", t.name);
    }
    rt__reply_json(r, 200, rt__json_tier(&t));
out:
    json_decref(body);
    return r->status;
}

static int hardware(struct rt_req *r)
{
    struct rt_err err = { 0 };
    int rc;

    if (r->nseg == 2 && rt__is(r, "GET"))
        return rt__list_hardware(r);
    if (r->nseg == 2 && strcmp(r->method, "POST") == 0)
        return add_tier(r);
    if (r->nseg == 3 && strcmp(r->method, "PATCH") == 0)
        return update_tier(r, r->seg[2]);
    if (r->nseg == 3 && strcmp(r->method, "DELETE") == 0) {
        rc = rt_store_tier_users(r->st, r->seg[2], &err);
        if (rc > 0)
            return rt__reply_error(r, 409, "hardware tier '%s' is used by %d Space%s", r->seg[2],
                                   rc, rc == 1 ? "" : "s");
        if (rc >= 0)
            rc = rt_store_tier_delete(r->st, r->seg[2], &err);
        return rc < 0 ? rt__reply_err(r, rc, &err) : rt__reply_empty(r, 204);
    }
    return r->nseg > 3 ? rt__reply_error(r, 404, "no such endpoint")
                       : rt__reply_error(r, 405, "method not allowed");
}

/* GET /api/admin/gpus: the inventory, each unit with its holder. */
static int gpus(struct rt_req *r)
{
    char *text;
    json_t *j;

    if (r->nseg != 2)
        return rt__reply_error(r, 404, "no such endpoint");
    if (!rt__is(r, "GET"))
        return rt__reply_error(r, 405, "method not allowed");
    if (!r->api->gpus)
        return rt__reply_json(r, 200,
                              json_pack("{s:s, s:s, s:i, s:[], s:{}}", "backend", "none", "driver",
                                        "", "gpus", 0, "units", "free"));
    text = rt_gpunode_json(r->api->gpus);
    j = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    return j ? rt__reply_json(r, 200, j) : rt__reply_error(r, 500, "out of memory");
}

/* POST /api/admin/gc: runs the garbage collector now (docs/API.md). */
static int gc(struct rt_req *r)
{
    struct rt_gc_report rep;
    struct rt_err err = { 0 };
    json_t *removed;
    int rc;

    if (r->nseg != 2)
        return rt__reply_error(r, 404, "no such endpoint");
    if (!rt__is(r, "POST"))
        return rt__reply_error(r, 405, "method not allowed");
    rc = rt_builder_gc(r->api->builder, &rep, &err);
    if (rc < 0)
        return rt__reply_err(r, rc, &err);
    removed = json_array();
    for (size_t i = 0; removed && i < rep.n; i++)
        (void) json_array_append_new(removed, json_string(rep.removed[i]));
    rc = rt__reply_json(r, 200,
                        removed ? json_pack("{s:o, s:I}", "removed", removed, "freedBytes",
                                            (json_int_t) rep.freed_bytes)
                                : NULL);
    rt_gc_report_done(&rep);
    return rc;
}

int rt__api_admin(struct rt_req *r)
{
    int rc;

    if (!rt_auth_is_user(&r->who))
        return rt__reply_error(r, 401, "admin endpoints need an admin token");
    if (!rt_auth_is_admin(&r->who))
        return rt__reply_error(r, 403, "admin endpoints need an admin token");
    /* A fine-grained or read-only admin token reads; changing needs a full write token. */
    if (strcmp(r->method, "GET") != 0 &&
        (strcmp(r->who.token.role, "write") != 0 || r->who.token.n_spaces > 0))
        return rt__reply_error(r, 403,
                               "changing users, tokens or tiers needs an unscoped "
                               "write token");
    if (r->nseg < 2)
        return rt__reply_error(r, 404, "no such endpoint");
    /* Not under the store lock: the collector waits for a running build, which takes
     * it to log. */
    if (strcmp(r->seg[1], "gc") == 0)
        return gc(r);
    rt_store_lock(r->st);
    if (strcmp(r->seg[1], "users") == 0)
        rc = users(r);
    else if (strcmp(r->seg[1], "tokens") == 0)
        rc = tokens(r);
    else if (strcmp(r->seg[1], "hardware") == 0)
        rc = hardware(r);
    else if (strcmp(r->seg[1], "gpus") == 0)
        rc = gpus(r);
    else
        rc = rt__reply_error(r, 404, "no such endpoint");
    rt_store_unlock(r->st);
    return rc;
}
