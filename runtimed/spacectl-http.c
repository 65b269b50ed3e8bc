/* spacectl's HTTP client: one libcurl call per command, errors turned into the
 * messages and exit statuses of the contract (0 ok, 1 API error, 3 unreachable). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "spacectl.h"
#include "spacectl-sse.h"
#include "cleanup.h"
#include "util.h"
#include "version.h"
#include "banned.h"

/* Answers larger than this are refused rather than buffered without end. */
#define SC_BODY_MAX (64u << 20)
#define SC_CONNECT_TIMEOUT_S 10L
#define SC_REQUEST_TIMEOUT_S 300L
/* Without --follow, the time allowed for the answer to begin. */
#define SC_STREAM_START_MS 30000
/* A listing longer than this many pages is cut short rather than followed forever. */
#define SC_MAX_PAGES 1000

struct buf {
    char *p;
    size_t len, cap;
    bool too_big;
};

static void buf_done(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static int buf_add(struct buf *b, const char *data, size_t len)
{
    if (b->len + len + 1 > SC_BODY_MAX) {
        b->too_big = true;
        return -E2BIG;
    }
    if (b->len + len + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 4096;
        char *n;

        while (ncap < b->len + len + 1)
            ncap *= 2;
        n = realloc(b->p, ncap);
        if (!n)
            return -ENOMEM;
        b->p = n;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = '\0';
    return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    return buf_add(userdata, data, size * nmemb) < 0 ? 0 : size * nmemb;
}

/* libcurl's sockets are born close-on-exec like every other fd of ours. */
curl_socket_t sc_open_socket(void *userdata, curlsocktype purpose, struct curl_sockaddr *a)
{
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* Appends a header, keeping the list intact when out of memory.  Returns 0 or -ENOMEM. */
static int add_header(struct curl_slist **l, const char *h)
{
    struct curl_slist *n = curl_slist_append(*l, h);

    if (!n)
        return -ENOMEM;
    *l = n;
    return 0;
}

static void slist_freep(struct curl_slist **l)
{
    curl_slist_free_all(*l);
    *l = NULL;
}

static void easy_freep(CURL **h)
{
    if (*h)
        curl_easy_cleanup(*h);
    *h = NULL;
}

char *sc_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *r;

    if (!e)
        return NULL;
    r = strdup(e);
    curl_free(e);
    return r;
}

void sc_print_json(FILE *out, const json_t *json)
{
    if (!json || json_is_null(json))
        return; /* the server answered with no JSON: nothing to print */
    (void) json_dumpf(json, out, JSON_INDENT(2) | JSON_ENCODE_ANY);
    fputc('\n', out);
}

/* A handle set up for @method on @path with the token and JSON headers. */
static CURL *new_handle(struct sc_ctx *ctx, const char *method, const char *path,
                        struct curl_slist **hdrs, char *errbuf)
{
    char url[2048], auth[600];
    CURL *h;

    (void) snprintf(url, sizeof(url), "%s%s", ctx->url, path);
    h = curl_easy_init();
    if (!h)
        return NULL;
    (void) snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ctx->token);
    /* "Expect:" stops libcurl from waiting for a 100 Continue before larger bodies */
    if (add_header(hdrs, "Accept: application/json, text/event-stream") < 0 ||
        add_header(hdrs, "Expect:") < 0 || (ctx->token[0] && add_header(hdrs, auth) < 0)) {
        curl_easy_cleanup(h);
        return NULL;
    }
    errbuf[0] = '\0';
    (void) curl_easy_setopt(h, CURLOPT_URL, url);
    (void) curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    (void) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    (void) curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
    (void) curl_easy_setopt(h, CURLOPT_USERAGENT, "spacectl/" SPACEPORT_VERSION);
    (void) curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    (void) curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    (void) curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, SC_CONNECT_TIMEOUT_S);
    (void) curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, sc_open_socket);
    return h;
}

/* Prints a transport failure and returns its exit status. */
static int transport_error(struct sc_ctx *ctx, CURLcode rc, const char *errbuf)
{
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);

    if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL) {
        fprintf(ctx->errf, "spacectl: invalid server URL '%s': %s\n", ctx->url, why);
        return SC_EXIT_USAGE;
    }
    fprintf(ctx->errf,
            "spacectl: cannot reach runtimed at %s: %s\n"
            "spacectl: is runtimed running there? set SPACEPORT_URL or --url to point elsewhere\n",
            ctx->url, why);
    return SC_EXIT_UNREACHABLE;
}

/* Prints the server's refusal as "spacectl: MESSAGE (HTTP 404)" plus a hint where
 * one helps, and returns SC_EXIT_API. */
static int api_error(struct sc_ctx *ctx, const char *path, long status, const struct buf *body)
{
    _cleanup_json_ json_t *j = NULL;
    char text[512] = "";
    const char *msg = NULL;

    if (body->p)
        j = json_loadb(body->p, body->len, 0, NULL);
    if (json_is_object(j) && json_is_string(json_object_get(j, "error")))
        msg = json_string_value(json_object_get(j, "error"));
    else if (json_is_object(j) && json_is_string(json_object_get(j, "message")))
        msg = json_string_value(json_object_get(j, "message"));
    else if (body->p && body->len > 0) {
        /* not JSON: its first line, which is what a proxy or a crash page says */
        size_t n = strcspn(body->p, "\r\n");

        if (n >= sizeof(text))
            n = sizeof(text) - 1;
        memcpy(text, body->p, n);
        text[n] = '\0';
        if (n > 0)
            msg = text;
    }
    fprintf(ctx->errf, "spacectl: %s (HTTP %ld)\n", msg ? msg : "request failed", status);
    if (status == 401 && !ctx->token[0])
        fprintf(ctx->errf,
                "spacectl: no token was given: pass --token, set SPACEPORT_TOKEN, or run where "
                "%s is readable\n",
                SC_ADMIN_TOKEN_PATH);
    else if (status == 401)
        fprintf(ctx->errf,
                "spacectl: the token %s was refused; pass --token or set SPACEPORT_TOKEN\n",
                ctx->token_source);
    else if (status == 403 && strncmp(path, "/api/admin/", 11) == 0)
        fprintf(ctx->errf, "spacectl: this command needs the admin token (DATA_DIR/admin.token)\n");
    return SC_EXIT_API;
}

int sc_link_next(const char *link, const char *base, char *buf, size_t len)
{
    const char *p = link;

    while (p && *p) {
        const char *lt = strchr(p, '<'), *gt = lt ? strchr(lt, '>') : NULL, *end;
        const char *url, *rel;
        size_t n;

        if (!gt)
            break;
        end = strchr(gt, ',');
        if (!end)
            end = gt + strlen(gt);
        rel = strstr(gt, "rel=");
        p = *end ? end + 1 : end;
        if (!rel || rel > end ||
            (strncmp(rel, "rel=\"next\"", 10) != 0 && strncmp(rel, "rel=next", 8) != 0))
            continue;
        /* keep the path and query: the base is ours, whatever host the server saw */
        url = lt + 1;
        if (base[0] && strncmp(url, base, strlen(base)) == 0 && url[strlen(base)] == '/') {
            url += strlen(base); /* our base, with any path prefix a proxy adds */
        } else if (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0) {
            url = strchr(strstr(url, "://") + 3, '/');
            if (!url || url > gt)
                return -EINVAL;
        }
        if (*url != '/')
            return -EINVAL;
        n = (size_t) (gt - url);
        if (n >= len)
            return -ENAMETOOLONG;
        memcpy(buf, url, n);
        buf[n] = '\0';
        return 0;
    }
    return -ENOENT;
}

/* sc_api, plus the rel="next" page of a paginated answer in @next ("" when none). */
static int request(struct sc_ctx *ctx, const char *method, const char *path, json_t *body,
                   json_t **ret_json, char *next, size_t next_len)
{
    _cleanup_(slist_freep) struct curl_slist *hdrs = NULL;
    _cleanup_(easy_freep) CURL *h = NULL;
    _cleanup_free_ char *payload = NULL;
    struct buf resp = { 0 };
    char errbuf[CURL_ERROR_SIZE];
    long status = 0;
    CURLcode rc;
    int r = 0;

    if (body) {
        payload = json_dumps(body, JSON_COMPACT);
        if (!payload) {
            return sc_out_of_memory(ctx);
        }
    }
    /* without a body, "Content-Type:" drops libcurl's default form content type */
    if (add_header(&hdrs, body ? "Content-Type: application/json" : "Content-Type:") == 0)
        h = new_handle(ctx, method, path, &hdrs, errbuf);
    if (!h) {
        fprintf(ctx->errf, "spacectl: cannot set up the HTTP client: out of memory\n");
        return SC_EXIT_API;
    }
    /* a POST with no body still says Content-Length: 0, as the Hub's client does */
    (void) curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload ? payload : "");
    if (strcmp(method, "GET") == 0)
        (void) curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    (void) curl_easy_setopt(h, CURLOPT_TIMEOUT, SC_REQUEST_TIMEOUT_S);
    (void) curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    (void) curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
    rc = curl_easy_perform(h);
    if (rc == CURLE_WRITE_ERROR) {
        fprintf(ctx->errf, "spacectl: %s %s: %s\n", method, path,
                resp.too_big ? "the answer is too large" : "out of memory");
        r = SC_EXIT_API;
    } else if (rc != CURLE_OK) {
        r = transport_error(ctx, rc, errbuf);
    } else {
        (void) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200 || status >= 300)
            r = api_error(ctx, path, status, &resp);
    }
    if (r == 0) {
        json_t *j = resp.len ? json_loadb(resp.p, resp.len, JSON_DECODE_ANY, NULL) : NULL;
        struct curl_header *link = NULL;

        if (next) {
            next[0] = '\0';
            if (curl_easy_header(h, "Link", 0, CURLH_HEADER, -1, &link) == CURLHE_OK &&
                sc_link_next(link->value, ctx->url, next, next_len) < 0)
                next[0] = '\0';
        }
        *ret_json = j ? j : json_null();
    }
    buf_done(&resp);
    return r;
}

int sc_api(struct sc_ctx *ctx, const char *method, const char *path, json_t *body,
           json_t **ret_json)
{
    return request(ctx, method, path, body, ret_json, NULL, 0);
}

int sc_api_list(struct sc_ctx *ctx, const char *path, json_t **ret_array)
{
    _cleanup_json_ json_t *all = json_array();
    char cur[1024], next[1024];
    int r;

    if (!all) {
        return sc_out_of_memory(ctx);
    }
    (void) snprintf(cur, sizeof(cur), "%s", path);
    for (int page = 0; page < SC_MAX_PAGES; page++) {
        _cleanup_json_ json_t *j = NULL;

        r = request(ctx, "GET", cur, NULL, &j, next, sizeof(next));
        if (r)
            return r;
        if (!json_is_array(j)) {
            fprintf(ctx->errf, "spacectl: GET %s: expected a JSON array\n", cur);
            return SC_EXIT_API;
        }
        if (json_array_extend(all, j) < 0) {
            return sc_out_of_memory(ctx);
        }
        if (!next[0] || strcmp(next, cur) == 0)
            break;
        memcpy(cur, next, sizeof(cur));
    }
    *ret_array = TAKE_PTR(all);
    return 0;
}

/* --- Server-Sent Events ------------------------------------------------------------ */

struct stream {
    struct sc_sse sse;
    struct buf errbody; /* the body of an error answer, which is JSON, not events */
    CURL *h;
    uint64_t last_ns; /* when the last event (or the answer's start) arrived */
    bool started;     /* the server has begun to answer */
    int feed_err;
    void (*on_data)(const char *data, size_t len, void *userdata);
    void *userdata;
};

static void on_event(const char *data, size_t len, void *userdata)
{
    struct stream *s = userdata;

    /* keep-alives (empty events) must not delay the end of a non-follow read */
    if (len == 0)
        return;
    s->last_ns = rt_now_ns();
    s->on_data(data, len, s->userdata);
}

static size_t on_stream(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct stream *s = userdata;
    size_t n = size * nmemb;
    long status = 0;

    if (!s->started) {
        s->started = true;
        s->last_ns = rt_now_ns();
    }
    (void) curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status >= 300)
        return buf_add(&s->errbody, data, n) < 0 ? 0 : n;
    s->feed_err = sc_sse_feed(&s->sse, data, n);
    return s->feed_err < 0 ? 0 : n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct stream *s = userdata;

    if (!s->started) {
        s->started = true;
        s->last_ns = rt_now_ns();
    }
    return size * nmemb;
}

static void multi_freep(CURLM **m)
{
    if (*m)
        (void) curl_multi_cleanup(*m);
    *m = NULL;
}

int sc_api_stream(struct sc_ctx *ctx, const char *path, bool follow, int idle_ms,
                  void (*on_data)(const char *data, size_t len, void *userdata), void *userdata)
{
    _cleanup_(slist_freep) struct curl_slist *hdrs = NULL;
    _cleanup_(easy_freep) CURL *h = NULL;
    _cleanup_(multi_freep) CURLM *m = NULL;
    struct stream s = { .on_data = on_data, .userdata = userdata };
    char errbuf[CURL_ERROR_SIZE];
    CURLcode rc = CURLE_OK;
    bool idle_stop = false;
    long status = 0;
    int running = 1, r = 0;
    CURLMsg *msg;
    int left;

    h = new_handle(ctx, "GET", path, &hdrs, errbuf);
    m = curl_multi_init();
    if (!h || !m) {
        fprintf(ctx->errf, "spacectl: cannot set up the HTTP client: out of memory\n");
        return SC_EXIT_API;
    }
    sc_sse_init(&s.sse, on_event, &s);
    s.h = h;
    s.last_ns = rt_now_ns();
    (void) curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    (void) curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_stream);
    (void) curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    (void) curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    (void) curl_easy_setopt(h, CURLOPT_HEADERDATA, &s);
    if (curl_multi_add_handle(m, h) != CURLM_OK) {
        sc_sse_done(&s.sse);
        fprintf(ctx->errf, "spacectl: cannot set up the HTTP client\n");
        return SC_EXIT_API;
    }
    /* Our own loop rather than curl_easy_perform: without --follow the end of the
     * log is "nothing new for idle_ms", which needs a clock finer than libcurl's
     * once-a-second progress calls. */
    while (running) {
        uint64_t limit_ms = s.started ? (uint64_t) idle_ms : SC_STREAM_START_MS;

        if (curl_multi_perform(m, &running) != CURLM_OK)
            break;
        if (!running)
            break;
        if (!follow && (rt_now_ns() - s.last_ns) / 1000000 >= limit_ms) {
            idle_stop = true;
            break;
        }
        if (curl_multi_poll(m, NULL, 0, 100, NULL) != CURLM_OK)
            break;
    }
    while ((msg = curl_multi_info_read(m, &left)))
        if (msg->msg == CURLMSG_DONE)
            rc = msg->data.result;
    (void) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (s.feed_err < 0) {
        fprintf(ctx->errf, "spacectl: reading the log stream: %s\n",
                s.feed_err == -E2BIG ? "an event is too large" : "out of memory");
        r = SC_EXIT_API;
    } else if (status != 0 && (status < 200 || status >= 300)) {
        r = api_error(ctx, path, status, &s.errbody);
    } else if (idle_stop && !s.started) {
        fprintf(ctx->errf, "spacectl: runtimed at %s did not answer within %d s\n", ctx->url,
                SC_STREAM_START_MS / 1000);
        r = SC_EXIT_UNREACHABLE;
    } else if (!idle_stop && rc != CURLE_OK) {
        /* a stream the server ends by closing the connection is a normal end */
        if (!(s.started && (rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR)))
            r = transport_error(ctx, rc, errbuf);
    }
    (void) curl_multi_remove_handle(m, h);
    sc_sse_done(&s.sse);
    buf_done(&s.errbody);
    return r;
}
