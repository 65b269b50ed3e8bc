/* Builds of a Space commit: an app layer (the commit's files, checked) and a dependency
 * layer (a venv from the requirements) run in the sandbox, stored by a hash of their
 * inputs and shared by every build with the same inputs.
 *
 *   DATA/layers/app/<commit>/          the files of the commit, mounted read-only at run
 *   DATA/layers/deps/<key>/            the SDK's dependency layer (venv/, ...)
 *   DATA/cache/pip/<owner>/            pip's cache, per owner: a hostile build can write
 *                                      into it, so it is never shared across owners
 *
 * A build blocks the calling thread (runtimed runs builds on worker threads), streams
 * every line of output to @on_line and to the build log file, and can be cancelled
 * from another thread (a newer push supersedes it). */
#ifndef SP_RUNTIMED_BUILD_H
#define SP_RUNTIMED_BUILD_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

/* Where layers are mounted inside app and build sandboxes: fixed, because a venv
 * records its own absolute path.  The dependency layer IS the venv the SDK templates
 * name (/home/user/.venv/bin/python), so their run commands work unchanged. */
#define RT_BUILD_DEPS_MOUNT "/home/user/.venv"
#define RT_BUILD_APP_MOUNT "/home/user/app"
#define RT_BUILD_SRC_MOUNT "/src"
#define RT_BUILD_MAX_KEY_FILES 8
#define RT_BUILD_MAX_ENV 32
#define RT_BUILD_MAX_RO_BINDS 8

struct rt_git_limits;

/* What the SDK template asks of the dependency layer. */
struct rt_build_plan {
    /* A shell script run with /bin/sh -e inside the build sandbox, with the commit's
     * files read-only at /src and the new layer writable at RT_BUILD_DEPS_MOUNT.  NULL: the SDK
     * needs no dependency layer (static Spaces). */
    const char *deps_script;
    /* Repo files whose content goes into the layer key ("requirements.txt", ...);
     * missing files count as empty, and say so in the key. */
    const char *key_files[RT_BUILD_MAX_KEY_FILES];
    size_t n_key_files;
    /* Everything else the layer depends on: template name and revision, SDK version,
     * Python version, base image id, package index settings. */
    const char *key_extra;
    const char *env[RT_BUILD_MAX_ENV]; /* "K=V" for the build sandbox (pip settings...) */
    size_t n_env;
    /* Host paths bound read-only at the same path in the build (a CA bundle, a local
     * package index); "SRC" or "SRC:DST". */
    const char *ro_binds[RT_BUILD_MAX_RO_BINDS];
    size_t n_ro_binds;
};

struct rt_build_limits {
    uint64_t memory_max; /* bytes; 0: 4 GiB */
    uint32_t cpu_milli;  /* 0: 2000 */
    uint64_t pids_max;   /* 0: 1024 */
    uint64_t layer_max;  /* bytes of writable space for the build; 0: 8 GiB */
    uint32_t timeout_s;  /* 0: 1800 */
    bool host_network;   /* package installs need it; false: no network at all */
    const char *rootfs;  /* base image; NULL: the host's /usr */
};

struct rt_build_job {
    const char *data_dir;                   /* layers/ and cache/ live below it */
    const char *space_id;                   /* "owner/name" */
    const char *repo_dir;                   /* the Space's bare repository */
    const char *commit;                     /* 40 hex digits */
    const char *lfs_scope;                  /* rt_lfs_scope_key() of the Space */
    const char *log_path;                   /* the build log file (created or appended) */
    bool no_cache;                          /* factory rebuild: build a fresh dependency layer */
    const struct rt_git_limits *git_limits; /* checkout limits; NULL: gitrepo's defaults */
    const struct rt_build_plan *plan;
    const struct rt_build_limits *limits;
    /* Each line of build output as it comes, without its newline.  May be NULL. */
    void (*on_line)(void *data, const char *line);
    void *data;
};

struct rt_build_result {
    char app_layer[4096];
    char deps_layer[4096]; /* "" when the plan has no dependency layer */
    char deps_key[65];
    bool deps_reused; /* the layer already existed: no install ran */
    uint64_t app_ms, deps_ms;
};

struct rt_build; /* one build, owned by the caller, cancellable from another thread */

/* Allocates a build handle (NULL when out of memory); free it with rt_build_free()
 * once rt_build_run() has returned. */
struct rt_build *rt_build_new(void);
void rt_build_free(struct rt_build *b);

/* Runs @job.  Returns 0 with *ret filled when both layers are ready.  On failure
 * returns -errno with @err saying why in words a Space author can act on ("installing
 * dependencies failed (exit 1): ERROR: No matching distribution found for nosuchpkg",
 * "build timed out after 1800 s", "'big.bin' is 3 GB, over the 1 GB file limit") and
 * the log holding the details; -ECANCELED when cancelled through @b. */
int rt_build_run(struct rt_build *b, const struct rt_build_job *job, struct rt_build_result *ret,
                 struct rt_err *err);

/* Asks a running build to stop: its sandbox is killed and rt_build_run() returns
 * -ECANCELED.  Safe from another thread while rt_build_run() runs. */
void rt_build_cancel(struct rt_build *b);

/* Computes the dependency layer key of @plan for the checkout at @app_dir. */
int rt_build_deps_key(const struct rt_build_plan *plan, const char *app_dir, char key[65],
                      struct rt_err *err);

#endif
