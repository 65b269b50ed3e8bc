/* Private to builder*.c: one build of one commit, from the README to the layers, with
 * its stage changes and its log lines in the store. */
#ifndef SP_RUNTIMED_BUILDER_JOB_H
#define SP_RUNTIMED_BUILDER_JOB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "gitrepo.h"

#define RT_GIT_SHA_SIZE (RT_GIT_SHA_LEN + 1)

struct rt_build;
struct rt_config;
struct rt_lifecycle;
struct rt_pip_settings;
struct rt_store;
struct rt_templates;

struct rt__builder_env {
    const struct rt_config *cfg;
    struct rt_store *st;
    struct rt_lifecycle *lc;
    const struct rt_templates *templates;
    const struct rt_pip_settings *pip;
    atomic_bool *stopping; /* runtimed is stopping: a cancelled build stays unfinished */
};

/* Builds @sha of Space @space_id through @rb (cancellable from another thread) and
 * records the outcome: the build row, the stage, the log, and on success the handoff to
 * the lifecycle. */
void rt__builder_run(const struct rt__builder_env *env, struct rt_build *rb, int64_t space_id,
                     const char *sha, bool factory);

/* Where the bare repository of OWNER/NAME lives: DATA/repos/OWNER/NAME.git. */
void rt__builder_repo_dir(const char *data_dir, const char *owner, const char *name, char *buf,
                          size_t len);

#endif
