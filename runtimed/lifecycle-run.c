/* The supervisor's work on each tick: start, probe, watch, freeze, sleep, stop and
 * switch Space instances, and copy their run logs into the store. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "build.h"
#include "builder.h"
#include "cleanup.h"
#include "config.h"
#include "conftable.h"
#include "gpunode.h"
#include "health.h"
#include "lifecycle-internal.h"
#include "sleep.h"
#include "store.h"
#include "tiers.h"
#include "metrics.h"
#include "util.h"
#include "banned.h"

#define LOG_CHUNK (64 * 1024)

/* Weak: a node (or a test) without the build queue links no builder, and then never
 * has one set (rt_lifecycle_set_builder), so this is only called when it exists. */
#pragma weak rt_builder_enqueue

void lc__log(const struct lc_space *sp, enum rt_log_level lvl, const char *fmt, ...)
{
    struct rt_log_ctx ctx = { .app = sp->host[0] ? sp->host : NULL, .action = "lifecycle" };
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    (void) vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rt_log(lvl, &ctx, "%s", msg);
}

struct by_id {
    int64_t id;
    struct rt_space *s;
    bool found;
};

static int on_row(const struct rt_space *s, void *userdata)
{
    struct by_id *b = userdata;

    if (s->id == b->id) {
        *b->s = *s;
        b->found = true;
    }
    return 1; /* the first row after id - 1 is the only candidate */
}

/* Under the store lock. */
static int get_row(struct rt_lifecycle *lc, int64_t id, struct rt_space *ret)
{
    struct by_id b = { .id = id, .s = ret };
    struct rt_err err = { 0 };
    int r = rt_store_space_list(lc->st, id - 1, on_row, &b, &err);

    if (r < 0)
        return r;
    return b.found ? 0 : -ENOENT;
}

int lc__store_set(struct rt_lifecycle *lc, struct lc_space *sp, const struct lc_change *c,
                  bool take_lock)
{
    struct rt_err err = { 0 };
    struct rt_space s;
    int r;

    if (take_lock)
        rt_store_lock(lc->st);
    r = get_row(lc, sp->id, &s);
    if (r == 0) {
        if (!sp->host[0])
            (void) snprintf(sp->host, sizeof(sp->host), "%s", s.host);
        if (c->stage)
            (void) snprintf(s.stage, sizeof(s.stage), "%s", c->stage);
        if (c->error)
            (void) snprintf(s.error, sizeof(s.error), "%s", c->error);
        if (c->upstream)
            (void) snprintf(s.upstream, sizeof(s.upstream), "%s", c->upstream);
        if (c->sha)
            (void) snprintf(s.sha, sizeof(s.sha), "%s", c->sha);
        if (c->hardware_current)
            (void) snprintf(s.hardware_current, sizeof(s.hardware_current), "%s",
                            c->hardware_current);
        r = rt_store_space_update(lc->st, &s, &err);
        if (r < 0)
            lc__log(sp, RT_LOG_WARN, "update the store: %s", err.msg);
        if (c->stage && r >= 0)
            (void) rt_store_event_add(lc->st, sp->id, "stage", c->stage, &err);
    }
    if (take_lock)
        rt_store_unlock(lc->st);
    return r;
}

/* --- files ------------------------------------------------------------------------------- */

void lc__space_dir(struct rt_lifecycle *lc, int64_t id, char *buf, size_t len)
{
    (void) snprintf(buf, len, "%s/%lld", lc->run_dir, (long long) id);
}

/* Removes a state dir (the shim's files only: no subdirectories). */
void lc__remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        (void) unlinkat(dirfd(d), e->d_name, 0);
    }
    (void) closedir(d);
    (void) rmdir(dir);
}

int lc__write_file(const char *path, const char *text)
{
    char tmp[LC_PATH + 8];
    _cleanup_close_ int fd = -1;

    (void) snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || rt_write_all(fd, text, strlen(text)) < 0)
        return -errno;
    return rename(tmp, path) < 0 ? -errno : 0;
}

/* DATA/run/<id>/space.json: the build a Space runs, so it can be restarted or woken
 * after runtimed itself restarted. */
static void save_build(struct rt_lifecycle *lc, struct lc_space *sp)
{
    char dir[LC_PATH], path[LC_PATH + 16];
    json_t *j = json_pack("{s:I, s:s, s:s, s:s, s:b}", "build", (json_int_t) sp->build.id, "sha",
                          sp->build.sha, "app", sp->build.app, "deps", sp->build.deps, "paused",
                          sp->paused);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;

    lc__space_dir(lc, sp->id, dir, sizeof(dir));
    (void) mkdir(dir, 0700);
    (void) snprintf(path, sizeof(path), "%s/space.json", dir);
    if (!text || lc__write_file(path, text) < 0)
        lc__log(sp, RT_LOG_WARN, "cannot save '%s'", path);
    free(text);
    json_decref(j);
}

/* --- logs ----------------------------------------------------------------------------- */

static void remember(struct lc_space *sp, const char *line)
{
    (void) snprintf(sp->tail[sp->tail_n % LC_TAIL_LINES], LC_TAIL_LEN, "%s", line);
    sp->tail_n++;
}

/* Copies new lines of the instance's run.log into the store's run log. */
void lc__copy_logs(struct rt_lifecycle *lc, struct lc_space *sp, struct lc_inst *in)
{
    char path[LC_PATH + 16];
    _cleanup_close_ int fd = -1;
    _cleanup_free_ char *buf = NULL;
    struct stat st;
    ssize_t n;
    char *p, *nl;

    (void) snprintf(path, sizeof(path), "%s/run.log", in->dir);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &st) < 0)
        return;
    if (st.st_size < in->log_off) /* rotated */
        in->log_off = 0;
    if (st.st_size == in->log_off || !(buf = malloc(LOG_CHUNK + 1)))
        return;
    n = pread(fd, buf, LOG_CHUNK, in->log_off);
    if (n <= 0)
        return;
    buf[n] = '\0';
    rt_store_lock(lc->st);
    for (p = buf; (nl = strchr(p, '\n')); p = nl + 1) {
        struct rt_err err = { 0 };
        json_t *j;

        *nl = '\0';
        j = json_loads(p, 0, NULL);
        if (json_is_string(json_object_get(j, "data"))) {
            const char *line = json_string_value(json_object_get(j, "data"));
            (void) rt_store_log_append(lc->st, sp->id, RT_LOGS_RUN, line, &err);
            remember(sp, line);
        }
        json_decref(j);
    }
    rt_store_unlock(lc->st);
    in->log_off += p - buf;
}

/* "Exit code: 1. Reason: <the last lines>", as the Hub words a crash. */
void lc__crash_message(struct lc_space *sp, const struct rt_shim_status *ss, const char *memory,
                       char *buf, size_t len)
{
    char lines[LC_TAIL_LINES * LC_TAIL_LEN] = "";
    unsigned n = sp->tail_n < LC_TAIL_LINES ? sp->tail_n : LC_TAIL_LINES;
    size_t used = 0;

    for (unsigned i = sp->tail_n - n; i < sp->tail_n; i++) {
        int w = snprintf(lines + used, sizeof(lines) - used, "%s%s", used ? "\n" : "",
                         sp->tail[i % LC_TAIL_LINES]);
        if (w > 0 && (size_t) w < sizeof(lines) - used)
            used += (size_t) w;
    }
    if (strcmp(ss->reason, "oom") == 0)
        (void) snprintf(buf, len, "Memory limit exceeded (%s)", memory);
    else if (strcmp(ss->reason, "signaled") == 0 || strcmp(ss->reason, "killed") == 0)
        (void) snprintf(buf, len, "Killed by signal %d. Reason: %s", ss->signal, lines);
    else
        (void) snprintf(buf, len, "Exit code: %d. Reason: %s", ss->code, lines);
}

/* --- instances -------------------------------------------------------------------------- */

struct env_ctx {
    struct rt_strv *v;
};

static int on_kv(const struct rt_kv *kv, void *userdata)
{
    struct env_ctx *c = userdata;
    char *s = NULL;

    if (!kv->value || asprintf(&s, "%s=%s", kv->key, kv->value) < 0)
        return 0;
    if (rt_strv_push(c->v, s) < 0) {
        free(s);
        return 1;
    }
    free(s);
    return 0;
}

/* An instance dir whose sandbox may still have the Space's GPUs (lc__gpu_wait_add). */
static bool gpu_waiting(const struct lc_space *sp)
{
    for (size_t i = 0; i < LC_GPU_WAIT_MAX; i++)
        if (sp->gpu_wait[i][0])
            return true;
    return sp->gpu_wait_lost;
}

/* Known gone: its shim answers "exited"; or no shim answers and status.json says exited,
 * or names a sandbox init that no longer lives (the sandbox is that init's pid namespace,
 * whose other processes the kernel ends before the init goes), or was never written
 * (the shim ended before it spawned a sandbox).  A pid reused since keeps the units. */
bool lc__sandbox_gone(const char *dir)
{
    struct rt_shim_status ss = { 0 };
    struct rt_err err = { 0 };
    int r;

    if (rt_shim_command(dir, "status", &ss, &err) == 0)
        return strcmp(ss.state, "exited") == 0;
    memset(&ss, 0, sizeof(ss));
    r = rt_shim_read_status(dir, &ss, &err);
    if (r < 0)
        return r == -ENOENT;
    if (strcmp(ss.state, "exited") == 0 || ss.pid <= 0)
        return true;
    return kill(ss.pid, 0) < 0 && errno == ESRCH;
}

void lc__gpu_wait_add(struct lc_space *sp, const char *dir)
{
    for (size_t i = 0; i < LC_GPU_WAIT_MAX; i++)
        if (!sp->gpu_wait[i][0] || strcmp(sp->gpu_wait[i], dir) == 0) {
            (void) snprintf(sp->gpu_wait[i], sizeof(sp->gpu_wait[i]), "%s", dir);
            return;
        }
    lc__log(sp, RT_LOG_ERR, "%s: too many sandboxes not seen to end; its gpus stay held", dir);
    sp->gpu_wait_lost = true;
}

void lc__gpu_wait(struct rt_lifecycle *lc, struct lc_space *sp)
{
    bool any = false;

    for (size_t i = 0; i < LC_GPU_WAIT_MAX; i++) {
        if (!sp->gpu_wait[i][0] || !lc__sandbox_gone(sp->gpu_wait[i]))
            continue;
        lc__log(sp, RT_LOG_INFO, "%s: its sandbox ended", sp->gpu_wait[i]);
        lc__remove_dir(sp->gpu_wait[i]);
        sp->gpu_wait[i][0] = '\0';
        any = true;
    }
    if (!any)
        return;
    lc__gpu_release_if_idle(lc, sp);
    if (sp->deleted && !gpu_waiting(sp)) {
        char dir[LC_PATH];

        lc__space_dir(lc, sp->id, dir, sizeof(dir));
        lc__remove_dir(dir);
    }
}

void lc__gpu_release_if_idle(struct rt_lifecycle *lc, struct lc_space *sp)
{
    unsigned n;

    if (!lc->gpus || !sp->gpu_holder[0] || sp->cur.dir[0] || sp->nxt.dir[0] || sp->old.dir[0] ||
        gpu_waiting(sp))
        return;
    n = rt_gpunode_release(lc->gpus, sp->gpu_holder);
    if (n)
        lc__log(sp, RT_LOG_INFO, "gave back %u gpu(s)", n);
    sp->gpu_holder[0] = '\0';
}

/* The Space's dedicated GPUs for a new instance: the units it already holds (a new
 * version beside the running one shares them), or @t's count of its kind, reserved now.
 * A refusal is the allocator's message ("1 'a10g' gpu(s) wanted, 0 of 2 free ..."). */
static int gpu_take(struct rt_lifecycle *lc, struct lc_space *sp, const struct rt_tier *t,
                    const char *holder, struct rt_gpu_grant *ret, struct rt_err *err)
{
    unsigned held = 0;
    int r;

    memset(ret, 0, sizeof(*ret));
    if (!lc->gpus)
        return t->gpus > 0 ? rt_err_set(err, ENODEV, "this node has no GPUs") : 0;
    if (sp->gpu_holder[0] && strcmp(sp->gpu_holder, holder) != 0) {
        lc__gpu_release_if_idle(lc, sp); /* renamed while stopped */
        if (sp->gpu_holder[0])
            holder = sp->gpu_holder; /* renamed while running: one holding per Space */
    }
    held = rt_gpunode_held(lc->gpus, holder, ret);
    if (held && (t->gpus <= 0 || held != (unsigned) t->gpus ||
                 strcmp(rt_gpunode_inventory(lc->gpus)->units[ret->units[0]].kind, t->gpu_kind))) {
        /* Another tier while an instance still runs on the old one: cannot share. */
        if (sp->cur.dir[0] || sp->nxt.dir[0] || sp->old.dir[0] || gpu_waiting(sp))
            return rt_err_set(err, EBUSY, "'%s' still runs on %u other gpu(s)", holder, held);
        (void) rt_gpunode_release(lc->gpus, holder);
        memset(ret, 0, sizeof(*ret));
        held = 0;
    }
    if (held || t->gpus <= 0) {
        if (held)
            (void) snprintf(sp->gpu_holder, sizeof(sp->gpu_holder), "%s", holder);
        return 0;
    }
    r = rt_gpunode_reserve(lc->gpus, holder, t->gpu_kind, (unsigned) t->gpus, ret, err);
    if (r < 0)
        return r;
    (void) snprintf(sp->gpu_holder, sizeof(sp->gpu_holder), "%s", holder);
    lc__log(sp, RT_LOG_INFO, "holds gpu(s) %s", ret->visible);
    return 0;
}

/* Starts an instance of sp->build.  Returns 0, or -errno with @err for errorMessage. */
static int start_inst(struct rt_lifecycle *lc, struct lc_space *sp, struct lc_inst *in,
                      struct rt_err *err)
{
    struct rt_space s;
    struct rt_tier tier;
    struct rt_strv env = { 0 };
    struct env_ctx ec = { &env };
    struct rt_shim_status ss;
    char dir[LC_PATH], spec[LC_PATH + 16], holder[RT_ID_SIZE] = "";
    struct rt_gpu_grant gpus = { 0 };
    const char *gpu_nodes[RT_GPU_NODES_MAX];
    size_t n_gpu_nodes = 0;
    struct lc_inst zero = { 0 };
    uint64_t t0;
    int r;

    rt_store_lock(lc->st);
    r = get_row(lc, sp->id, &s);
    if (r == 0)
        r = rt_store_tier_get(lc->st, s.hardware, &tier, err);
    if (r == 0) {
        (void) snprintf(holder, sizeof(holder), "%s/%s", s.owner, s.name);
        /* Dedicated GPUs: the reservation below is the check, with the allocator's words */
        if (tier.gpus <= 0)
            r = rt_gpunode_check_tier(lc->gpus, &tier, holder, err);
    }
    if (r == 0)
        (void) rt_store_kv_list(lc->st, RT_KV_VARIABLE, sp->id, true, on_kv, &ec, err);
    if (r == 0)
        (void) rt_store_kv_list(lc->st, RT_KV_SECRET, sp->id, true, on_kv, &ec, err);
    rt_store_unlock(lc->st);
    if (r == -ENOENT && !err->msg[0])
        rt_err_set(err, ENOENT, "the Space is gone");
    if (r < 0)
        goto out;
    (void) snprintf(sp->host, sizeof(sp->host), "%s", s.host);
    r = gpu_take(lc, sp, &tier, holder, &gpus, err);
    if (r < 0)
        goto out;
    for (size_t i = 0; i < gpus.n_nodes; i++)
        gpu_nodes[i] = gpus.nodes[i];
    n_gpu_nodes = gpus.n_nodes;

    /* ZeroGPU: the pool's nodes (denied to the app once it runs) and the API's address */
    if (tier.zero && (r = lc__zero_sandbox(lc, holder, &zero, &env, gpu_nodes, &n_gpu_nodes,
                                           RT_GPU_NODES_MAX, err)) < 0)
        goto out;
    memset(in, 0, sizeof(*in));
    (void) snprintf(in->zero_space, sizeof(in->zero_space), "%s", zero.zero_space);
    lc__space_dir(lc, sp->id, dir, sizeof(dir));
    (void) mkdir(dir, 0700);
    (void) snprintf(in->dir, sizeof(in->dir), "%s/%llu", dir,
                    (unsigned long long) (rt_store_now_ms() * 100 + (lc->seq++ % 100)));
    if (mkdir(in->dir, 0700) < 0) {
        r = rt_err_set(err, errno, "create '%s'", in->dir);
        goto fail;
    }
    (void) snprintf(spec, sizeof(spec), "%s/spec.json", in->dir);
    /* The collector keeps an unused dependency layer gc_deps_keep_s after its last
     * start (gc.h): this is its clock. */
    if (sp->build.deps[0])
        (void) utimensat(AT_FDCWD, sp->build.deps, NULL, AT_SYMLINK_NOFOLLOW);
    {
        struct rt_runspec_in ri = {
            .templates = lc->templates,
            .space = &s,
            .tier = &tier,
            .domain = lc->cfg->domain,
            .app_layer = sp->build.app,
            .app_mount = RT_BUILD_APP_MOUNT,
            .deps_layer = sp->build.deps,
            .deps_mount = RT_BUILD_DEPS_MOUNT,
            .rootfs = lc->cfg->rootfs,
            .env = (const char *const *) env.v,
            .n_env = env.n,
            .gpu_nodes = gpu_nodes,
            .n_gpu_nodes = n_gpu_nodes,
            .gpu_visible = gpus.visible,
            .nameservers = lc->cfg->space_nameservers,
        };
        r = rt_runspec_write(&ri, spec, &in->rs, err);
    }
    if (r < 0)
        goto fail;
    t0 = rt_now_ns();
    r = rt_shim_start(lc->shim, in->dir, err);
    if (r == 0)
        r = rt_shim_command(in->dir, "status", &ss, err);
    if (r < 0) {
        /* The shim may be up (its status failed, its start timed out): stopped, or its
         * sandbox would run on unwatched, holding the GPUs given back with the dir. */
        lc__stop_inst(lc, sp, in);
        goto out;
    }
    (void) snprintf(in->sha, sizeof(in->sha), "%s", sp->build.sha);
    if ((r = lc__zero_attach(lc, in, ss.pid, err)) < 0) {
        lc__stop_inst(lc, sp, in); /* a zero Space without its device API cannot work */
        goto out;
    }
    lc__save_inst(in);
    (void) snprintf(in->upstream, sizeof(in->upstream), "%s", ss.upstream);
    in->started_ns = rt_now_ns();
    in->next_probe_ns = in->started_ns;
    in->state = LC_STARTING;
    (void) lc__store_set(lc, sp, &(struct lc_change){ .hardware_current = tier.name }, true);
    lc__log(sp, RT_LOG_INFO, "started %s at %s (%s); the sandbox took %llu ms", in->sha,
            in->upstream, tier.name, (unsigned long long) ((in->started_ns - t0) / 1000000));
    goto out;
fail:
    lc__copy_logs(lc, sp, in);
    lc__remove_dir(in->dir);
    memset(in, 0, sizeof(*in));
    lc__gpu_release_if_idle(lc, sp);
out:
    rt_strv_done(&env);
    return r;
}

/* Stops an instance and waits for its shim to end (bounded), then removes its dir. */
void lc__stop_inst(struct rt_lifecycle *lc, struct lc_space *sp, struct lc_inst *in)
{
    struct rt_shim_status ss;
    struct rt_err err = { 0 };
    char cmd[32];
    uint64_t end;

    if (!in->dir[0])
        return;
    lc__zero_detach(lc, in); /* its GPU workers go first, and its listener */
    (void) snprintf(cmd, sizeof(cmd), "stop %d", LC_STOP_GRACE_S);
    (void) rt_shim_command(in->dir, cmd, &ss, &err);
    end = rt_now_ns() + (LC_STOP_GRACE_S + 3) * 1000000000ULL;
    while (rt_now_ns() < end) {
        memset(&ss, 0, sizeof(ss));
        if (rt_shim_command(in->dir, "status", &ss, &err) < 0 || strcmp(ss.state, "exited") == 0)
            break;
        (void) nanosleep(&(struct timespec){ .tv_nsec = 20000000L }, NULL);
    }
    lc__copy_logs(lc, sp, in);
    if (lc__sandbox_gone(in->dir)) {
        lc__remove_dir(in->dir);
    } else {
        /* Its sandbox may still have the GPUs: they stay the Space's until it ends. */
        lc__log(sp, RT_LOG_ERR,
                "%s: the sandbox was not seen to end %d s after stop; its gpus stay held and "
                "it is checked again each tick",
                in->dir, LC_STOP_GRACE_S + 3);
        lc__gpu_wait_add(sp, in->dir);
    }
    (void) pthread_mutex_lock(&lc->mu);
    memset(in, 0, sizeof(*in));
    (void) pthread_mutex_unlock(&lc->mu);
    lc__gpu_release_if_idle(lc, sp); /* after the sandbox ended: it held the devices */
}

/* The Space's deep-sleep time (its return) and light-sleep time (*ret_light), in ms, -1
 * never, from one read of its row and tier: idle_check asks every tick. */
static int64_t sleep_ms_of(struct rt_lifecycle *lc, struct lc_space *sp, bool *ret_free,
                           int64_t *ret_light)
{
    struct rt_err err = { 0 };
    struct rt_space s;
    struct rt_tier t;
    int64_t secs = -1;

    *ret_free = true;
    *ret_light = lc->cfg->light_sleep_ms;
    rt_store_lock(lc->st);
    if (get_row(lc, sp->id, &s) == 0) {
        bool have = rt_store_tier_get(lc->st, s.hardware, &t, &err) >= 0;
        *ret_free = have && t.default_sleep >= 0;
        if (s.sleep_set)
            secs = s.sleep_time;
        else if (have)
            secs = t.default_sleep;
        *ret_light = rt_sleep_light_ms(&s, have ? &t : NULL, lc->cfg->light_sleep_ms);
    }
    rt_store_unlock(lc->st);
    return secs < 0 ? -1 : secs * 1000;
}

const char *lc__memory_of(struct rt_lifecycle *lc, struct lc_space *sp, char buf[32])
{
    struct rt_err err = { 0 };
    struct rt_space s;
    struct rt_tier t;

    buf[0] = '\0';
    rt_store_lock(lc->st);
    if (get_row(lc, sp->id, &s) == 0 && rt_store_tier_get(lc->st, s.hardware, &t, &err) >= 0)
        (void) rt_format_size(t.memory, buf, 32);
    rt_store_unlock(lc->st);
    return buf;
}

/* The Space's stage after an instance ended: a new version that dies leaves the old
 * one serving, with the reason shown. */
static void ended(struct rt_lifecycle *lc, struct lc_space *sp, bool is_cur, const char *msg)
{
    struct lc_change c = { .stage = "RUNTIME_ERROR", .error = msg, .upstream = "" };

    rt_metrics_start(false);
    if (!is_cur) {
        c.stage = "RUNNING";
        c.upstream = NULL;
    }
    (void) lc__store_set(lc, sp, &c, true);
}

/* Watches one instance: exit, health while starting, the launch deadline.  Returns
 * true when it just became healthy. */
static bool watch(struct rt_lifecycle *lc, struct lc_space *sp, struct lc_inst *in, bool is_cur)
{
    struct rt_shim_status ss = { 0 };
    struct rt_err err = { 0 };
    uint64_t now = rt_now_ns();
    char msg[1024], mem[32];

    lc__copy_logs(lc, sp, in);
    if (rt_shim_read_status(in->dir, &ss, &err) == 0 && strcmp(ss.state, "exited") == 0) {
        lc__copy_logs(lc, sp, in);
        lc__crash_message(sp, &ss, lc__memory_of(lc, sp, mem), msg, sizeof(msg));
        lc__log(sp, RT_LOG_WARN, "%s ended: %s", in->sha, msg);
        lc__stop_inst(lc, sp, in);
        ended(lc, sp, is_cur, msg);
        return false;
    }
    if (in->state != LC_STARTING || now < in->next_probe_ns)
        return false;
    if (rt_health_probe(in->upstream, in->rs.health_path, in->rs.health_timeout_ms) > 0) {
        /* Until the answer came: an app's first page can be slow to render. */
        lc__log(sp, RT_LOG_INFO, "%s answers after %llu ms", in->sha,
                (unsigned long long) ((rt_now_ns() - in->started_ns) / 1000000));
        return true;
    }
    if (now - in->started_ns >= in->rs.startup_timeout_ms * 1000000ULL) {
        lc__log(sp, RT_LOG_WARN, "%s: launch timed out", in->sha);
        lc__stop_inst(lc, sp, in);
        ended(lc, sp, is_cur, "Launch timed out");
        return false;
    }
    /* Often at first (a wake waits on it), then at the template's interval. */
    in->next_probe_ns =
        now + (now - in->started_ns < 60000000000ULL ? LC_TICK_FAST_MS * 1000000ULL
                                                     : in->rs.health_interval_ms * 1000000ULL);
    return false;
}

static void set_state(struct rt_lifecycle *lc, struct lc_inst *in, enum lc_state st)
{
    (void) pthread_mutex_lock(&lc->mu);
    in->state = st;
    (void) pthread_mutex_unlock(&lc->mu);
}

static void became_healthy(struct rt_lifecycle *lc, struct lc_space *sp, struct lc_inst *in)
{
    uint64_t wake_ns;

    set_state(lc, in, LC_RUNNING);
    (void) pthread_mutex_lock(&lc->mu);
    sp->last_activity_ms = rt_store_now_ms();
    wake_ns = sp->wake_ns;
    sp->wake_ns = 0;
    (void) pthread_mutex_unlock(&lc->mu);
    rt_metrics_start(true);
    if (wake_ns) /* a deep-sleep wake: from the visit to the first healthy answer */
        rt_metrics_wake((double) (rt_now_ns() - wake_ns) / 1e6, true);
    (void) lc__store_set(
        lc, sp,
        &(struct lc_change){
            .stage = "RUNNING", .error = "", .upstream = in->upstream, .sha = in->sha },
        true);
}

static void start_cur(struct rt_lifecycle *lc, struct lc_space *sp)
{
    struct rt_err err = { 0 };
    struct lc_inst in;

    if (!sp->build.set)
        return;
    (void) lc__store_set(lc, sp, &(struct lc_change){ .stage = "APP_STARTING", .error = "" }, true);
    if (start_inst(lc, sp, &in, &err) < 0) {
        lc__log(sp, RT_LOG_WARN, "start: %s", err.msg);
        rt_metrics_start(false);
        (void) lc__store_set(
            lc, sp,
            &(struct lc_change){ .stage = "RUNTIME_ERROR", .error = err.msg, .upstream = "" },
            true);
        return;
    }
    (void) pthread_mutex_lock(&lc->mu);
    sp->cur = in;
    (void) pthread_mutex_unlock(&lc->mu);
}

/* Deep sleep, once the grace is over (a wake in it took the Space back: resume_now in
 * lifecycle.c).  Decided under the store lock, so a wake cannot resume it meanwhile;
 * stopped without it (seconds).  A wake from here on starts it afresh. */
static void doze_end(struct rt_lifecycle *lc, struct lc_space *sp)
{
    bool stop;

    rt_store_lock(lc->st);
    (void) pthread_mutex_lock(&lc->mu);
    stop = sp->cur.state == LC_DOZING && rt_now_ns() >= sp->doze_end_ns;
    if (stop) {
        sp->cur.state = LC_STOPPING;
        sp->doze_frozen = false;
    }
    (void) pthread_mutex_unlock(&lc->mu);
    rt_store_unlock(lc->st);
    if (!stop)
        return;
    lc__log(sp, RT_LOG_INFO, "sleep grace over: stopping");
    lc__stop_inst(lc, sp, &sp->cur);
    rt_metrics_sleep(true);
}

/* Deep sleep, first step: the route goes at once (the proxy hears of it through its
 * long-poll, or at its next poll) while the app runs on for sleep_grace_ms, so a visit
 * already on its way to the old upstream is still answered, and a wake or activity in
 * the grace takes the Space back without a restart. */
static void doze(struct rt_lifecycle *lc, struct lc_space *sp, int64_t deep, bool is_free)
{
    int64_t idle;
    enum lc_state st;

    rt_store_lock(lc->st);
    (void) pthread_mutex_lock(&lc->mu);
    idle = rt_store_now_ms() - sp->last_activity_ms;
    st = sp->cur.state;
    if ((st == LC_RUNNING || st == LC_FROZEN) && idle >= deep) {
        sp->cur.state = LC_DOZING;
        sp->doze_frozen = st == LC_FROZEN;
        sp->doze_end_ns = rt_now_ns() + (uint64_t) lc->cfg->sleep_grace_ms * 1000000ULL;
    }
    (void) pthread_mutex_unlock(&lc->mu);
    if ((st == LC_RUNNING || st == LC_FROZEN) && idle >= deep) {
        lc__log(sp, RT_LOG_INFO, "idle %lld s: sleeping (the app stops in %lld ms)",
                (long long) (idle / 1000), (long long) lc->cfg->sleep_grace_ms);
        (void) lc__store_set(
            lc, sp,
            &(struct lc_change){ .stage = is_free ? "SLEEPING" : "STOPPED", .upstream = "" },
            false);
    }
    rt_store_unlock(lc->st);
    if (lc->cfg->sleep_grace_ms == 0)
        doze_end(lc, sp);
}

/* Light and deep sleep of a running Space. */
static void idle_check(struct rt_lifecycle *lc, struct lc_space *sp)
{
    int64_t now = rt_store_now_ms(), idle, deep, light;
    bool is_free;
    enum lc_state st;

    (void) pthread_mutex_lock(&lc->mu);
    idle = now - sp->last_activity_ms;
    st = sp->cur.state;
    (void) pthread_mutex_unlock(&lc->mu);
    if (st == LC_DOZING) {
        doze_end(lc, sp);
        return;
    }
    if (st != LC_RUNNING && st != LC_FROZEN)
        return;
    deep = sleep_ms_of(lc, sp, &is_free, &light);
    if (deep >= 0 && idle >= deep) {
        doze(lc, sp, deep, is_free);
        return;
    }
    if (st != LC_RUNNING || sp->nxt.state != LC_NONE || light < 0 || idle < light)
        return;
    /* Under the store lock, so a wake cannot thaw between our check and the freeze. */
    rt_store_lock(lc->st);
    (void) pthread_mutex_lock(&lc->mu);
    idle = rt_store_now_ms() - sp->last_activity_ms;
    st = sp->cur.state;
    if (st == LC_RUNNING && idle >= light)
        sp->cur.state = LC_FROZEN;
    (void) pthread_mutex_unlock(&lc->mu);
    if (st == LC_RUNNING && idle >= light) {
        struct rt_shim_status ss;
        struct rt_err err = { 0 };

        if (rt_shim_command(sp->cur.dir, "freeze", &ss, &err) < 0) {
            lc__log(sp, RT_LOG_WARN, "freeze: %s", err.msg);
            sp->cur.state = LC_RUNNING;
        } else {
            /* The proxy asks us to wake it (and we thaw) instead of dialling a frozen app. */
            (void) lc__store_set(lc, sp, &(struct lc_change){ .upstream = "" }, false);
            rt_metrics_sleep(false);
        }
    }
    rt_store_unlock(lc->st);
}

/* Everything but the current instance: a starting new version, a retiring old one. */
static void stop_others(struct rt_lifecycle *lc, struct lc_space *sp)
{
    lc__stop_inst(lc, sp, &sp->nxt);
    lc__stop_inst(lc, sp, &sp->old);
}

static void tick_space(struct rt_lifecycle *lc, struct lc_space *sp)
{
    struct lc_build pending = { 0 };
    struct rt_err err = { 0 };
    unsigned want;
    bool want_start, paused;

    (void) pthread_mutex_lock(&lc->mu);
    want = sp->want;
    sp->want = 0;
    want_start = sp->want_start;
    sp->want_start = false;
    if (sp->pending.set) {
        pending = sp->pending;
        sp->pending.set = false;
    }
    paused = sp->paused;
    (void) pthread_mutex_unlock(&lc->mu);

    if (want & LC_WANT_DELETE) {
        char dir[LC_PATH];
        stop_others(lc, sp);
        lc__stop_inst(lc, sp, &sp->cur);
        lc__space_dir(lc, sp->id, dir, sizeof(dir));
        if (!gpu_waiting(sp)) /* else lc__gpu_wait() removes it once its sandboxes end */
            lc__remove_dir(dir);
        (void) pthread_mutex_lock(&lc->mu);
        sp->deleted = true;
        (void) pthread_mutex_unlock(&lc->mu);
        return;
    }
    if (pending.set) {
        sp->build = pending;
        save_build(lc, sp);
        if (paused) {
        } else if (live(&sp->cur) && sp->cur.state != LC_STARTING) {
            /* Zero downtime: the new version starts beside the old one. */
            lc__stop_inst(lc, sp, &sp->nxt);
            if (start_inst(lc, sp, &sp->nxt, &err) < 0) {
                lc__log(sp, RT_LOG_WARN, "start %s: %s", sp->build.sha, err.msg);
                ended(lc, sp, false, err.msg); /* the old version serves on */
            }
        } else {
            lc__stop_inst(lc, sp, &sp->cur);
            start_cur(lc, sp);
        }
    }
    if (want & LC_WANT_PAUSE) {
        /* The API reports PAUSED from the paused flag; the stage says what is under it
         * (a Space that never ran keeps its own, e.g. NO_APP_FILE). */
        bool ran = live(&sp->cur) || live(&sp->nxt);
        save_build(lc, sp);
        stop_others(lc, sp);
        lc__stop_inst(lc, sp, &sp->cur);
        (void) lc__store_set(
            lc, sp, &(struct lc_change){ .stage = ran ? "STOPPED" : NULL, .upstream = "" }, true);
    }
    if (want & LC_WANT_RESTART) {
        struct rt_builder *b;
        save_build(lc, sp);
        (void) pthread_mutex_lock(&lc->mu);
        b = lc->builder;
        (void) pthread_mutex_unlock(&lc->mu);
        if ((want & LC_WANT_FACTORY) && b && rt_builder_enqueue && sp->build.set) {
            if (rt_builder_enqueue(b, sp->id, sp->build.sha, true, &err) < 0)
                lc__log(sp, RT_LOG_WARN, "factory rebuild: %s", err.msg);
        } else {
            stop_others(lc, sp);
            lc__stop_inst(lc, sp, &sp->cur);
            start_cur(lc, sp);
        }
    } else if ((want & LC_WANT_SETTINGS) && live(&sp->cur)) {
        /* New hardware or secrets: a restart on them. */
        stop_others(lc, sp);
        lc__stop_inst(lc, sp, &sp->cur);
        start_cur(lc, sp);
    }
    if (want_start && !paused && !live(&sp->cur))
        start_cur(lc, sp);

    lc__zero_reattach(lc, sp, &sp->cur); /* after a runtimed restart */
    if (live(&sp->cur) && watch(lc, sp, &sp->cur, true))
        became_healthy(lc, sp, &sp->cur);
    if (live(&sp->nxt) && watch(lc, sp, &sp->nxt, false)) {
        /* The new version answers: the proxy switches to it, then the old one stops. */
        struct lc_inst old = sp->cur;
        (void) pthread_mutex_lock(&lc->mu);
        sp->cur = sp->nxt;
        memset(&sp->nxt, 0, sizeof(sp->nxt));
        (void) pthread_mutex_unlock(&lc->mu);
        became_healthy(lc, sp, &sp->cur);
        if (old.state == LC_FROZEN || (old.state == LC_DOZING && sp->doze_frozen))
            (void) rt_shim_command(old.dir, "thaw", &(struct rt_shim_status){ 0 }, &err);
        sp->doze_frozen = false;
        /* The proxy learns the new upstream at its next poll: the old version answers
         * until then, and a little more for the requests it already has. */
        lc__stop_inst(lc, sp, &sp->old);
        sp->old = old;
        sp->retire_ns = rt_now_ns() + LC_RETIRE_MS * 1000000ULL;
    }
    if (sp->old.dir[0] && rt_now_ns() >= sp->retire_ns)
        lc__stop_inst(lc, sp, &sp->old);
    idle_check(lc, sp);
}

bool lc__busy(struct rt_lifecycle *lc)
{
    for (struct lc_space *sp = lc->spaces; sp; sp = sp->next)
        if (!sp->deleted && (sp->cur.state == LC_STARTING || sp->nxt.state == LC_STARTING))
            return true;
    return false;
}

void lc__tick(struct rt_lifecycle *lc)
{
    struct lc_space *head;

    (void) pthread_mutex_lock(&lc->mu);
    head = lc->spaces;
    (void) pthread_mutex_unlock(&lc->mu);
    /* Spaces are only ever added at the head and freed at stop: the list from head on
     * is stable without the lock. */
    for (struct lc_space *sp = head; sp; sp = sp->next) {
        lc__gpu_wait(lc, sp); /* a deleted Space's too: its units come back */
        if (!sp->deleted)
            tick_space(lc, sp);
    }
}
