/* Private to the api*.c files: one request, the replies, and checked reading of JSON
 * bodies and query strings.  Every reply helper returns the HTTP status it sent, which
 * is what a civetweb handler returns. */
#ifndef SP_RUNTIMED_API_INTERNAL_H
#define SP_RUNTIMED_API_INTERNAL_H

#include <civetweb.h>
#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "api.h"
#include "auth.h"
#include "error.h"

#define RT_MAX_SEGS 12

struct rt_req {
    struct mg_connection *conn;
    const struct mg_request_info *ri;
    struct rt_api *api;
    struct rt_store *st;
    struct rt_principal who;
    const char *method;
    char path[1024];
    char *seg[RT_MAX_SEGS]; /* path segments after "/api/" */
    int nseg;
    int status; /* the status of the reply, 0 before one is made */
    /* the reply, sent by rt__flush() after the handler returns */
    char *out;
    bool oom;
    bool sent; /* a streaming handler wrote the answer itself */
    char hname[32];
    char hvalue[1400];
};

static inline bool rt__is(const struct rt_req *r, const char *method)
{
    return strcmp(r->method, method) == 0;
}

/* Fills @r for one civetweb request and resolves who sent it (under the store lock).
 * Returns rt_auth_resolve()'s result; on failure r->who is anonymous and @err says why.
 * Every handler starts here, so every door authenticates the same way. */
int rt__req_start(struct rt_req *r, struct mg_connection *conn, struct rt_api *api,
                  struct rt_err *err);

/* Replies: the first one made wins; none is written to the client before rt__flush(). */
void rt__flush(struct rt_req *r);
int rt__reply_json(struct rt_req *r, int status, json_t *body); /* steals @body */
/* The same with one extra header (e.g. Link). */
int rt__reply_json_h(struct rt_req *r, int status, json_t *body, const char *hname,
                     const char *hvalue);
int rt__reply_error(struct rt_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int rt__reply_empty(struct rt_req *r, int status);
/* Maps a store or auth failure to a status: ENOENT 404, EEXIST/EBUSY 409, EINVAL 400,
 * ENODEV 422, EACCES 403, anything else 500 (logged, with a generic message). */
int rt__reply_err(struct rt_req *r, int rc, const struct rt_err *err);
/* 401 when anonymous, else 403. */
int rt__reply_denied(struct rt_req *r, const char *what);

/* Reads the body as a JSON object (an empty body is {} when @empty_ok).  Returns the
 * object (the caller owns it), or NULL after replying 400 or 413. */
json_t *rt__req_object(struct rt_req *r, bool empty_ok);

/* Field readers: return 1 when present, 0 when absent or null (and not @required),
 * or -1 after replying 400 for a wrong type or a missing required field. */
int rt__field_str(struct rt_req *r, json_t *o, const char *key, bool required, const char **ret);
int rt__field_bool(struct rt_req *r, json_t *o, const char *key, bool *ret);
int rt__field_int(struct rt_req *r, json_t *o, const char *key, bool required, long long min,
                  long long max, long long *ret);
int rt__field_num(struct rt_req *r, json_t *o, const char *key, bool required, double min,
                  double max, double *ret);

/* Copies query parameter @name, decoded, to @buf.  Returns its length, -1 when absent,
 * -2 when too long. */
int rt__query(struct rt_req *r, const char *name, char *buf, size_t len);
/* Whether ?name is "1" or "true". */
bool rt__query_true(struct rt_req *r, const char *name);
/* "http://HOST" as the client addressed us, for URLs in answers. */
void rt__base_url(struct rt_req *r, char *buf, size_t len);

/* ISO 8601 UTC with milliseconds, as the Hub writes times. */
json_t *rt__json_time(int64_t ms);

/* shapes (api-shapes.c) */
const char *rt__space_stage(const struct rt_space *s);
json_t *rt__json_runtime(struct rt_req *r, const struct rt_space *s);
json_t *rt__json_space(struct rt_req *r, const struct rt_space *s, bool full);
json_t *rt__json_tier(const struct rt_tier *t);

/* handlers, by file */
int rt__api_whoami(struct rt_req *r);
int rt__api_repos(struct rt_req *r);
int rt__api_spaces(struct rt_req *r);
int rt__api_admin(struct rt_req *r);
int rt__api_proxy(struct rt_req *r);
int rt__api_backup(struct rt_req *r);
/* ZeroGPU (api-gpu.c): GET /api/admin/gpu-leases, GET /api/spaces/zero-gpu/quota */
int rt__api_gpu_leases(struct rt_req *r);
int rt__api_gpu_quota(struct rt_req *r);
/* Streams logs as SSE.  Called with the store locked; unlocks it while streaming and
 * locks it again before returning. */
int rt__api_logs(struct rt_req *r, const struct rt_space *s, bool build);
int rt__list_hardware(struct rt_req *r);
/* git smart HTTP at /spaces/OWNER/NAME (api-git.c): a civetweb handler of its own, since
 * git's answers are raw HTTP written by git-http-backend. */
int rt__git_handler(struct mg_connection *conn, void *cbdata);
/* Removes the bare repository of a deleted Space. */
void rt__git_repo_remove(struct rt_api *api, const char *owner, const char *name);

#endif
