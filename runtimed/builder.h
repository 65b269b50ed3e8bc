/* The build queue of runtimed: turns pushed commits into built layers.
 *
 * One worker thread runs builds one at a time (this node has few cores; a queue that
 * says where each build stands beats builds fighting for them).  A newer push of a
 * Space supersedes its queued build and cancels its running one.  Build output goes to
 * the store's build log as it comes, so `…/logs/build` streams it live.  A finished
 * build hands its layers to the lifecycle (rt_lifecycle_build_ready), which starts the
 * Space or switches it to the new commit once that one is healthy.
 *
 * Stages it sets: BUILDING (RUNNING_BUILDING while the lifecycle says the Space runs),
 * BUILD_ERROR, CONFIG_ERROR, NO_APP_FILE — with errorMessage.  Every other stage is the
 * lifecycle's. */
#ifndef SP_RUNTIMED_BUILDER_H
#define SP_RUNTIMED_BUILDER_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

struct rt_config;
struct rt_store;
struct rt_lifecycle;
struct rt_builder;
struct rt_gc_report;

/* Starts the worker.  Builds left "running" in the store by a runtimed that died are
 * queued again (never lost).  @lc may be NULL in tests that only build. */
int rt_builder_start(const struct rt_config *cfg, struct rt_store *st, struct rt_lifecycle *lc,
                     struct rt_builder **ret, struct rt_err *err);

/* Cancels the running build, waits for the worker, frees @b.  Accepts NULL. */
void rt_builder_stop(struct rt_builder *b);

/* Queues a build of @sha (40 hex digits) of Space @space_id; @factory ignores the
 * layer cache.  Supersedes any queued or running build of the same Space.  Never
 * blocks on a build.  Returns 0 or -errno. */
int rt_builder_enqueue(struct rt_builder *b, int64_t space_id, const char *sha, bool factory,
                       struct rt_err *err);

/* Cancels whatever is queued or running for @space_id (the Space is being deleted). */
void rt_builder_forget(struct rt_builder *b, int64_t space_id);

/* Runs the garbage collector (gc.h) on the build worker, before the next queued build
 * (and every gc_interval_s on its own).  Blocks until the run ends; waits at most 60 s
 * for a running build to end first (-EBUSY).  Returns 0 with what went in *ret (free it
 * with rt_gc_report_done()), or -errno. */
int rt_builder_gc(struct rt_builder *b, struct rt_gc_report *ret, struct rt_err *err);

#endif
