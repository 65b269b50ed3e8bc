/* The garbage collector of build outputs (docs/builds.md, "Garbage collection").
 *
 * Builds only ever add: an app layer per commit, a dependency layer per set of inputs,
 * pip's cache per owner.  The collector removes
 *   - DATA/layers/app/<commit>[-<scope>]: no instance mounts it, no Space's current
 *     build names it, and it is older than gc_app_grace_s (mtime: the builder touches
 *     a layer it hands over, so a build that just finished is never taken);
 *   - DATA/layers/deps/<key>: no instance mounts it, no Space's current build names it,
 *     and unused for gc_deps_keep_s (mtime, touched by each build and each start on it);
 *   - `.tmp-*` leftovers of builds and `.old-<key>-*` layers a factory rebuild moved
 *     aside (kept while an instance mounts <key>), once an hour old;
 *   - anything in those folders that is not a directory (a layer never is a symlink):
 *     unlinked itself, never followed;
 *   - DATA/cache/pip/<owner>: whole when the owner has no Space left, else its oldest
 *     files until it is under gc_pip_cache_max.
 * "In use" is read from disk, the truth after a runtimed restart: DATA/run/<space>/
 * <instance>/spec.json (each live instance's mounts) and DATA/run/<space>/space.json
 * (the build each existing Space runs or ran last), plus each Space's serving commit
 * in the store.
 *
 * The caller must make sure no build runs meanwhile: runtimed runs it on the build
 * worker between two builds (builder.h, rt_builder_gc). */
#ifndef SP_RUNTIMED_GC_H
#define SP_RUNTIMED_GC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct rt_config;
struct rt_store;

#define RT_GC_LEFTOVER_S 3600 /* .tmp-* and .old-* live at least this long */

/* What a run removed: paths relative to the data dir, and the bytes they held. */
struct rt_gc_report {
    char **removed;
    size_t n, cap;
    uint64_t freed_bytes;
};

void rt_gc_report_done(struct rt_gc_report *rep);

/* Runs the collector over @cfg->data_dir.  Failures to remove one thing are logged and
 * skipped; returns 0, or -errno when what is in use cannot be known (then nothing is
 * removed).  @rep gets what was removed; free it with rt_gc_report_done(). */
int rt_gc_run(const struct rt_config *cfg, struct rt_store *st, struct rt_gc_report *rep,
              struct rt_err *err);

/* --- the pure part, for tests ---------------------------------------------------------- */

enum rt_gc_kind { RT_GC_APP, RT_GC_DEPS };

/* A set of names (layer basenames, owners). */
struct rt_gc_names {
    char **v;
    size_t n, cap;
};

int rt_gc_names_add(struct rt_gc_names *s, const char *name);
bool rt_gc_names_has(const struct rt_gc_names *s, const char *name);
void rt_gc_names_done(struct rt_gc_names *s);

struct rt_gc_policy {
    int64_t now_s;
    int64_t app_grace_s;
    int64_t deps_keep_s;
};

/* One entry of DATA/layers/<kind>/ as lstat() saw it. */
struct rt_gc_entry {
    const char *name;
    bool is_dir; /* false for symlinks */
    int64_t mtime_s;
};

/* Whether @e may go: NULL to keep it, else why it goes ("unused", "leftover", "not a
 * layer").  @in_use: layers live instances mount; @wanted: layers Spaces' current
 * builds name. */
const char *rt_gc_verdict(enum rt_gc_kind kind, const struct rt_gc_entry *e,
                          const struct rt_gc_names *in_use, const struct rt_gc_names *wanted,
                          const struct rt_gc_policy *p);

/* A file of a pip cache, for trimming. */
struct rt_gc_file {
    char *path; /* relative to the cache's root */
    uint64_t bytes;
    int64_t mtime_s;
};

/* Sorts @files oldest first and returns how many of the first ones must go for the
 * rest to fit in @max bytes. */
size_t rt_gc_trim_count(struct rt_gc_file *files, size_t n, uint64_t max);

#endif
