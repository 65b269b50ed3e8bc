/* The internal contract with spaceproxy (docs/ARCHITECTURE.md): routes, wake, activity
 * and check-token.  Only the proxy token (and admins, for debugging) may call these. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "lifecycle.h"
#include "log.h"
#include "names.h"
#include "util.h"
#include "banned.h"

#define RT_ACTIVITY_MAX 10000 /* ids in one activity report */

static int on_route(const struct rt_space *s, void *userdata)
{
    char id[RT_ID_SIZE];

    (void) snprintf(id, sizeof(id), "%s/%s", s->owner, s->name);
    (void) json_array_append_new(
        userdata, json_pack("{s:s, s:s, s:s, s:b, s:o, s:{}, s:b}", "id", id, "host", s->host,
                            "stage", rt__space_stage(s), "private", s->private_, "upstream",
                            s->upstream[0] && !s->paused ? json_string(s->upstream) : json_null(),
                            "custom_headers", "disable_embedding", 0));
    return 0;
}

/* Long-poll waiters hold an API worker each: at most a quarter of api_threads, and
 * never more than RT_ROUTE_WAITERS_MAX, so the API keeps its other workers (one proxy
 * uses one waiter; a request beyond the cap is answered at once, as without wait). */
#define RT_ROUTE_WAITERS_MAX 4
#define RT_ROUTE_WAIT_MAX_S 30
#define RT_ROUTE_WAIT_SLICE_MS 250 /* re-reads: shutdown, and bumps by another process */

static atomic_int route_waiters;

static bool waiter_enter(const struct rt_req *r)
{
    int64_t cap = r->api->cfg->api_threads / 4;
    int n = atomic_fetch_add(&route_waiters, 1);

    if (cap > RT_ROUTE_WAITERS_MAX)
        cap = RT_ROUTE_WAITERS_MAX;
    if (n < cap)
        return true;
    atomic_fetch_sub(&route_waiters, 1);
    return false;
}

/* With the store locked: until the generation leaves @since, @wait_s passes or runtimed
 * stops.  The lock is free while it waits. */
static int64_t wait_change(struct rt_req *r, int64_t since, uint64_t wait_s)
{
    uint64_t end = rt_now_ns() + wait_s * 1000000000ULL;
    int64_t gen = since;

    if (!waiter_enter(r))
        return rt_store_generation(r->st);
    while (gen == since && !atomic_load(&r->api->stopping)) {
        uint64_t now = rt_now_ns(), left_ms;
        if (now >= end)
            break;
        left_ms = (end - now) / 1000000;
        gen = rt_store_generation_wait(r->st, since,
                                       left_ms < RT_ROUTE_WAIT_SLICE_MS ? (unsigned) left_ms + 1
                                                                        : RT_ROUTE_WAIT_SLICE_MS);
    }
    atomic_fetch_sub(&route_waiters, 1);
    return gen;
}

/* ?since=N: 304 when the generation is still N; &wait=S (seconds, at most 30) holds the
 * request until it changes (200) or S passes (304): the proxy learns a change at once. */
static int routes(struct rt_req *r)
{
    int64_t gen = rt_store_generation(r->st);
    struct rt_err err = { 0 };
    char since[24], wait[24];
    uint64_t wait_s = 0;
    json_t *spaces;
    int rc;

    if (rt__query(r, "wait", wait, sizeof(wait)) != -1) {
        if (rt_parse_u64(wait, &wait_s) < 0)
            return rt__reply_error(r, 400, "wait must be a number of seconds");
        if (wait_s > RT_ROUTE_WAIT_MAX_S)
            wait_s = RT_ROUTE_WAIT_MAX_S;
    }
    if (rt__query(r, "since", since, sizeof(since)) != -1) {
        uint64_t v;
        if (rt_parse_u64(since, &v) < 0)
            return rt__reply_error(r, 400, "since must be a generation number");
        if ((int64_t) v == gen && wait_s) {
            gen = wait_change(r, gen, wait_s);
            /* Not a 304: the proxy would take it for "not held" and slow down. */
            if ((int64_t) v == gen && atomic_load(&r->api->stopping))
                return rt__reply_error(r, 503, "runtimed is stopping");
        }
        if ((int64_t) v == gen)
            return rt__reply_empty(r, 304);
    }
    spaces = json_array();
    if (!spaces)
        return rt__reply_error(r, 503, "out of memory");
    rc = rt_store_space_list(r->st, 0, on_route, spaces, &err);
    if (rc < 0) {
        json_decref(spaces);
        return rt__reply_err(r, rc, &err);
    }
    return rt__reply_json(
        r, 200, json_pack("{s:I, s:o}", "generation", (json_int_t) gen, "spaces", spaces));
}

/* Reads {"id": "owner/name"} and loads that Space.  Replies on failure. */
static int body_space(struct rt_req *r, json_t *body, struct rt_space *s)
{
    char owner[RT_NAME_SIZE], name[RT_NAME_SIZE];
    struct rt_err err = { 0 };
    const char *id = NULL;
    int rc;

    if (rt__field_str(r, body, "id", true, &id) < 0)
        return -1;
    if (rt_id_split(id, owner, name, &err) < 0)
        return rt__reply_error(r, 400, "invalid id: %s", err.msg), -1;
    rc = rt_store_space_get(r->st, owner, name, s, &err);
    if (rc < 0)
        return rt__reply_err(r, rc, &err), -1;
    return 0;
}

static int wake(struct rt_req *r)
{
    json_t *body = rt__req_object(r, false);
    struct rt_err err = { 0 };
    struct rt_space s;

    if (!body)
        return r->status;
    if (body_space(r, body, &s) < 0)
        goto out;
    if (s.paused) {
        rt__reply_json(r, 409,
                       json_pack("{s:s, s:s}", "error", "this Space is paused by its owner",
                                 "stage", "PAUSED"));
        goto out;
    }
    (void) rt_store_event_add(r->st, s.id, "wake", "", &err);
    (void) rt_store_space_touch(r->st, s.id, rt_store_now_ms(), &err);
    /* A frozen Space is thawed inline (its upstream is back when this returns); a
     * stopped one is started by the supervisor.  -ENOENT: never built, nothing to wake. */
    if (r->api->lc && rt_lifecycle_wake(r->api->lc, s.id, &err) == -EBUSY) {
        rt__reply_json(r, 409, json_pack("{s:s, s:s}", "error", err.msg, "stage", "PAUSED"));
        goto out;
    }
    (void) rt_store_space_get(r->st, s.owner, s.name, &s, &err);
    /* A thawed Space (or one woken in its sleep grace) answers now: the proxy may send
     * its held requests there without waiting for the route table. */
    rt__reply_json(
        r, 202,
        s.upstream[0] && !s.paused
            ? json_pack("{s:s, s:s}", "stage", rt__space_stage(&s), "upstream", s.upstream)
            : json_pack("{s:s}", "stage", rt__space_stage(&s)));
out:
    json_decref(body);
    return r->status;
}

static int activity(struct rt_req *r)
{
    json_t *body = rt__req_object(r, false), *ids, *v;
    int64_t now = rt_store_now_ms();
    size_t i;

    if (!body)
        return r->status;
    ids = json_object_get(body, "ids");
    if (!json_is_array(ids) || json_array_size(ids) > RT_ACTIVITY_MAX) {
        rt__reply_error(r, 400, "field 'ids' must be a list of at most %d 'owner/name'",
                        RT_ACTIVITY_MAX);
        goto out;
    }
    json_array_foreach(ids, i, v)
    {
        char owner[RT_NAME_SIZE], name[RT_NAME_SIZE];
        struct rt_err err = { 0 };
        struct rt_space s;

        if (!json_is_string(v) || rt_id_split(json_string_value(v), owner, name, &err) < 0) {
            rt__reply_error(r, 400, "ids[%zu] must be a string 'owner/name'", i);
            goto out;
        }
        /* Spaces deleted since the proxy saw them are skipped, not an error. */
        if (rt_store_space_get(r->st, owner, name, &s, &err) >= 0) {
            (void) rt_store_space_touch(r->st, s.id, now, &err);
            if (r->api->lc)
                rt_lifecycle_activity(r->api->lc, s.id);
        }
    }
    rt__reply_empty(r, 204);
out:
    json_decref(body);
    return r->status;
}

/* {"read", "user", "class"}: whether the token may read the Space, and whose it is, so
 * spaceproxy can name the visitor in X-IP-Token (class by the user's plan). */
static int check_token(struct rt_req *r)
{
    json_t *body = rt__req_object(r, false);
    struct rt_principal p = { 0 };
    struct rt_err err = { 0 };
    const char *token = NULL;
    struct rt_space s;
    struct rt_user u = { 0 };
    bool read = false, known = false;
    int rc;

    if (!body)
        return r->status;
    if (body_space(r, body, &s) < 0 || rt__field_str(r, body, "token", true, &token) < 0)
        goto out;
    rc = rt_auth_resolve_token(r->st, token, &p, &err);
    if (rc >= 0) {
        read = rt_auth_is_user(&p) && rt_auth_can_read(&p, &s);
        known = rt_auth_is_user(&p) && rt_store_user_get(r->st, p.token.user, &u, &err) >= 0;
        rt_principal_done(&p);
    } else if (rc != -EACCES) {
        rt__reply_err(r, rc, &err);
        goto out;
    }
    rt__reply_json(r, 200,
                   json_pack("{s:b, s:o, s:o}", "read", read, "user",
                             known ? json_string(u.name) : json_null(), "class",
                             !known                       ? json_null()
                             : strcmp(u.plan, "pro") == 0 ? json_string("pro")
                                                          : json_string("user")));
out:
    json_decref(body);
    return r->status;
}

int rt__api_proxy(struct rt_req *r)
{
    const char *what = r->nseg == 2 ? r->seg[1] : "";
    int rc;

    if (!rt_auth_is_proxy(&r->who) && !rt_auth_is_admin(&r->who))
        return r->who.anonymous
                   ? rt__reply_error(r, 401, "the proxy endpoints need the proxy token")
                   : rt__reply_error(r, 403, "the proxy endpoints need the proxy token");
    rt_store_lock(r->st);
    if (strcmp(what, "routes") == 0)
        rc = rt__is(r, "GET") ? routes(r) : rt__reply_error(r, 405, "use GET");
    else if (strcmp(what, "wake") == 0)
        rc = rt__is(r, "POST") ? wake(r) : rt__reply_error(r, 405, "use POST");
    else if (strcmp(what, "activity") == 0)
        rc = rt__is(r, "POST") ? activity(r) : rt__reply_error(r, 405, "use POST");
    else if (strcmp(what, "check-token") == 0)
        rc = rt__is(r, "POST") ? check_token(r) : rt__reply_error(r, 405, "use POST");
    else
        rc = rt__reply_error(r, 404, "no such endpoint");
    rt_store_unlock(r->st);
    return rc;
}
