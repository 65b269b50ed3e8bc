/* The routes thread: keeps the route table from runtimed's GET /api/proxy/routes.
 *
 * A long-poll: ?since=N&wait=S is held by runtimed until the table's generation leaves
 * N (200 with the table) or S seconds pass (304), so a Space that sleeps or wakes shows
 * up here in milliseconds.  A 304 that comes back at once means runtimed did not hold
 * it (an older runtimed, or all its long-poll workers busy): then it is a plain poll
 * every poll_interval.  Unreachable runtimed: retries after 250 ms, doubling up to 4 s,
 * the last good table in force meanwhile. */
#include "proxy.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "feed-internal.h"
#include "log.h"
#include "util.h"
#include "banned.h"

static pthread_mutex_t rlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rcond; /* CLOCK_MONOTONIC */
static bool rquit, poll_now;
static CURLM *multi; /* one easy handle in it: curl_multi_wakeup ends a long-poll at stop */
static pthread_t rthread;
static bool rstarted;

static bool quitting(void)
{
    pthread_mutex_lock(&rlock);
    bool q = rquit;
    pthread_mutex_unlock(&rlock);
    return q;
}

/* Like px__feed_call, but a stop cuts it short. */
static long call_routes(CURL *h, const char *path, long timeout_ms, struct px_answer *a)
{
    struct curl_slist *hdrs = px__feed_setup(h, "GET", path, NULL, a, timeout_ms);
    CURLcode res = CURLE_ABORTED_BY_CALLBACK;
    long status = -1;
    int running = 1, left;
    CURLMsg *m;

    if (curl_multi_add_handle(multi, h) != CURLM_OK) {
        curl_slist_free_all(hdrs);
        return -1;
    }
    while (running && !quitting()) {
        if (curl_multi_perform(multi, &running) != CURLM_OK)
            break;
        if (running && curl_multi_poll(multi, NULL, 0, 1000, NULL) != CURLM_OK)
            break;
    }
    while ((m = curl_multi_info_read(multi, &left)))
        if (m->msg == CURLMSG_DONE && m->easy_handle == h)
            res = m->data.result;
    curl_multi_remove_handle(multi, h);
    if (res == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    return status;
}

/* A Space that runs again may be woken at once when it next sleeps: the 3 s throttle on
 * wake calls (conn.c) is for a Space still on its way up. */
static void rearm_wakes(void)
{
    pthread_mutex_lock(&px_g.table_lock);
    struct px_table *t = px_table_ref(px_g.table);
    pthread_mutex_unlock(&px_g.table_lock);
    for (size_t i = 0; t && i < t->n; i++) {
        const struct px_route *r = &t->routes[i];
        if (r->id && r->stats && r->has_upstream && r->stage == PX_STAGE_RUNNING)
            atomic_store(&r->stats->wake_ms, 0);
    }
    px_table_unref(t);
}

/* Requests in flight to a Space whose route just went: it was frozen or is dozing off
 * under them.  An activity report now has runtimed thaw it or take it back, rather
 * than at the next activity_interval. */
static bool vanished_under_requests(const struct px_table *old, const struct px_table *t)
{
    for (size_t i = 0; old && t && i < t->n; i++) {
        const struct px_route *r = &t->routes[i], *o;
        if (!r->id || r->has_upstream || !r->stats || atomic_load(&r->stats->active) == 0)
            continue;
        o = px_table_find(old, r->host, strlen(r->host));
        if (o && o->has_upstream)
            return true;
    }
    return false;
}

/* One request for the table (held by runtimed up to @wait_s).  Returns the status. */
static long poll_routes(CURL *h, unsigned wait_s)
{
    struct px_answer a = { 0 };
    char path[128];
    struct rt_err err = { 0 };
    struct px_feed_space *spaces = NULL;
    size_t n = 0;
    uint64_t gen = 0;
    static bool warned;

    pthread_mutex_lock(&px_g.table_lock);
    uint64_t since = px_g.feed_generation;
    pthread_mutex_unlock(&px_g.table_lock);
    if (since)
        snprintf(path, sizeof(path), "/api/proxy/routes?since=%llu&wait=%u",
                 (unsigned long long) since, wait_s);
    else
        snprintf(path, sizeof(path), "/api/proxy/routes");
    long st = call_routes(h, path, since ? (long) wait_s * 1000 + 10000 : 5000, &a);
    if (st == 304 || st == 200)
        atomic_store(&px_g.feed_ok_ms, rt_now_ns() / 1000000);
    atomic_store(&px_g.runtimed_up, st == 200 || st == 304);
    if (st != 200) {
        if (st != 304 && !warned && !quitting()) {
            rt_log(RT_LOG_WARN, NULL, "runtimed routes: status %ld, keeping the last table", st);
            warned = true;
        }
        free(a.buf);
        return st;
    }
    warned = false;
    pthread_mutex_lock(&px_g.table_lock);
    struct px_table *old = px_table_ref(px_g.table);
    pthread_mutex_unlock(&px_g.table_lock);
    if (px_feed_parse(a.buf ? a.buf : "", a.len, &spaces, &n, &gen, &err) < 0) {
        rt_log(RT_LOG_WARN, NULL, "%s, keeping the last table", err.msg);
        free(a.buf);
        px_table_unref(old);
        return -1;
    }
    free(a.buf);
    pthread_mutex_lock(&px_g.table_lock);
    px_feed_free_spaces(px_g.feed, px_g.nfeed);
    px_g.feed = spaces;
    px_g.nfeed = n;
    px_g.feed_generation = gen;
    pthread_mutex_unlock(&px_g.table_lock);
    if (px_global_rebuild(&err) < 0)
        rt_log(RT_LOG_WARN, NULL, "%s, keeping the last table", err.msg);
    rearm_wakes();
    pthread_mutex_lock(&px_g.table_lock);
    struct px_table *t = px_table_ref(px_g.table);
    pthread_mutex_unlock(&px_g.table_lock);
    if (vanished_under_requests(old, t))
        px__feed_report_now();
    px_table_unref(t);
    px_table_unref(old);
    return st;
}

/* Waits @ms, or less when stopped or asked to poll now. */
static void pause_ms(uint64_t ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t) (ms / 1000);
    ts.tv_nsec += (long) (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&rlock);
    while (!rquit && !poll_now && pthread_cond_timedwait(&rcond, &rlock, &ts) == 0)
        ;
    poll_now = false;
    pthread_mutex_unlock(&rlock);
}

static void *routes_main(void *arg)
{
    CURL *h = curl_easy_init();
    uint64_t backoff = 0;

    (void) arg;
    if (!h)
        return NULL;
    while (!quitting()) {
        uint64_t t0 = rt_now_ns() / 1000000, interval = px_g.cfg.poll_interval_ms;
        long st;

        pthread_mutex_lock(&rlock);
        poll_now = false; /* this request sees whatever it was about */
        pthread_mutex_unlock(&rlock);
        st = poll_routes(h, PX_ROUTES_WAIT_S);
        if (st != 200 && st != 304) {
            /* Soon after a restart of runtimed, whatever the plain poll's pace. */
            backoff = backoff ? backoff * 2 : PX_ROUTES_BACKOFF_MIN_MS;
            if (backoff > PX_ROUTES_BACKOFF_MAX_MS)
                backoff = PX_ROUTES_BACKOFF_MAX_MS;
            pause_ms(backoff);
            continue;
        }
        backoff = 0;
        /* A 304 long before the wait: runtimed did not hold it, so a plain poll's pace. */
        if (st == 304 && rt_now_ns() / 1000000 - t0 < PX_ROUTES_WAIT_S * 1000 / 2)
            pause_ms(interval);
    }
    curl_easy_cleanup(h);
    return NULL;
}

void px__routes_poll_now(void)
{
    pthread_mutex_lock(&rlock);
    poll_now = true;
    pthread_cond_signal(&rcond);
    pthread_mutex_unlock(&rlock);
}

void px__routes_wake_answer(const char *id, const char *stage, const char *upstream)
{
    struct rt_err err = { 0 };
    bool changed = false;

    pthread_mutex_lock(&px_g.table_lock);
    for (size_t i = 0; i < px_g.nfeed; i++) {
        struct px_feed_space *f = &px_g.feed[i];
        if (strcmp(f->id, id) != 0)
            continue;
        if (!f->upstream || strcmp(f->upstream, upstream) != 0) {
            char *up = strdup(upstream);
            if (!up)
                break;
            free(f->upstream);
            f->upstream = up;
            changed = true;
        }
        if (f->stage != px_stage_from_name(stage)) {
            f->stage = px_stage_from_name(stage);
            changed = true;
        }
        break;
    }
    pthread_mutex_unlock(&px_g.table_lock);
    /* The generation stays: the route feed brings the table this came from. */
    if (changed && px_global_rebuild(&err) < 0)
        rt_log(RT_LOG_WARN, NULL, "%s, keeping the last table", err.msg);
    rearm_wakes();
}

int px__routes_start(struct rt_err *err)
{
    pthread_condattr_t ca;
    int r;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rcond, &ca);
    pthread_condattr_destroy(&ca);
    rquit = poll_now = false;
    multi = curl_multi_init();
    if (!multi)
        return rt_err_set(err, ENOMEM, "start the runtimed routes thread");
    r = pthread_create(&rthread, NULL, routes_main, NULL);
    if (r != 0) {
        curl_multi_cleanup(multi);
        multi = NULL;
        return rt_err_set(err, r, "start the runtimed routes thread");
    }
    rstarted = true;
    return 0;
}

void px__routes_stop(void)
{
    if (!rstarted)
        return;
    pthread_mutex_lock(&rlock);
    rquit = true;
    pthread_cond_signal(&rcond);
    pthread_mutex_unlock(&rlock);
    curl_multi_wakeup(multi); /* a long-poll in flight ends now */
    pthread_join(rthread, NULL);
    rstarted = false;
    curl_multi_cleanup(multi);
    multi = NULL;
    pthread_cond_destroy(&rcond);
}
