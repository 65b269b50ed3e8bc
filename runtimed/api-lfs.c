/* Large files and downloads: the Git LFS batch API at /spaces/OWNER/NAME.git/info/lfs/
 * objects/batch with the basic transfer (signed PUT/GET URLs at …/lfs-object/OID, and
 * …/lfs-verify), used alike by huggingface_hub and by git-lfs; and
 * /spaces/OWNER/NAME/resolve/REV/PATH, which hf_hub_download reads (HEAD for the
 * metadata, then GET), LFS files included. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api-repo.h"
#include "cleanup.h"
#include "lfs.h"
#include "log.h"
#include "spawn.h"
#include "util.h"
#include "banned.h"

#define BATCH_OBJECTS_MAX 1000
#define IO_CHUNK (256u << 10)

static void lfs_freep(struct rt_lfs **p)
{
    rt_lfs_free(*p);
}

static void writer_freep(struct rt_lfs_writer **p)
{
    rt_lfs_writer_free(*p);
}

/* --- batch ----------------------------------------------------------------------------- */

static json_t *object_error(const char *oid, json_int_t size, int code, const char *msg)
{
    return json_pack("{s:s, s:I, s:{s:i, s:s}}", "oid", oid ? oid : "", "size", size, "error",
                     "code", code, "message", msg);
}

static json_t *batch_object(struct rt_req *r, struct rt_lfs *store, const struct rt_space *s,
                            bool upload, json_t *o, const char *base)
{
    const char *oid = json_string_value(json_object_get(o, "oid"));
    json_t *jsize = json_object_get(o, "size");
    char path[600], href[1024];
    const char *auth = mg_get_header(r->conn, "Authorization");
    json_int_t size = json_is_integer(jsize) ? json_integer_value(jsize) : -1;
    struct rt_err err = { 0 };
    uint64_t have = 0;
    json_t *actions;
    bool present;

    if (!oid || !rt_lfs_oid_is_valid(oid))
        return object_error(oid, size, 422, "oid must be a SHA-256 in lowercase hex");
    if (size < 0)
        return object_error(oid, size, 422, "size must be an integer >= 0");
    present = rt_lfs_has(store, oid, &have, &err) == 0 && have == (uint64_t) size;
    if (upload && present) /* no actions: the client skips it */
        return json_pack("{s:s, s:I, s:b}", "oid", oid, "size", size, "authenticated", 1);
    if (!upload && !present)
        return object_error(oid, size, 404, "object not found");
    rt__lfs_signed_path(upload ? "PUT" : "GET", s, oid, (uint64_t) size, path, sizeof(path));
    (void) snprintf(href, sizeof(href), "%s%s", base, path);
    actions = json_pack("{s:{s:s, s:i}}", upload ? "upload" : "download", "href", href,
                        "expires_in", RT_LFS_URL_TTL_S);
    if (actions && upload) {
        (void) snprintf(href, sizeof(href), "%s/api/spaces/%s/%s/lfs-verify", base, s->owner,
                        s->name);
        (void) json_object_set_new(
            actions, "verify",
            auth ? json_pack("{s:s, s:{s:s}}", "href", href, "header", "Authorization", auth)
                 : json_pack("{s:s}", "href", href));
    }
    return json_pack("{s:s, s:I, s:b, s:o}", "oid", oid, "size", size, "authenticated", 1,
                     "actions", actions ? actions : json_object());
}

static int batch(struct rt_req *r, const char *owner, const char *name)
{
    _cleanup_(lfs_freep) struct rt_lfs *store = NULL;
    const char *op = NULL;
    json_t *body = NULL, *objs, *o, *out = NULL;
    struct rt_err err = { 0 };
    struct rt_space s;
    char base[300];
    bool upload;
    size_t i;
    int rc;

    if (!rt__is(r, "POST"))
        return rt__reply_error(r, 405, "use POST");
    body = rt__req_object(r, false);
    if (!body)
        return r->status;
    if (rt__field_str(r, body, "operation", true, &op) < 0)
        goto out;
    upload = strcmp(op, "upload") == 0;
    if (!upload && strcmp(op, "download") != 0) {
        rt__reply_error(r, 422, "operation must be upload or download");
        goto out;
    }
    /* git-lfs asks for credentials only after a 401. */
    if (r->who.anonymous && upload) {
        rt__reply_json_h(r, 401, json_pack("{s:s}", "message", "Authentication required"),
                         "LFS-Authenticate", "Basic realm=\"Spaceport\"");
        goto out;
    }
    if (rt__repo_load(r, owner, name, upload, &s) < 0) {
        if (r->status == 401) { /* rebuild it with the challenge git-lfs needs */
            r->status = 0;
            free(r->out);
            r->out = NULL;
            rt__reply_json_h(r, 401, json_pack("{s:s}", "message", "Authentication required"),
                             "LFS-Authenticate", "Basic realm=\"Spaceport\"");
        }
        goto out;
    }
    objs = json_object_get(body, "objects");
    if (!json_is_array(objs) || json_array_size(objs) > BATCH_OBJECTS_MAX) {
        rt__reply_error(r, 422, "objects must be a list of at most %d", BATCH_OBJECTS_MAX);
        goto out;
    }
    if ((rc = rt_lfs_open_space(r->api->cfg->data_dir, s.id, s.created_at, &store, &err)) < 0) {
        rt__reply_err(r, rc, &err);
        goto out;
    }
    rt__base_url(r, base, sizeof(base));
    out = json_array();
    json_array_foreach(objs, i, o)
    {
        if (!out || json_array_append_new(out, batch_object(r, store, &s, upload, o, base)) < 0) {
            rt__reply_error(r, 503, "out of memory");
            goto out;
        }
    }
    /* Only basic: the client falls back to it from xet and multipart. */
    rt__reply_json(
        r, 200,
        json_pack("{s:s, s:O, s:s}", "transfer", "basic", "objects", out, "hash_algo", "sha256"));
out:
    json_decref(out);
    json_decref(body);
    return r->status;
}

/* --- object transfer ------------------------------------------------------------------- */

/* One range of the Range header ("bytes=A-B", "bytes=A-", "bytes=-N") over @size bytes:
 * 1 with the offset and length set, 0 when there is none (or several: the whole body is fine then),
 * -1 when it cannot be satisfied.  hf_hub_download resumes an interrupted download so,
 * and appends whatever comes: a 200 with the whole file would corrupt it. */
static int parse_range(const char *h, uint64_t size, uint64_t *off, uint64_t *len)
{
    uint64_t a = 0, b = 0;
    const char *p, *dash;
    char num[24];

    if (!h || strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
        return 0;
    p = h + 6;
    dash = strchr(p, '-');
    if (!dash || (size_t) (dash - p) >= sizeof(num))
        return 0;
    if (dash == p) { /* the last N bytes */
        if (rt_parse_u64(dash + 1, &b) < 0 || b == 0)
            return -1;
        *len = b < size ? b : size;
        *off = size - *len;
        return size ? 1 : -1;
    }
    (void) snprintf(num, sizeof(num), "%.*s", (int) (dash - p), p);
    if (rt_parse_u64(num, &a) < 0)
        return 0;
    if (a >= size)
        return -1;
    b = size - 1;
    if (dash[1] && (rt_parse_u64(dash + 1, &b) < 0 || b < a))
        return 0;
    if (b >= size)
        b = size - 1;
    *off = a;
    *len = b - a + 1;
    return 1;
}

/* Answers with @size bytes from @fd (or from @buf when @fd is -1), honouring a Range
 * header; @hdrs are extra name/value pairs ending with NULL. */
static int send_content(struct rt_req *r, const char *const *hdrs, int fd, const char *buf,
                        uint64_t size)
{
    uint64_t off = 0, len = size;
    int status = 200, range = parse_range(mg_get_header(r->conn, "Range"), size, &off, &len);
    char n[32], cr[96];

    if (range < 0) {
        (void) snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long) size);
        return rt__reply_json_h(r, 416, json_pack("{s:s}", "error", "range not satisfiable"),
                                "Content-Range", cr);
    }
    if (range > 0)
        status = 206;
    if (fd >= 0 && off && lseek(fd, (off_t) off, SEEK_SET) < 0)
        return rt__reply_error(r, 500, "seek the object");
    r->status = status;
    r->sent = true;
    (void) mg_response_header_start(r->conn, status);
    for (size_t i = 0; hdrs && hdrs[i]; i += 2)
        (void) mg_response_header_add(r->conn, hdrs[i], hdrs[i + 1], -1);
    (void) mg_response_header_add(r->conn, "Content-Type", "application/octet-stream", -1);
    (void) snprintf(n, sizeof(n), "%llu", (unsigned long long) len);
    (void) mg_response_header_add(r->conn, "Content-Length", n, -1);
    (void) mg_response_header_add(r->conn, "Accept-Ranges", "bytes", -1);
    if (range > 0) {
        (void) snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long) off,
                        (unsigned long long) (off + len - 1), (unsigned long long) size);
        (void) mg_response_header_add(r->conn, "Content-Range", cr, -1);
    }
    (void) mg_response_header_add(r->conn, "Cache-Control", "no-store", -1);
    (void) mg_response_header_send(r->conn);
    if (rt__is(r, "HEAD"))
        return status;
    if (fd < 0) {
        (void) mg_write(r->conn, buf + off, (size_t) len);
        return status;
    }
    {
        _cleanup_free_ char *chunk = malloc(IO_CHUNK);
        while (chunk && len > 0) {
            ssize_t got = read(fd, chunk, len < IO_CHUNK ? (size_t) len : IO_CHUNK);
            if (got <= 0 || mg_write(r->conn, chunk, (size_t) got) != (int) got)
                break;
            len -= (uint64_t) got;
        }
    }
    return status;
}

static int put_object(struct rt_req *r, struct rt_lfs *store, const char *oid, uint64_t size)
{
    _cleanup_(writer_freep) struct rt_lfs_writer *w = NULL;
    _cleanup_free_ char *buf = malloc(IO_CHUNK);
    long long declared = r->ri->content_length;
    struct rt_err err = { 0 };
    int rc;

    if (!buf)
        return rt__reply_error(r, 503, "out of memory");
    if (declared >= 0 && (uint64_t) declared != size) {
        mg_disable_connection_keep_alive(r->conn);
        return rt__reply_error(r, 400, "the body must be the object's %llu bytes",
                               (unsigned long long) size);
    }
    if ((rc = rt_lfs_writer_start(store, oid, size, &w, &err)) < 0) {
        mg_disable_connection_keep_alive(r->conn);
        return rc == -EFBIG ? rt__reply_error(r, 413, "%s", err.msg) : rt__reply_err(r, rc, &err);
    }
    for (;;) {
        int n = mg_read(r->conn, buf, IO_CHUNK);
        if (n <= 0)
            break;
        if ((rc = rt_lfs_writer_write(w, buf, (size_t) n, &err)) < 0) {
            mg_disable_connection_keep_alive(r->conn);
            return rt__reply_error(r, 400, "%s", err.msg);
        }
    }
    if ((rc = rt_lfs_writer_finish(w, &err)) < 0)
        return rc == -EBADMSG ? rt__reply_error(r, 400, "%s", err.msg) : rt__reply_err(r, rc, &err);
    return rt__reply_json(r, 200, json_object());
}

int rt__api_lfs_object(struct rt_req *r, const struct rt_space *s, const char *oid)
{
    _cleanup_(lfs_freep) struct rt_lfs *store = NULL;
    bool put = rt__is(r, "PUT");
    struct rt_err err = { 0 };
    uint64_t size = 0, have = 0;
    int rc;

    if (!put && !rt__is(r, "GET") && !rt__is(r, "HEAD"))
        return rt__reply_error(r, 405, "use PUT or GET");
    if (!rt_lfs_oid_is_valid(oid) || !rt__lfs_signature_ok(r, put ? "PUT" : "GET", s, oid, &size))
        return rt__reply_error(r, 403,
                               "this transfer URL is not valid (expired, or for "
                               "another object): ask the batch endpoint again");
    if ((rc = rt_lfs_open_space(r->api->cfg->data_dir, s->id, s->created_at, &store, &err)) < 0)
        return rt__reply_err(r, rc, &err);
    if (put)
        return put_object(r, store, oid, size);
    {
        _cleanup_close_ int fd = rt_lfs_open_object(store, oid, &have, &err);
        if (fd < 0)
            return rt__reply_err(r, fd, &err);
        send_content(r, NULL, fd, NULL, have);
    }
    return r->status;
}

int rt__api_lfs_verify(struct rt_req *r, const struct rt_space *s)
{
    _cleanup_(lfs_freep) struct rt_lfs *store = NULL;
    struct rt_err err = { 0 };
    const char *oid = NULL;
    long long size = 0;
    uint64_t have = 0;
    json_t *body;
    int rc;

    body = rt__req_object(r, false);
    if (!body)
        return r->status;
    if (rt__field_str(r, body, "oid", true, &oid) < 0 ||
        rt__field_int(r, body, "size", true, 0, INT64_MAX, &size) < 0)
        goto out;
    if ((rc = rt_lfs_open_space(r->api->cfg->data_dir, s->id, s->created_at, &store, &err)) < 0) {
        rt__reply_err(r, rc, &err);
        goto out;
    }
    if (rt_lfs_has(store, oid, &have, &err) < 0 || have != (uint64_t) size)
        rt__reply_error(r, 404, "object %.64s of %lld bytes is not in the store", oid, size);
    else
        rt__reply_json(r, 200, json_object());
out:
    json_decref(body);
    return r->status;
}

/* --- resolve --------------------------------------------------------------------------- */

static int resolve(struct rt_req *r, const char *owner, const char *name, const char *rev,
                   const char *path)
{
    char dir[RT_REPO_DIR_MAX], sha[RT_GIT_SHA_LEN + 1], etag[RT_LFS_OID_LEN + 3], size[32];
    struct rt_git_file_list files = { 0 };
    const struct rt_git_file *f;
    struct rt_err err = { 0 };
    struct rt_space s;
    int rc;

    if (!rt__is(r, "GET") && !rt__is(r, "HEAD"))
        return rt__reply_error(r, 405, "use GET or HEAD");
    if (rt__repo_load(r, owner, name, false, &s) < 0)
        return r->status;
    rt__repo_dir(r->api, &s, dir, sizeof(dir));
    if ((rc = rt__repo_rev(r, dir, rev, sha)) < 0)
        return r->status;
    if (rc == 1 || (rc = rt_git_list_files(dir, sha, 0, &files, &err)) < 0 ||
        !(f = rt_git_file_list_find(&files, path))) {
        rt_git_file_list_done(&files);
        if (rc < 0)
            return rt__reply_err(r, rc, &err);
        return rt__reply_coded(r, 404, "EntryNotFound", "Entry not found: %.300s", path);
    }
    (void) snprintf(etag, sizeof(etag), "\"%s\"", f->lfs ? f->lfs_oid : f->blob_id);
    (void) snprintf(size, sizeof(size), "%llu", (unsigned long long) f->size);
    {
        const char *hdrs[] = {
            "X-Repo-Commit", sha,  "ETag", etag, f->lfs ? "X-Linked-Etag" : NULL, etag,
            "X-Linked-Size", size, NULL
        };
        if (f->lfs) {
            _cleanup_(lfs_freep) struct rt_lfs *store = NULL;
            _cleanup_close_ int fd = -1;
            uint64_t have = 0;

            if ((rc = rt_lfs_open_space(r->api->cfg->data_dir, s.id, s.created_at, &store, &err)) <
                    0 ||
                (fd = rc = rt_lfs_open_object(store, f->lfs_oid, &have, &err)) < 0) {
                rt_git_file_list_done(&files);
                return rt__reply_err(r, rc, &err);
            }
            send_content(r, hdrs, fd, NULL, have);
        } else {
            char gitdir[RT_REPO_DIR_MAX + 16];
            _cleanup_free_ char *out = NULL;
            size_t len = 0;

            (void) snprintf(gitdir, sizeof(gitdir), "--git-dir=%s", dir);
            rc = rt_run_output(
                (const char *const[]){ "git", gitdir, "cat-file", "blob", f->blob_id, NULL }, NULL,
                f->blob_size + 1, &out, &len, NULL, 0, &err);
            if (rc != 0) {
                rt_git_file_list_done(&files);
                return rt__reply_err(r, rc < 0 ? rc : -EIO, &err);
            }
            send_content(r, hdrs, -1, out, len);
        }
    }
    rt_git_file_list_done(&files);
    return r->status;
}

/* --- the paths outside /api -------------------------------------------------------------- */

/* "/spaces/OWNER/NAME[.git]/REST": copies the names, returns REST (after the '/') or NULL. */
static const char *split(const char *uri, char owner[RT_NAME_SIZE], char name[RT_NAME_SIZE])
{
    const char *p = uri + 8, *a = strchr(p, '/'), *b;
    size_t n;

    if (strncmp(uri, "/spaces/", 8) != 0 || !a || a == p || (size_t) (a - p) >= RT_NAME_SIZE)
        return NULL;
    b = strchr(a + 1, '/');
    if (!b)
        return NULL;
    n = (size_t) (b - a - 1);
    if (n > 4 && strncmp(b - 4, ".git", 4) == 0)
        n -= 4;
    if (n == 0 || n >= RT_NAME_SIZE)
        return NULL;
    (void) snprintf(owner, RT_NAME_SIZE, "%.*s", (int) (a - p), p);
    (void) snprintf(name, RT_NAME_SIZE, "%.*s", (int) n, a + 1);
    return b + 1;
}

bool rt__repo_web_owns(const char *uri)
{
    char owner[RT_NAME_SIZE], name[RT_NAME_SIZE];
    const char *rest = split(uri, owner, name);

    return rest && (strncmp(rest, "resolve/", 8) == 0 || strncmp(rest, "info/lfs/", 9) == 0);
}

static void route(struct rt_req *r)
{
    char owner[RT_NAME_SIZE], name[RT_NAME_SIZE];
    const char *rest = split(r->ri->local_uri, owner, name), *slash;

    if (rest && strcmp(rest, "info/lfs/objects/batch") == 0) {
        batch(r, owner, name);
    } else if (rest && strncmp(rest, "resolve/", 8) == 0 && (slash = strchr(rest + 8, '/')) &&
               slash[1] && (size_t) (slash - rest - 8) < 200) {
        char rev[200];
        (void) snprintf(rev, sizeof(rev), "%.*s", (int) (slash - rest - 8), rest + 8);
        resolve(r, owner, name, rev, slash + 1);
    } else {
        rt__reply_error(r, 404, "no such endpoint");
    }
}

int rt__repo_web_handler(struct mg_connection *conn, void *cbdata)
{
    struct rt_api *api = cbdata;
    struct rt_req r = { 0 };
    struct rt_log_ctx ctx = { .action = "files" };
    struct rt_err err = { 0 };
    int rc = rt__req_start(&r, conn, api, &err);

    if (rc < 0) {
        rt__reply_json_h(&r, 401, json_pack("{s:s}", "error", err.msg), "LFS-Authenticate",
                         "Basic realm=\"Spaceport\"");
    } else if (rt_auth_is_proxy(&r.who)) {
        rt__reply_error(&r, 403, "the proxy token may call only /api/proxy/");
    } else {
        route(&r);
    }
    if (!r.status)
        rt__reply_error(&r, 500, "internal error: no answer");
    rt__flush(&r);
    rt_log(r.status >= 500  ? RT_LOG_ERR
           : r.status < 400 ? RT_LOG_DEBUG
                            : RT_LOG_INFO,
           &ctx, "%s %s %d user=%s", r.method, r.ri->local_uri ? r.ri->local_uri : "?", r.status,
           r.who.anonymous ? "-" : r.who.token.user);
    rt_principal_done(&r.who);
    free(r.out);
    return r.status;
}
