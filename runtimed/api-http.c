/* Replies, request bodies and query strings for the API handlers. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api-internal.h"
#include "cleanup.h"
#include "log.h"
#include "banned.h"

#define RT_JSON_MAX_DEPTH 32

static void send_headers(struct rt_req *r, int status, const char *type, size_t len,
                         const char *hname, const char *hvalue)
{
    char n[32];

    (void) mg_response_header_start(r->conn, status);
    if (hname)
        (void) mg_response_header_add(r->conn, hname, hvalue, -1);
    if (type)
        (void) mg_response_header_add(r->conn, "Content-Type", type, -1);
    (void) snprintf(n, sizeof(n), "%zu", len);
    (void) mg_response_header_add(r->conn, "Content-Length", n, -1);
    (void) mg_response_header_add(r->conn, "Cache-Control", "no-store", -1);
    (void) mg_response_header_send(r->conn);
}

/* Replies are kept in @r and sent by rt__flush() once the handler has returned and the
 * store lock is free: a slow client must never hold the lock while we write to it. */
int rt__reply_json_h(struct rt_req *r, int status, json_t *body, const char *hname,
                     const char *hvalue)
{
    char *text = NULL;

    if (r->status)
        return r->status; /* the first reply wins */
    if (body)
        text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(body);
    if (!text) {
        r->oom = true;
        return r->status = 503;
    }
    r->out = text;
    if (hname && strlen(hname) < sizeof(r->hname) && strlen(hvalue) < sizeof(r->hvalue)) {
        memcpy(r->hname, hname, strlen(hname) + 1);
        memcpy(r->hvalue, hvalue, strlen(hvalue) + 1);
    }
    return r->status = status;
}

void rt__flush(struct rt_req *r)
{
    static const char oom[] = "{\"error\":\"out of memory\"}";
    const char *body = r->oom ? oom : r->out;
    size_t len = body ? strlen(body) : 0;

    if (r->sent || !r->status)
        return;
    r->sent = true;
    send_headers(r, r->status, body ? "application/json" : NULL, len, r->hname[0] ? r->hname : NULL,
                 r->hvalue);
    if (body && strcmp(r->method, "HEAD") != 0)
        (void) mg_write(r->conn, body, len);
    free(r->out);
    r->out = NULL;
}

int rt__reply_json(struct rt_req *r, int status, json_t *body)
{
    return rt__reply_json_h(r, status, body, NULL, NULL);
}

int rt__reply_error(struct rt_req *r, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    (void) vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return rt__reply_json(r, status, json_pack("{s:s}", "error", msg));
}

int rt__reply_empty(struct rt_req *r, int status)
{
    if (r->status)
        return r->status;
    return r->status = status;
}

int rt__reply_err(struct rt_req *r, int rc, const struct rt_err *err)
{
    struct rt_log_ctx ctx = { .action = r->path };
    char buf[RT_ERR_MSG_MAX + 64];

    switch (-rc) {
    case ENOENT:
        return rt__reply_error(r, 404, "%s", err->msg);
    case EEXIST:
    case EBUSY:
        return rt__reply_error(r, 409, "%s", err->msg);
    case EINVAL:
        return rt__reply_error(r, 400, "%s", err->msg);
    case ENODEV:
        return rt__reply_error(r, 422, "%s", err->msg);
    case EACCES:
        return rt__reply_error(r, 403, "%s", err->msg);
    default:
        rt_log(RT_LOG_ERR, &ctx, "%s", rt_err_str(err, buf, sizeof(buf)));
        return rt__reply_error(r, 500, "internal error (see the runtimed log)");
    }
}

int rt__reply_denied(struct rt_req *r, const char *what)
{
    if (r->who.anonymous)
        return rt__reply_error(r, 401, "%s needs a token (Authorization: Bearer TOKEN)", what);
    return rt__reply_error(r, 403, "this token may not %s", what);
}

/* Worker threads have small stacks and jansson parses recursively: refuse deep nesting
 * before parsing.  Brackets inside strings do not count. */
static bool nesting_ok(const char *buf, size_t len, int max)
{
    bool in_string = false, escaped = false;
    int depth = 0;

    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                return false;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return true;
}

json_t *rt__req_object(struct rt_req *r, bool empty_ok)
{
    uint64_t max = r->api->cfg->max_body;
    long long declared = r->ri->content_length;
    _cleanup_free_ char *buf = NULL;
    size_t cap, got = 0;
    json_error_t jerr;
    json_t *o;

    if (declared > (long long) max) {
        /* The body stays unread: close the connection rather than parse past it. */
        mg_disable_connection_keep_alive(r->conn);
        rt__reply_error(r, 413, "request body larger than %llu bytes", (unsigned long long) max);
        return NULL;
    }
    cap = declared >= 0 ? (size_t) declared : (size_t) max + 1;
    buf = malloc(cap + 1);
    if (!buf) {
        rt__reply_error(r, 413, "request body too large");
        return NULL;
    }
    while (got < cap) {
        int n = mg_read(r->conn, buf + got, cap - got);
        if (n <= 0)
            break;
        got += (size_t) n;
    }
    if (got > max) {
        mg_disable_connection_keep_alive(r->conn);
        rt__reply_error(r, 413, "request body larger than %llu bytes", (unsigned long long) max);
        return NULL;
    }
    if (declared >= 0 && got < (size_t) declared) {
        mg_disable_connection_keep_alive(r->conn);
        rt__reply_error(r, 400, "request body shorter than its Content-Length");
        return NULL;
    }
    if (got == 0) {
        if (empty_ok)
            return json_object();
        rt__reply_error(r, 400, "a JSON object body is required");
        return NULL;
    }
    if (!nesting_ok(buf, got, RT_JSON_MAX_DEPTH)) {
        rt__reply_error(r, 400, "JSON nested deeper than %d levels", RT_JSON_MAX_DEPTH);
        return NULL;
    }
    o = json_loadb(buf, got, JSON_REJECT_DUPLICATES, &jerr);
    if (!o) {
        rt__reply_error(r, 400, "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
                        jerr.text);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        rt__reply_error(r, 400, "the body must be a JSON object");
        return NULL;
    }
    return o;
}

static json_t *field(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_null(v) ? NULL : v;
}

int rt__field_str(struct rt_req *r, json_t *o, const char *key, bool required, const char **ret)
{
    json_t *v = field(o, key);

    if (!v) {
        if (required)
            return rt__reply_error(r, 400, "missing field '%s'", key), -1;
        return 0;
    }
    if (!json_is_string(v))
        return rt__reply_error(r, 400, "field '%s' must be a string", key), -1;
    if (strlen(json_string_value(v)) != json_string_length(v))
        return rt__reply_error(r, 400, "field '%s' may not contain NUL", key), -1;
    *ret = json_string_value(v);
    return 1;
}

int rt__field_bool(struct rt_req *r, json_t *o, const char *key, bool *ret)
{
    json_t *v = field(o, key);

    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return rt__reply_error(r, 400, "field '%s' must be true or false", key), -1;
    *ret = json_is_true(v);
    return 1;
}

int rt__field_int(struct rt_req *r, json_t *o, const char *key, bool required, long long min,
                  long long max, long long *ret)
{
    json_t *v = field(o, key);
    long long n;

    if (!v) {
        if (required)
            return rt__reply_error(r, 400, "missing field '%s'", key), -1;
        return 0;
    }
    if (!json_is_integer(v))
        return rt__reply_error(r, 400, "field '%s' must be an integer", key), -1;
    n = json_integer_value(v);
    if (n < min || n > max)
        return rt__reply_error(r, 400, "field '%s' must be between %lld and %lld", key, min, max),
               -1;
    *ret = n;
    return 1;
}

int rt__field_num(struct rt_req *r, json_t *o, const char *key, bool required, double min,
                  double max, double *ret)
{
    json_t *v = field(o, key);
    double n;

    if (!v) {
        if (required)
            return rt__reply_error(r, 400, "missing field '%s'", key), -1;
        return 0;
    }
    if (!json_is_number(v))
        return rt__reply_error(r, 400, "field '%s' must be a number", key), -1;
    n = json_number_value(v);
    if (!(n >= min && n <= max))
        return rt__reply_error(r, 400, "field '%s' must be between %g and %g", key, min, max), -1;
    *ret = n;
    return 1;
}

int rt__query(struct rt_req *r, const char *name, char *buf, size_t len)
{
    const char *qs = r->ri->query_string;
    int n;

    if (!qs)
        return -1;
    n = mg_get_var(qs, strlen(qs), name, buf, len);
    if (n == -1)
        return -1;
    if (n < 0)
        return -2;
    return n;
}

bool rt__query_true(struct rt_req *r, const char *name)
{
    char v[8];
    int n = rt__query(r, name, v, sizeof(v));

    return n >= 0 && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0);
}

void rt__base_url(struct rt_req *r, char *buf, size_t len)
{
    const char *host = mg_get_header(r->conn, "Host");
    bool ok = host && *host && strlen(host) < 256;

    /* The Host header is client input: only a plain host[:port] goes into our URLs. */
    for (const char *p = host; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
             *p == '.' || *p == '-' || *p == ':' || *p == '[' || *p == ']';
    (void) snprintf(buf, len, "http://%s", ok ? host : r->api->cfg->listen);
}

json_t *rt__json_time(int64_t ms)
{
    char buf[40];
    time_t sec = (time_t) (ms / 1000);
    struct tm tm;

    (void) gmtime_r(&sec, &tm);
    (void) snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int) (ms % 1000));
    return json_string(buf);
}

int rt__req_start(struct rt_req *r, struct mg_connection *conn, struct rt_api *api,
                  struct rt_err *err)
{
    int rc;

    r->conn = conn;
    r->ri = mg_get_request_info(conn);
    r->api = api;
    r->st = api->st;
    r->method = r->ri->request_method ? r->ri->request_method : "";
    rt_store_lock(api->st);
    rc = rt_auth_resolve(api->st, mg_get_header(conn, "Authorization"), &r->who, err);
    rt_store_unlock(api->st);
    if (rc < 0)
        r->who.anonymous = true;
    return rc;
}
