/* ZeroGPU over the API: GET /api/admin/gpu-leases (every lease and queued request) and
 * GET /api/spaces/zero-gpu/quota (the caller's quota, and a Space's leases and queue). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api-internal.h"
#include "gpuzero.h"
#include "gpu-sched/lease.h"
#include "names.h"
#include "banned.h"

static int no_pool(struct rt_req *r)
{
    return rt__reply_error(r, 404, "this node has no ZeroGPU pool (zero_gpus: 0)");
}

int rt__api_gpu_leases(struct rt_req *r)
{
    if (!rt_auth_is_admin(&r->who))
        return rt__reply_denied(r, "the lease list is for admins");
    if (!rt__is(r, "GET"))
        return rt__reply_error(r, 405, "GET only");
    if (!r->api->zero) /* a node without a pool has no leases */
        return rt__reply_json(
            r, 200,
            json_pack("{s:i, s:i, s:[], s:[]}", "pool", 0, "queueSize", 0, "leases", "queue"));
    return rt__reply_json(r, 200, rt_gpuzero_leases_json(r->api->zero));
}

/* Checks that the caller may read the Space @id ("OWNER/NAME"): 0, with *full set when
 * they may also see who holds its units (its owner or an admin); else replies 404 as
 * load_space() does, so a private Space cannot be found by probing. */
static int space_visible(struct rt_req *r, const char *id, bool *full)
{
    char owner[RT_NAME_SIZE], name[RT_NAME_SIZE];
    const char *slash = strchr(id, '/');
    struct rt_space s = { 0 };
    struct rt_err err = { 0 };
    int rc = -ENOENT;

    if (slash && (size_t) (slash - id) < sizeof(owner) && strlen(slash + 1) < sizeof(name)) {
        (void) snprintf(owner, sizeof(owner), "%.*s", (int) (slash - id), id);
        (void) snprintf(name, sizeof(name), "%s", slash + 1);
        if (rt_name_check(owner, "owner", &err) == 0 && rt_name_check(name, "name", &err) == 0) {
            rt_store_lock(r->st);
            rc = rt_store_space_get(r->st, owner, name, &s, &err);
            rt_store_unlock(r->st);
        }
    }
    if (rc == -ENOENT || (rc >= 0 && !rt_auth_can_read(&r->who, &s))) {
        rt__reply_json_h(r, 404, json_pack("{s:s}", "error", "Space not found"), "X-Error-Code",
                         "RepoNotFound");
        return -1;
    }
    if (rc < 0)
        return rt__reply_err(r, rc, &err), -1;
    *full = rt_auth_is_admin(&r->who) || rt_auth_is_member(&r->who, &s);
    return 0;
}

/* Adds the Space's counts and where the caller's own request waits (0 when it does not).
 * Unless @full, drops the lists: a reader who is not the Space's owner never sees who
 * holds or waits, nor worker pids. */
static int space_counts(json_t *q, bool full)
{
    json_t *sp = json_object_get(q, "space"), *queue = json_object_get(sp, "queue"), *e;
    const char *me = json_string_value(json_object_get(q, "identity"));
    json_int_t pos = 0;
    size_t i;

    json_array_foreach(queue, i, e)
    {
        json_int_t p = json_integer_value(json_object_get(e, "position"));

        if (me && strcmp(me, json_string_value(json_object_get(e, "identity")) ?: "") == 0 &&
            p > 0 && (pos == 0 || p < pos))
            pos = p;
    }
    if (json_object_set_new(
            sp, "leaseCount",
            json_integer((json_int_t) json_array_size(json_object_get(sp, "leases")))) < 0 ||
        json_object_set_new(sp, "queueLength", json_integer((json_int_t) json_array_size(queue))) <
            0 ||
        json_object_set_new(sp, "position", json_integer(pos)) < 0)
        return -1;
    if (!full) {
        (void) json_object_del(sp, "leases");
        (void) json_object_del(sp, "queue");
    }
    return 0;
}

/* Who asks: a visitor token (X-IP-Token, as spaceproxy signs it) names the visitor as the
 * device API would; else a signed-in user; else an anonymous client by address. */
int rt__api_gpu_quota(struct rt_req *r)
{
    const char *tok = mg_get_header(r->conn, "X-IP-Token");
    char space[GPU_ID_MAX] = "", id[GPU_ID_MAX];
    int cls = GPU_CLASS_ANON, n;
    bool full = false;
    json_t *q;

    if (!rt__is(r, "GET"))
        return rt__reply_error(r, 405, "GET only");
    if (!r->api->zero)
        return no_pool(r);
    n = rt__query(r, "space", space, sizeof(space));
    if (n == -2 || (n >= 0 && !strchr(space, '/')))
        return rt__reply_error(r, 400, "space: expected OWNER/NAME");
    if (n > 0 && space_visible(r, space, &full) < 0)
        return r->status;
    if (rt_auth_is_user(&r->who)) {
        struct rt_user u;
        struct rt_err err = { 0 };

        (void) snprintf(id, sizeof(id), "user:%s", r->who.token.user);
        rt_store_lock(r->st);
        /* the user's plan picks the class, as the proxy's X-IP-Token would */
        cls =
            rt_store_user_get(r->st, r->who.token.user, &u, &err) == 0 && strcmp(u.plan, "pro") == 0
                ? GPU_CLASS_PRO
                : GPU_CLASS_USER;
        rt_store_unlock(r->st);
    } else {
        (void) snprintf(id, sizeof(id), "ip:%s", r->ri->remote_addr);
    }
    q = rt_gpuzero_quota_json(r->api->zero, tok, id, cls, n > 0 ? space : NULL);
    if (q && n > 0 && space_counts(q, full) < 0)
        json_decref(q), q = NULL;
    return rt__reply_json(r, 200, q);
}
