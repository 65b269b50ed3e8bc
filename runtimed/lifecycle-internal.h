/* Private to lifecycle*.c: the supervisor's view of each Space. */
#ifndef SP_RUNTIMED_LIFECYCLE_INTERNAL_H
#define SP_RUNTIMED_LIFECYCLE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lifecycle.h"
#include "log.h"
#include "runspec.h"
#include "shim.h"

#define LC_PATH 1024
#define LC_LAYER 4096
#define LC_TICK_MS 250     /* watching running Spaces */
#define LC_TICK_FAST_MS 20 /* while one starts: the first healthy probe is the wake time */
#define LC_STOP_GRACE_S 5  /* SIGTERM, then SIGKILL */
#define LC_RETIRE_MS 5000  /* an old version outlives the switch: the proxy polls routes */
#define LC_TAIL_LINES 5    /* log lines in a crash's errorMessage */
#define LC_TAIL_LEN 200

enum lc_state {
    LC_NONE = 0, /* nothing runs */
    LC_STARTING, /* the shim runs, the app does not answer yet */
    LC_RUNNING,
    LC_FROZEN,   /* light sleep: its cgroup frozen, no upstream for the proxy */
    LC_DOZING,   /* deep sleep decided: no upstream, stopped when the grace ends */
    LC_STOPPING, /* deep sleep: being stopped (not live: a wake starts it afresh) */
};

/* One running version of a Space. */
struct lc_inst {
    enum lc_state state;
    char dir[LC_PATH]; /* the shim's state dir */
    char sha[65];
    char upstream[64];
    struct rt_runspec_out rs;
    uint64_t started_ns, next_probe_ns;
    off_t log_off;
    char zero_space[128]; /* "owner/name" on a ZeroGPU tier (lifecycle-zero.c), else "" */
    bool zero_attached;   /* its device API listener is up */
    bool zero_failed;     /* a reattach could not bring it back (said once) */
};

struct lc_build {
    bool set;
    int64_t id;
    char sha[65];
    char app[LC_LAYER];
    char deps[LC_LAYER];
};

#define LC_WANT_PAUSE (1u << 0)
#define LC_WANT_RESTART (1u << 1)
#define LC_WANT_FACTORY (1u << 2)
#define LC_WANT_SETTINGS (1u << 3)
#define LC_WANT_DELETE (1u << 4)
#define LC_GPU_WAIT_MAX 4 /* cur, nxt, old, and one more found at a restart */

struct lc_space {
    int64_t id;
    struct lc_space *next;
    /* Written under lc->mu by anyone: */
    unsigned want;
    bool want_start; /* a visit to a Space that does not run */
    bool paused;
    bool deleted;
    int64_t last_activity_ms;
    uint64_t wake_ns;        /* when a visit asked a stopped Space to start, 0: none (metrics) */
    struct lc_build pending; /* a finished build to switch to */
    /* The supervisor's (cur.state also moves FROZEN or DOZING -> RUNNING in a wake, under
     * mu and the store lock): */
    struct lc_build build; /* what the Space runs, or ran last */
    struct lc_inst cur, nxt;
    struct lc_inst old; /* replaced by a new version, stopped at retire_ns */
    uint64_t retire_ns;
    uint64_t doze_end_ns; /* LC_DOZING: when the grace ends */
    bool doze_frozen;     /* LC_DOZING: it was frozen (light sleep) when it dozed off */
    char tail[LC_TAIL_LINES][LC_TAIL_LEN];
    unsigned tail_n;
    char host[300]; /* for log lines */
    /* "owner/name" holding dedicated GPUs (gpunode.h) while any instance runs: one
     * holding per Space, so a zero-downtime switch's new version shares the old one's
     * units instead of needing as many again.  Supervisor thread only. */
    char gpu_holder[RT_ID_SIZE];
    /* Dirs of stopped instances whose sandbox was not seen to end: it may still have the
     * GPUs, so the dir and gpu_holder stay until lc__gpu_wait() sees it gone (each tick);
     * gpu_wait_lost: one did not fit, the holding stays for good.  Supervisor only. */
    char gpu_wait[LC_GPU_WAIT_MAX][LC_PATH];
    bool gpu_wait_lost;
};

struct rt_gpunode;

struct rt_lifecycle {
    const struct rt_config *cfg;
    struct rt_store *st;
    struct rt_gpunode *gpus; /* NULL: a node without GPUs */
    struct rt_gpuzero *zero; /* the ZeroGPU device API; NULL: none (gpuzero.h) */
    struct rt_builder *builder;
    struct rt_templates *templates;
    char shim[LC_PATH];
    char run_dir[LC_PATH];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool has_thread, stopping, kicked;
    struct lc_space *spaces;
    uint64_t seq;
};

static inline bool live(const struct lc_inst *in)
{
    return in->state == LC_STARTING || in->state == LC_RUNNING || in->state == LC_FROZEN ||
           in->state == LC_DOZING;
}

/* A change to a Space's row; NULL fields stay. */
struct lc_change {
    const char *stage;
    const char *error;
    const char *upstream;
    const char *sha;
    const char *hardware_current;
};

/* Writes @c into the Space's row, taking the store lock unless @locked is false (the
 * caller holds it).  Returns -ENOENT when the Space is gone. */
int lc__store_set(struct rt_lifecycle *lc, struct lc_space *sp, const struct lc_change *c,
                  bool take_lock);
void lc__log(const struct lc_space *sp, enum rt_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void lc__tick(struct rt_lifecycle *lc);
bool lc__busy(struct rt_lifecycle *lc); /* under lc->mu: a Space is starting */
void lc__reattach(struct rt_lifecycle *lc);
/* lifecycle-run.c */
void lc__space_dir(struct rt_lifecycle *lc, int64_t id, char *buf, size_t len);
void lc__remove_dir(const char *dir);
int lc__write_file(const char *path, const char *text);
void lc__copy_logs(struct rt_lifecycle *lc, struct lc_space *sp, struct lc_inst *in);
void lc__crash_message(struct lc_space *sp, const struct rt_shim_status *ss, const char *memory,
                       char *buf, size_t len);
void lc__stop_inst(struct rt_lifecycle *lc, struct lc_space *sp, struct lc_inst *in);
const char *lc__memory_of(struct rt_lifecycle *lc, struct lc_space *sp, char buf[32]);
/* lifecycle-reattach.c: inst.json, what an instance needs to be watched again */
void lc__save_inst(const struct lc_inst *in);
/* lifecycle-zero.c: ZeroGPU.  The sandbox's environment and nodes of a zero Space; its
 * listener once the sandbox runs; again after a reattach (at its first tick); gone at
 * stop, before the sandbox is. */
struct rt_strv;
int lc__zero_sandbox(struct rt_lifecycle *lc, const char *space, struct lc_inst *in,
                     struct rt_strv *env, const char **nodes, size_t *n, size_t cap,
                     struct rt_err *err);
int lc__zero_attach(struct rt_lifecycle *lc, struct lc_inst *in, pid_t pid, struct rt_err *err);
void lc__zero_reattach(struct rt_lifecycle *lc, struct lc_space *sp, struct lc_inst *in);
void lc__zero_detach(struct rt_lifecycle *lc, struct lc_inst *in);
/* After reattaching: the GPU holdings are what the adopted shims' specs hold. */
void lc__gpu_rebuild(struct rt_lifecycle *lc);
/* Gives the Space's GPUs back once none of its instances runs (lifecycle-run.c). */
void lc__gpu_release_if_idle(struct rt_lifecycle *lc, struct lc_space *sp);
/* Whether the sandbox of the instance in @dir is known gone (lifecycle-run.c). */
bool lc__sandbox_gone(const char *dir);
/* Keeps @dir (its sandbox may live on) for lc__gpu_wait() instead of removing it. */
void lc__gpu_wait_add(struct lc_space *sp, const char *dir);
/* Each tick: removes the kept dirs whose sandbox is gone, then gives the GPUs back. */
void lc__gpu_wait(struct rt_lifecycle *lc, struct lc_space *sp);

#endif
