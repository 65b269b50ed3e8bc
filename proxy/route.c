/* The route table: host -> upstream, immutable once built and shared by every loop.
 * A new one is built on each config reload or runtimed feed change and swapped in; the
 * old one lives until its last connection lets go of it. */
#include "proxy.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "banned.h"

static const char *const stage_names[_PX_STAGE_MAX] = {
    [PX_STAGE_RUNNING] = "RUNNING",
    [PX_STAGE_RUNNING_BUILDING] = "RUNNING_BUILDING",
    [PX_STAGE_APP_STARTING] = "APP_STARTING",
    [PX_STAGE_SLEEPING] = "SLEEPING",
    [PX_STAGE_STOPPED] = "STOPPED",
    [PX_STAGE_BUILDING] = "BUILDING",
    [PX_STAGE_PAUSED] = "PAUSED",
    [PX_STAGE_NO_APP_FILE] = "NO_APP_FILE",
    [PX_STAGE_CONFIG_ERROR] = "CONFIG_ERROR",
    [PX_STAGE_BUILD_ERROR] = "BUILD_ERROR",
    [PX_STAGE_RUNTIME_ERROR] = "RUNTIME_ERROR",
    [PX_STAGE_DELETING] = "DELETING",
};

enum px_stage px_stage_from_name(const char *s)
{
    for (int i = 0; i < _PX_STAGE_MAX; i++)
        if (s && strcmp(s, stage_names[i]) == 0)
            return (enum px_stage) i;
    return PX_STAGE_STOPPED; /* an unknown stage is treated as "not running, wakeable" */
}

const char *px_stage_name(enum px_stage s)
{
    return s < _PX_STAGE_MAX ? stage_names[s] : "UNKNOWN";
}

int px_render_header(char **buf, const char *name, const char *value)
{
    size_t old = *buf ? strlen(*buf) : 0, nl = strlen(name), vl = strlen(value);
    char *nb;

    if (nl == 0 || nl > 256 || vl > 4096)
        return -EINVAL;
    /* A header name is an RFC 9110 token; a value may not carry CR, LF or NUL, or a Space
     * owner could inject whole headers (or a second response) into every reply. */
    for (size_t i = 0; i < nl; i++)
        if (!isalnum((unsigned char) name[i]) && !strchr("!#$%&'*+-.^_`|~", name[i]))
            return -EINVAL;
    for (size_t i = 0; i < vl; i++)
        if (value[i] == '\r' || value[i] == '\n')
            return -EINVAL;
    nb = realloc(*buf, old + nl + vl + 5);
    if (!nb)
        return -ENOMEM;
    snprintf(nb + old, nl + vl + 5, "%s: %s\r\n", name, value);
    *buf = nb;
    return 0;
}

struct px_table *px_table_ref(struct px_table *t)
{
    if (t)
        atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

static void stats_unref(struct px_space_stats *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        free(s);
}

void px_table_unref(struct px_table *t)
{
    if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->routes[i].host);
        free(t->routes[i].id);
        free(t->routes[i].extra_headers);
        stats_unref(t->routes[i].stats);
    }
    free(t->routes);
    free(t);
}

static int cmp_route(const void *a, const void *b)
{
    return strcmp(((const struct px_route *) a)->host, ((const struct px_route *) b)->host);
}

const struct px_route *px_table_find(const struct px_table *t, const char *host, size_t len)
{
    size_t lo = 0, hi = t ? t->n : 0;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *h = t->routes[mid].host;
        int c = strncmp(h, host, len);
        if (c == 0 && h[len] != '\0')
            c = 1;
        if (c == 0)
            return &t->routes[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static struct px_space_stats *stats_for(const struct px_table *prev, const char *key)
{
    if (prev)
        for (size_t i = 0; i < prev->n; i++) {
            struct px_space_stats *s = prev->routes[i].stats;
            if (s && strcmp(s->id, key) == 0) {
                atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
                return s;
            }
        }
    size_t kl = strlen(key);
    struct px_space_stats *s = calloc(1, sizeof(*s) + kl + 1);
    if (!s)
        return NULL;
    atomic_init(&s->refs, 1);
    memcpy(s->id, key, kl + 1);
    return s;
}

static int fill_route(struct px_route *r, const char *host, const char *id, const char *upstream,
                      const char *custom, bool disable_embedding, const struct px_table *prev)
{
    r->host = strdup(host);
    r->id = id ? strdup(id) : NULL;
    if (!r->host || (id && !r->id))
        return -ENOMEM;
    if (upstream) {
        if (px_parse_addr(upstream, &r->addr, &r->addrlen) < 0)
            return -EINVAL;
        r->has_upstream = true;
    }
    r->disable_embedding = disable_embedding;
    if (custom) {
        r->extra_headers = strdup(custom);
        if (!r->extra_headers)
            return -ENOMEM;
    }
    if (disable_embedding) {
        /* Both forms: X-Frame-Options for old browsers, CSP frame-ancestors for new. */
        if (px_render_header(&r->extra_headers, "X-Frame-Options", "DENY") < 0 ||
            px_render_header(&r->extra_headers, "Content-Security-Policy",
                             "frame-ancestors 'none'") < 0)
            return -ENOMEM;
    }
    r->extra_len = r->extra_headers ? strlen(r->extra_headers) : 0;
    r->stats = stats_for(prev, id ? id : host);
    return r->stats ? 0 : -ENOMEM;
}

struct px_table *px_table_build(const struct px_config *cfg, const struct px_feed_space *feed,
                                size_t nfeed, uint64_t generation, const struct px_table *prev,
                                struct rt_err *err)
{
    struct px_table *t = calloc(1, sizeof(*t));
    size_t n = 0;
    char host[512];

    if (!t) {
        rt_err_set(err, ENOMEM, "allocate route table");
        return NULL;
    }
    atomic_init(&t->refs, 1);
    t->generation = generation;
    t->routes = calloc(cfg->nroutes + nfeed + 1, sizeof(*t->routes));
    if (!t->routes)
        goto nomem;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct px_route_conf *rc = &cfg->routes[i];
        struct px_route *r = &t->routes[n++];
        int e = fill_route(r, rc->host, NULL, rc->upstream, rc->custom_headers,
                           rc->disable_embedding, prev);
        if (e < 0) {
            t->n = n;
            rt_err_set(err, -e, "route '%s'", rc->host);
            px_table_unref(t);
            return NULL;
        }
    }
    qsort(t->routes, n, sizeof(*t->routes), cmp_route);
    struct px_table conf_only = { .n = n, .routes = t->routes };
    for (size_t i = 0; i < nfeed; i++) {
        const struct px_feed_space *fs = &feed[i];
        snprintf(host, sizeof(host), "%s.%s", fs->host_label, cfg->domain);
        for (char *p = host; *p; p++)
            *p = (char) tolower((unsigned char) *p);
        if (px_table_find(&conf_only, host, strlen(host)))
            continue; /* config routes win; they are what an operator asked for */
        struct px_route *r = &t->routes[n++];
        int e = fill_route(r, host, fs->id, fs->upstream, fs->custom_headers, fs->disable_embedding,
                           prev);
        if (e == -EINVAL) {
            /* a bad upstream from runtimed: keep the Space, as not running */
            r->has_upstream = false;
            e = 0;
        }
        if (e < 0) {
            t->n = n;
            goto nomem;
        }
        r->stage = fs->stage;
        r->private_ = fs->private_;
    }
    t->n = n;
    qsort(t->routes, n, sizeof(*t->routes), cmp_route);
    return t;
nomem:
    rt_err_set(err, ENOMEM, "build route table");
    px_table_unref(t);
    return NULL;
}
