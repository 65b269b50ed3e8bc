/* The lifecycle supervisor of runtimed: turns built Spaces into running ones and keeps
 * them honest (see issue "Lifecycle").  Each running Space has a shim (shim.h) that
 * outlives runtimed; at start the supervisor reattaches to the shims it finds and never
 * starts a second copy of a Space.
 *
 * Stages it sets: APP_STARTING, RUNNING, RUNTIME_ERROR, SLEEPING, PAUSED, STOPPED (and
 * it clears BUILDING once the new commit runs).  It writes the Space's upstream
 * ("IP:PORT") into the store while the Space runs, which is what spaceproxy routes to.
 *
 * All calls are safe from any thread and never block on an app: they record what is
 * wanted and wake the supervisor thread, which does the work. */
#ifndef SP_RUNTIMED_LIFECYCLE_H
#define SP_RUNTIMED_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

struct rt_config;
struct rt_store;
struct rt_builder;
struct rt_lifecycle;

struct rt_gpunode;

int rt_lifecycle_start(const struct rt_config *cfg, struct rt_store *st, struct rt_lifecycle **ret,
                       struct rt_err *err);
struct rt_gpuzero;
/* The same on a node with GPUs (@gpus from gpunode.h, outliving the supervisor): Spaces
 * on GPU tiers get their units at start and give them back when they stop; the
 * holdings are rebuilt from the reattached shims before anything starts.  @zero (NULL:
 * no pool) is the ZeroGPU device API (gpuzero.h) zero Spaces get, in place before the
 * supervisor's first tick, which may start them (reattached ones get their listeners
 * back at their next tick). */
int rt_lifecycle_start_gpus(const struct rt_config *cfg, struct rt_store *st,
                            struct rt_gpunode *gpus, struct rt_gpuzero *zero,
                            struct rt_lifecycle **ret, struct rt_err *err);
/* Lets a factory restart queue a build. */
void rt_lifecycle_set_builder(struct rt_lifecycle *lc, struct rt_builder *b);
/* Stops the supervisor; running Spaces (their shims) keep running. */
void rt_lifecycle_stop(struct rt_lifecycle *lc);

/* A build of @space_id at @sha succeeded with these layers: start the Space on it, or
 * start the new version beside the running one and switch once it is healthy. */
void rt_lifecycle_build_ready(struct rt_lifecycle *lc, int64_t space_id, int64_t build_id,
                              const char *sha, const char *app_layer, const char *deps_layer);

/* Whether the Space has a running (or starting) version now: the builder reports
 * RUNNING_BUILDING instead of BUILDING then. */
bool rt_lifecycle_is_running(struct rt_lifecycle *lc, int64_t space_id);

/* Requests from the API and the proxy.  Each returns 0 once recorded, or -errno
 * (-ENOENT unknown Space, -EBUSY paused for wake, -ENODEV tier not available here).
 * Call them with the store locked (as the API handlers run): wake and activity thaw a
 * frozen Space inline and give its upstream back in the store under that lock. */
int rt_lifecycle_wake(struct rt_lifecycle *lc, int64_t space_id, struct rt_err *err);
int rt_lifecycle_pause(struct rt_lifecycle *lc, int64_t space_id, struct rt_err *err);
int rt_lifecycle_restart(struct rt_lifecycle *lc, int64_t space_id, bool factory,
                         struct rt_err *err); /* also resumes a paused Space */
int rt_lifecycle_settings_changed(struct rt_lifecycle *lc, int64_t space_id,
                                  struct rt_err *err); /* hardware, sleep time, secrets */
int rt_lifecycle_delete(struct rt_lifecycle *lc, int64_t space_id, struct rt_err *err);
void rt_lifecycle_activity(struct rt_lifecycle *lc, int64_t space_id);

#endif
