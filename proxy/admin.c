/* The Prometheus endpoint on the admin port: counters summed over the loops.  Reading
 * another loop's plain counters may tear a value for one scrape; that is accepted. */
#include "proxy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "banned.h"

struct text {
    char *p;
    size_t len, cap;
    bool failed;
};

static void add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct text *t, const char *fmt, ...)
{
    va_list ap;

    for (int tries = 0; tries < 2 && !t->failed; tries++) {
        va_start(ap, fmt);
        int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t) n < t->cap - t->len) {
            t->len += (size_t) n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t) n;
        char *np = realloc(t->p, cap);
        if (!np) {
            t->failed = true;
            return;
        }
        t->p = np;
        t->cap = cap;
    }
}

static void counter(struct text *t, const char *name, const char *help, const char *type,
                    unsigned long long v)
{
    add(t, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, v);
}

char *px_admin_metrics(uint32_t *ret_len)
{
    struct text t = { .cap = 4096 };
    struct px_counters s = { 0 };

    t.p = malloc(t.cap);
    if (!t.p)
        return NULL;
    for (unsigned i = 0; i < px_g.nloops; i++) {
        const struct px_counters *c = &px_g.loops[i]->st;
        s.accepted += c->accepted;
        s.requests += c->requests;
        for (int k = 0; k < 6; k++)
            s.responses[k] += c->responses[k];
        s.bytes_in += c->bytes_in;
        s.bytes_out += c->bytes_out;
        s.upstream_errors += c->upstream_errors;
        s.upstream_reused += c->upstream_reused;
        s.upstream_connects += c->upstream_connects;
        s.rejected += c->rejected;
        s.wakes += c->wakes;
        s.held += c->held;
        s.held_timeouts += c->held_timeouts;
        s.active += c->active;
        s.tunnels += c->tunnels;
    }
    counter(&t, "spaceproxy_connections_accepted_total", "Client connections accepted.", "counter",
            s.accepted);
    counter(&t, "spaceproxy_connections_rejected_total",
            "Client connections refused over max_connections.", "counter", s.rejected);
    counter(&t, "spaceproxy_connections_open", "Client connections open now.", "gauge",
            atomic_load(&px_g.conns));
    counter(&t, "spaceproxy_requests_total", "Request heads received.", "counter", s.requests);
    add(&t, "# HELP spaceproxy_responses_total Responses by status class.\n"
            "# TYPE spaceproxy_responses_total counter\n");
    for (int k = 1; k < 6; k++)
        add(&t, "spaceproxy_responses_total{code=\"%dxx\"} %llu\n", k, s.responses[k]);
    counter(&t, "spaceproxy_received_bytes_total", "Bytes read from visitors.", "counter",
            s.bytes_in);
    counter(&t, "spaceproxy_sent_bytes_total", "Bytes written to visitors.", "counter",
            s.bytes_out);
    counter(&t, "spaceproxy_upstream_connects_total", "New connections to Spaces.", "counter",
            s.upstream_connects);
    counter(&t, "spaceproxy_upstream_reused_total", "Requests sent on pooled connections.",
            "counter", s.upstream_reused);
    counter(&t, "spaceproxy_upstream_errors_total", "Failed connections or broken answers.",
            "counter", s.upstream_errors);
    counter(&t, "spaceproxy_wakes_total", "Wake calls sent to runtimed.", "counter", s.wakes);
    counter(&t, "spaceproxy_held_total", "Requests held for a waking Space or a token check.",
            "counter", s.held);
    counter(&t, "spaceproxy_held_timeouts_total", "Held requests that ran out of time.", "counter",
            s.held_timeouts);
    counter(&t, "spaceproxy_active_requests", "Requests and tunnels in flight.", "gauge",
            (unsigned long long) (s.active > 0 ? s.active : 0));
    counter(&t, "spaceproxy_tunnels_open", "Upgraded connections (WebSockets) open.", "gauge",
            (unsigned long long) (s.tunnels > 0 ? s.tunnels : 0));
    pthread_mutex_lock(&px_g.table_lock);
    unsigned long long routes = px_g.table ? px_g.table->n : 0;
    unsigned long long gen = px_g.feed_generation;
    pthread_mutex_unlock(&px_g.table_lock);
    counter(&t, "spaceproxy_routes", "Hosts in the route table.", "gauge", routes);
    counter(&t, "spaceproxy_route_generation", "runtimed's route table generation.", "gauge", gen);
    counter(&t, "spaceproxy_runtimed_up", "1 when the last route poll succeeded.", "gauge",
            atomic_load(&px_g.runtimed_up) ? 1 : 0);
    if (t.failed) {
        free(t.p);
        return NULL;
    }
    *ret_len = (uint32_t) t.len;
    return t.p;
}
