/* Prometheus metrics of runtimed: counters other modules bump, and the admin listener
 * that serves GET /metrics in the Prometheus text format (version 0.0.4).
 *
 * The rt_metrics_* recorders are lock-free (C11 atomics) and cheap enough for any
 * thread, at any time, even before rt_metrics_serve_start() or without it.  Gauges that
 * the store already knows (Spaces by stage and tier, builds by status, users, tiers) are
 * read from it at each scrape, so they are right after a restart too. */
#ifndef SP_RUNTIMED_METRICS_H
#define SP_RUNTIMED_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct rt_store;
struct rt_metrics_server;

/* The builder: one finished build (ok false: failed, cancelled or timed out). */
void rt_metrics_build_done(double seconds, bool ok);
/* The builder: builds waiting in its queue now (a gauge). */
void rt_metrics_build_queue(int64_t queued);
/* The lifecycle: a sleeping Space was woken; @ms from the wake request to the first
 * healthy answer (ok false: it failed to wake). */
void rt_metrics_wake(double ms, bool ok);
/* The lifecycle: a Space was put to sleep; @deep: stopped (not only frozen). */
void rt_metrics_sleep(bool deep);
/* The lifecycle: a Space's app process started (@ok) or failed to (RUNTIME_ERROR). */
void rt_metrics_start(bool ok);
/* The GPU scheduler: dedicated GPUs leased and ZeroGPU leases held now (gauges), and
 * ZeroGPU requests waiting for a slice. */
void rt_metrics_gpu(int64_t dedicated_leased, int64_t zero_leases, int64_t zero_queued);
/* main: the GPUs this node offers (the gpus: setting or /dev/nvidiaN). */
void rt_metrics_node_gpus(int64_t n);
/* The git ingest: one push accepted. */
void rt_metrics_push(void);
/* The garbage collector: one run that freed @bytes. */
void rt_metrics_gc(uint64_t bytes);

/* Renders every metric into a new buffer (free() it).  Takes the store lock itself. */
int rt_metrics_render(struct rt_store *st, char **ret, size_t *ret_len, struct rt_err *err);

/* Serves GET /metrics (and nothing else) on @addr ("ADDR:PORT"), no authentication:
 * bind it to loopback or a private interface.  Two worker threads. */
int rt_metrics_serve_start(const char *addr, struct rt_store *st, struct rt_metrics_server **ret,
                           struct rt_err *err);
/* Stops the listener and frees it.  Accepts NULL. */
void rt_metrics_serve_stop(struct rt_metrics_server *m);

#endif
