/* ZeroGPU over the API: GET /api/admin/gpu-leases (every lease and queued request) and
 * GET /api/spaces/zero-gpu/quota (the caller's quota, and a Space's leases and queue). */
#include <stdio.h>
#include <string.h>

#include "api-internal.h"
#include "gpuzero.h"
#include "gpu-sched/lease.h"
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

/* Who asks: a visitor token (X-IP-Token, as spaceproxy signs it) names the visitor as the
 * device API would; else a signed-in user; else an anonymous client by address. */
int rt__api_gpu_quota(struct rt_req *r)
{
    const char *tok = mg_get_header(r->conn, "X-IP-Token");
    char space[GPU_ID_MAX] = "", id[GPU_ID_MAX];
    int cls = GPU_CLASS_ANON, n;

    if (!rt__is(r, "GET"))
        return rt__reply_error(r, 405, "GET only");
    if (!r->api->zero)
        return no_pool(r);
    n = rt__query(r, "space", space, sizeof(space));
    if (n == -2 || (n >= 0 && !strchr(space, '/')))
        return rt__reply_error(r, 400, "space: expected OWNER/NAME");
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
    return rt__reply_json(r, 200,
                          rt_gpuzero_quota_json(r->api->zero, tok, id, cls, n > 0 ? space : NULL));
}
