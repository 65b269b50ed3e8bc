/* The runtimed feed, two threads: the routes thread (feed-routes.c) keeps the route
 * table, and the jobs thread here runs queued wake and check-token calls and reports
 * activity, so neither waits on the other.  The last good table stays in force
 * whenever runtimed is down or answers nonsense: running Spaces keep being served. */
#include "proxy.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "cleanup.h"
#include "feed-internal.h"
#include "log.h"
#include "util.h"
#include "banned.h"

#define MAX_JOBS 1024
#define MAX_ANSWER (16u << 20)

struct job {
    enum px_job_kind kind;
    char *id, *token;
};

static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qcond = PTHREAD_COND_INITIALIZER;
static struct job jobs[MAX_JOBS];
static unsigned njobs;
static bool quit, report_now;
static pthread_t thread;
static bool started;
static pthread_mutex_t token_lock = PTHREAD_MUTEX_INITIALIZER;
static char auth_header[600]; /* under token_lock: both threads read it */

void px__feed_report_now(void)
{
    pthread_mutex_lock(&qlock);
    report_now = true;
    pthread_cond_signal(&qcond);
    pthread_mutex_unlock(&qlock);
}

bool px_feed_post(enum px_job_kind kind, const char *id, const char *token)
{
    bool ok = false;

    if (!px_g.cfg.runtimed)
        return false;
    pthread_mutex_lock(&qlock);
    if (njobs < MAX_JOBS) {
        struct job *j = &jobs[njobs];
        j->kind = kind;
        j->id = strdup(id);
        j->token = token ? strdup(token) : NULL;
        if (j->id && (!token || j->token)) {
            njobs++;
            ok = true;
            pthread_cond_signal(&qcond);
        } else {
            free(j->id);
            free(j->token);
        }
    }
    pthread_mutex_unlock(&qlock);
    return ok;
}

void px_feed_free_spaces(struct px_feed_space *s, size_t n)
{
    for (size_t i = 0; s && i < n; i++) {
        free(s[i].id);
        free(s[i].host_label);
        free(s[i].upstream);
        free(s[i].custom_headers);
    }
    free(s);
}

static bool label_ok(const char *s)
{
    if (!*s || strlen(s) > 63)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' ||
              (*s >= 'A' && *s <= 'Z')))
            return false;
    return true;
}

int px_feed_parse(const char *text, size_t len, struct px_feed_space **ret, size_t *ret_n,
                  uint64_t *ret_generation, struct rt_err *err)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    json_t *spaces, *gen;
    struct px_feed_space *out = NULL;
    size_t n = 0;

    if (!root)
        return rt_err_set(err, EINVAL, "routes: bad JSON at line %d: %s", je.line, je.text);
    gen = json_object_get(root, "generation");
    spaces = json_object_get(root, "spaces");
    if (!json_is_array(spaces) || (gen && !json_is_integer(gen))) {
        json_decref(root);
        return rt_err_set(err, EINVAL, "routes: expected {generation, spaces: [...]}");
    }
    out = calloc(json_array_size(spaces) + 1, sizeof(*out));
    if (!out) {
        json_decref(root);
        return rt_err_set(err, ENOMEM, "routes: allocate");
    }
    for (size_t i = 0; i < json_array_size(spaces); i++) {
        json_t *s = json_array_get(spaces, i);
        const char *id = json_string_value(json_object_get(s, "id"));
        const char *host = json_string_value(json_object_get(s, "host"));
        const char *stage = json_string_value(json_object_get(s, "stage"));
        const char *up = json_string_value(json_object_get(s, "upstream"));
        json_t *ch = json_object_get(s, "custom_headers");
        struct px_feed_space *f = &out[n];

        if (!id || !host || !label_ok(host))
            continue; /* one bad entry must not take the others down */
        f->id = strdup(id);
        f->host_label = strdup(host);
        f->upstream = up ? strdup(up) : NULL;
        f->stage = px_stage_from_name(stage);
        f->private_ = json_is_true(json_object_get(s, "private"));
        f->disable_embedding = json_is_true(json_object_get(s, "disable_embedding"));
        if (!f->id || !f->host_label || (up && !f->upstream))
            goto nomem;
        n++;
        if (json_is_object(ch)) {
            const char *k;
            json_t *v;
            json_object_foreach(ch, k, v)
            {
                if (json_is_string(v) &&
                    px_render_header(&f->custom_headers, k, json_string_value(v)) == -ENOMEM)
                    goto nomem;
            }
        }
    }
    *ret_generation = gen ? (uint64_t) json_integer_value(gen) : 0;
    json_decref(root);
    *ret = out;
    *ret_n = n;
    return 0;
nomem:
    json_decref(root);
    px_feed_free_spaces(out, n + 1);
    return rt_err_set(err, ENOMEM, "routes: allocate");
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud)
{
    struct px_answer *a = ud;
    size_t n = size * nmemb;

    if (a->len + n > MAX_ANSWER)
        return 0; /* refuse: a route table this big is a bug or an attack */
    char *nb = realloc(a->buf, a->len + n + 1);
    if (!nb)
        return 0;
    memcpy(nb + a->len, p, n);
    a->buf = nb;
    a->len += n;
    a->buf[a->len] = '\0';
    return n;
}

/* libcurl's sockets are born close-on-exec like every other fd of ours (it opens them
 * without SOCK_CLOEXEC). */
static curl_socket_t open_socket(void *userdata, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void) userdata;
    (void) purpose;
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

struct curl_slist *px__feed_setup(CURL *h, const char *method, const char *path, const char *body,
                                  struct px_answer *a, long timeout_ms)
{
    char url[1024], auth[sizeof(auth_header)];
    struct curl_slist *hdrs = NULL;

    snprintf(url, sizeof(url), "%s%s", px_g.cfg.runtimed, path);
    pthread_mutex_lock(&token_lock);
    memcpy(auth, auth_header, sizeof(auth));
    pthread_mutex_unlock(&token_lock);
    curl_easy_reset(h); /* every handle is set up here, after a reset, before each call */
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (auth[0])
        hdrs = curl_slist_append(hdrs, auth);
    if (body) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    return hdrs;
}

long px__feed_call(CURL *h, const char *method, const char *path, const char *body,
                   struct px_answer *a)
{
    struct curl_slist *hdrs = px__feed_setup(h, method, path, body, a, 5000L);
    long status = -1;

    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    return status;
}

/* A wake's answer: 202 {"stage", "upstream"} when the Space answers at once (a thaw). */
static void wake_answered(const char *id, long st, const struct px_answer *a)
{
    json_t *r = st == 202 && a->buf ? json_loadb(a->buf, a->len, 0, NULL) : NULL;
    const char *up = json_string_value(json_object_get(r, "upstream"));
    const char *stage = json_string_value(json_object_get(r, "stage"));

    if (up && stage)
        px__routes_wake_answer(id, stage, up);
    else
        px__routes_poll_now();
    json_decref(r);
}

static void run_job(CURL *h, struct job *j)
{
    struct px_answer a = { 0 };
    json_t *body = j->kind == PX_JOB_WAKE ? json_pack("{s:s}", "id", j->id)
                                          : json_pack("{s:s,s:s}", "id", j->id, "token", j->token);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

    json_decref(body);
    if (!text)
        return;
    if (j->kind == PX_JOB_WAKE) {
        long st = px__feed_call(h, "POST", "/api/proxy/wake", text, &a);
        struct rt_log_ctx ctx = { .app = j->id, .action = "waking" };
        if (st != 202 && st != 200)
            rt_log(RT_LOG_WARN, &ctx, "runtimed answered %ld", st);
        wake_answered(j->id, st, &a);
    } else {
        long st = px__feed_call(h, "POST", "/api/proxy/check-token", text, &a);
        json_t *r = st == 200 && a.buf ? json_loadb(a.buf, a.len, 0, NULL) : NULL;
        if (r) {
            /* "user"/"class" (runtimed since users had plans) name the visitor; an older
             * runtimed sends "read" only: a reader is then a plain user of no name. */
            px_auth_token_store(j->id, j->token, json_is_true(json_object_get(r, "read")),
                                json_string_value(json_object_get(r, "user")),
                                px_class_from_name(json_string_value(json_object_get(r, "class"))));
            json_decref(r);
        } else if (st >= 400 && st < 500) {
            px_auth_token_store(j->id, j->token, false, NULL, PX_CLASS_ANON);
        } else {
            px_auth_token_failed(j->id, j->token);
        }
        px_global_kick(); /* held requests look at the answer */
    }
    free(text);
    free(a.buf);
}

/* Spaces with a request since the last report, or a connection still open. */
static void report_activity(CURL *h, uint64_t since_ms)
{
    json_t *ids = json_array();
    struct px_answer a = { 0 };

    if (!ids)
        return;
    pthread_mutex_lock(&px_g.table_lock);
    struct px_table *t = px_table_ref(px_g.table);
    pthread_mutex_unlock(&px_g.table_lock);
    for (size_t i = 0; t && i < t->n; i++) {
        const struct px_route *r = &t->routes[i];
        if (!r->id || !r->stats)
            continue;
        if (atomic_load(&r->stats->active) > 0 || atomic_load(&r->stats->last_ms) >= since_ms)
            json_array_append_new(ids, json_string(r->id));
    }
    px_table_unref(t);
    if (json_array_size(ids)) {
        json_t *body = json_pack("{s:o}", "ids", ids);
        char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        if (text)
            (void) px__feed_call(h, "POST", "/api/proxy/activity", text, &a);
        free(text);
        free(a.buf);
        json_decref(body);
        return;
    }
    json_decref(ids);
}

void px__feed_read_token(void)
{
    char buf[512], hdr[sizeof(auth_header)] = "";
    FILE *f = fopen(px_g.cfg.token_file, "re");

    if (f) {
        if (fgets(buf, sizeof(buf), f)) {
            buf[strcspn(buf, "\r\n")] = '\0';
            if (buf[0])
                snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", buf);
        }
        fclose(f);
    }
    pthread_mutex_lock(&token_lock);
    memcpy(auth_header, hdr, sizeof(hdr));
    pthread_mutex_unlock(&token_lock);
}

static bool have_token(void)
{
    pthread_mutex_lock(&token_lock);
    bool r = auth_header[0] != '\0';
    pthread_mutex_unlock(&token_lock);
    return r;
}

static void *feed_main(void *arg)
{
    CURL *h = curl_easy_init();
    uint64_t last_activity = rt_now_ns() / 1000000, last_token = rt_now_ns() / 1000000;

    (void) arg;
    if (!h)
        return NULL;
    for (;;) {
        struct job batch[64];
        unsigned nb = 0;
        bool report;
        uint64_t now = rt_now_ns() / 1000000;
        unsigned interval = px_g.cfg.activity_interval_ms;

        pthread_mutex_lock(&qlock);
        if (!quit && njobs == 0 && !report_now && now - last_activity < interval) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t wait = interval - (now - last_activity);
            ts.tv_sec += (time_t) (wait / 1000);
            ts.tv_nsec += (long) (wait % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&qcond, &qlock, &ts);
        }
        if (quit) {
            pthread_mutex_unlock(&qlock);
            break;
        }
        while (njobs && nb < 64)
            batch[nb++] = jobs[--njobs];
        report = report_now;
        report_now = false;
        pthread_mutex_unlock(&qlock);

        now = rt_now_ns() / 1000000;
        if (!have_token() || now - last_token > 10000) {
            px__feed_read_token(); /* runtimed may write it after we start, or rotate it */
            last_token = now;
        }
        for (unsigned i = 0; i < nb; i++) {
            run_job(h, &batch[i]);
            free(batch[i].id);
            free(batch[i].token);
        }
        now = rt_now_ns() / 1000000;
        if (report || now - last_activity >= px_g.cfg.activity_interval_ms) {
            report_activity(h, last_activity);
            last_activity = now;
        }
    }
    curl_easy_cleanup(h);
    return NULL;
}

int px_feed_start(struct rt_err *err)
{
    int r;

    if (!px_g.cfg.runtimed)
        return 0;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    px__feed_read_token();
    r = pthread_create(&thread, NULL, feed_main, NULL);
    if (r != 0)
        return rt_err_set(err, r, "start the runtimed feed thread");
    started = true;
    if (px__routes_start(err) < 0) {
        px_feed_stop();
        return -err->code;
    }
    return 0;
}

void px_feed_stop(void)
{
    if (!started)
        return;
    px__routes_stop();
    pthread_mutex_lock(&qlock);
    quit = true;
    pthread_cond_signal(&qcond);
    pthread_mutex_unlock(&qlock);
    pthread_join(thread, NULL);
    started = false;
    while (njobs) {
        njobs--;
        free(jobs[njobs].id);
        free(jobs[njobs].token);
    }
    curl_global_cleanup();
}
