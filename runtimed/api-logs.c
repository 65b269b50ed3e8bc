/* GET /api/spaces/{id}/logs/{build|run}: server-sent events in the Hub's format,
 *   data: {"data": "<line>", "timestamp": "<ISO time>"}
 * with empty "data:" keep-alives.  Like the Hub it stays open for new lines; ?follow=0
 * ends the stream after the stored lines.  A stream holds a worker thread, so their
 * number is capped, and each ends when its client goes away (a failed write) or
 * runtimed stops. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api-internal.h"
#include "util.h"
#include "banned.h"

#define POLL_MS 200
#define BATCH 500

struct stream {
    struct rt_req *r;
    int64_t last;
    bool broken;
    int sent;
};

static bool put(struct stream *s, const char *text, size_t len)
{
    if (!s->broken && mg_write(s->r->conn, text, len) != (int) len)
        s->broken = true;
    return !s->broken;
}

static int on_line(const struct rt_log_line *l, void *userdata)
{
    struct stream *s = userdata;
    json_t *j = json_pack("{s:s, s:o}", "data", l->line, "timestamp", rt__json_time(l->ts));
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;

    json_decref(j);
    s->last = l->id;
    if (text) {
        (void) (put(s, "data: ", 6) && put(s, text, strlen(text)) && put(s, "\n\n", 2));
        free(text);
    }
    s->sent++;
    return s->broken;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int stream(struct rt_req *r, const struct rt_space *sp, enum rt_log_kind kind, bool follow,
                  long tail)
{
    struct stream s = { .r = r };
    uint64_t keepalive_ns = (uint64_t) r->api->cfg->sse_keepalive_ms * 1000000ULL;
    uint64_t last_write = rt_now_ns();
    struct rt_err err = { 0 };

    rt_store_lock(r->st);
    if (tail >= 0)
        s.last = rt_store_log_tail_start(r->st, sp->id, kind, (int) tail);
    rt_store_unlock(r->st);

    r->status = 200;
    r->sent = true;
    mg_disable_connection_keep_alive(r->conn);
    (void) mg_response_header_start(r->conn, 200);
    (void) mg_response_header_add(r->conn, "Content-Type", "text/event-stream", -1);
    (void) mg_response_header_add(r->conn, "Cache-Control", "no-cache", -1);
    (void) mg_response_header_add(r->conn, "X-Accel-Buffering", "no", -1);
    (void) mg_response_header_send(r->conn);

    while (!s.broken && !atomic_load(&r->api->stopping)) {
        int rc;

        s.sent = 0;
        rt_store_lock(r->st);
        rc = rt_store_log_list(r->st, sp->id, kind, s.last, BATCH, on_line, &s, &err);
        rt_store_unlock(r->st);
        if (rc < 0)
            break;
        if (s.sent > 0) {
            last_write = rt_now_ns();
            if (s.sent == BATCH)
                continue;
        }
        if (!follow)
            break;
        if (rt_now_ns() - last_write >= keepalive_ns) {
            /* The write also tells us whether the client is still there. */
            (void) put(&s, "data:\n\n", 7);
            last_write = rt_now_ns();
        }
        sleep_ms(POLL_MS);
    }
    return r->status;
}

int rt__api_logs(struct rt_req *r, const struct rt_space *sp, bool build)
{
    char v[24];
    long tail = -1;
    bool follow = true;
    int n, open;

    if (!rt_auth_is_member(&r->who, sp))
        return rt__reply_denied(r, "read this Space's logs");
    n = rt__query(r, "tail", v, sizeof(v));
    if (n != -1) {
        uint64_t t;
        if (rt_parse_u64(v, &t) < 0 || t > 100000)
            return rt__reply_error(r, 400, "tail must be an integer between 0 and 100000");
        tail = (long) t;
    }
    n = rt__query(r, "follow", v, sizeof(v));
    if (n >= 0)
        follow = strcmp(v, "0") != 0 && strcasecmp(v, "false") != 0;

    open = atomic_fetch_add(&r->api->log_streams, 1);
    if (open >= r->api->cfg->max_log_streams) {
        atomic_fetch_sub(&r->api->log_streams, 1);
        return rt__reply_error(r, 429, "too many open log streams (%d); try again later", open);
    }
    rt_store_unlock(r->st);
    stream(r, sp, build ? RT_LOGS_BUILD : RT_LOGS_RUN, follow, tail);
    rt_store_lock(r->st);
    atomic_fetch_sub(&r->api->log_streams, 1);
    return r->status;
}
