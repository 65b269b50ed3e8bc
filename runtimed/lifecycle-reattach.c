/* After runtimed restarts: the shims that kept running are adopted again, dead ones are
 * explained, and no Space is ever started twice. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "gpunode.h"
#include "lifecycle-internal.h"
#include "store.h"
#include "util.h"
#include "banned.h"

void lc__save_inst(const struct lc_inst *in)
{
    char path[LC_PATH + 16];
    json_t *j = json_pack("{s:s, s:i, s:s, s:I, s:I, s:I}", "sha", in->sha, "port",
                          (int) in->rs.port, "health", in->rs.health_path, "healthIntervalMs",
                          (json_int_t) in->rs.health_interval_ms, "healthTimeoutMs",
                          (json_int_t) in->rs.health_timeout_ms, "startupMs",
                          (json_int_t) in->rs.startup_timeout_ms);
    char *text;

    /* A zero Space's listener comes back after a restart of runtimed (lifecycle-zero.c). */
    if (j && in->zero_space[0])
        (void) json_object_set_new(j, "zeroSpace", json_string(in->zero_space));
    text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    (void) snprintf(path, sizeof(path), "%s/inst.json", in->dir);
    if (text)
        (void) lc__write_file(path, text);
    free(text);
    json_decref(j);
}

static json_t *load_json(const char *path)
{
    return json_load_file(path, 0, NULL);
}

static bool load_inst(struct lc_inst *in)
{
    char path[LC_PATH + 16];
    json_t *j;
    const char *sha, *health;

    (void) snprintf(path, sizeof(path), "%s/inst.json", in->dir);
    j = load_json(path);
    sha = json_string_value(json_object_get(j, "sha"));
    health = json_string_value(json_object_get(j, "health"));
    if (!sha || !health) {
        json_decref(j);
        return false;
    }
    (void) snprintf(in->sha, sizeof(in->sha), "%s", sha);
    (void) snprintf(in->rs.health_path, sizeof(in->rs.health_path), "%s", health);
    in->rs.port = (uint16_t) json_integer_value(json_object_get(j, "port"));
    if (json_is_string(json_object_get(j, "zeroSpace")))
        (void) snprintf(in->zero_space, sizeof(in->zero_space), "%s",
                        json_string_value(json_object_get(j, "zeroSpace")));
    in->rs.health_interval_ms =
        (uint64_t) json_integer_value(json_object_get(j, "healthIntervalMs"));
    in->rs.health_timeout_ms = (uint64_t) json_integer_value(json_object_get(j, "healthTimeoutMs"));
    in->rs.startup_timeout_ms = (uint64_t) json_integer_value(json_object_get(j, "startupMs"));
    json_decref(j);
    return true;
}

static bool load_build(const char *dir, struct lc_space *sp)
{
    char path[LC_PATH + 16];
    json_t *j;
    const char *sha, *app, *deps;

    (void) snprintf(path, sizeof(path), "%s/space.json", dir);
    j = load_json(path);
    sha = json_string_value(json_object_get(j, "sha"));
    app = json_string_value(json_object_get(j, "app"));
    deps = json_string_value(json_object_get(j, "deps"));
    if (!sha || !app || !deps) {
        json_decref(j);
        return false;
    }
    sp->build.set = true;
    sp->build.id = json_integer_value(json_object_get(j, "build"));
    (void) snprintf(sp->build.sha, sizeof(sp->build.sha), "%s", sha);
    (void) snprintf(sp->build.app, sizeof(sp->build.app), "%s", app);
    (void) snprintf(sp->build.deps, sizeof(sp->build.deps), "%s", deps);
    sp->paused = json_is_true(json_object_get(j, "paused"));
    json_decref(j);
    return true;
}

/* One instance dir found at start: adopt it (the newest live one), or clean it up. */
static void found_inst(struct rt_lifecycle *lc, struct lc_space *sp, struct rt_space *row,
                       const char *dir)
{
    struct rt_shim_status ss = { 0 };
    struct rt_err err = { 0 };
    struct lc_inst in = { 0 };
    struct stat st;
    char path[LC_PATH + 16];

    (void) snprintf(in.dir, sizeof(in.dir), "%s", dir);
    if (rt_shim_command(dir, "status", &ss, &err) == 0 && strcmp(ss.state, "exited") != 0 &&
        load_inst(&in)) {
        if (sp->cur.dir[0] && strcmp(sp->cur.dir, dir) > 0) {
            lc__stop_inst(lc, sp, &in); /* an older copy: never two */
            return;
        }
        if (sp->cur.dir[0])
            lc__stop_inst(lc, sp, &sp->cur);
        (void) snprintf(in.upstream, sizeof(in.upstream), "%s", ss.upstream);
        in.started_ns = rt_now_ns();
        in.next_probe_ns = in.started_ns;
        if (strcmp(row->stage, "SLEEPING") == 0 || strcmp(row->stage, "STOPPED") == 0) {
            in.state = LC_DOZING; /* we died in its sleep grace: it stops at once */
            sp->doze_frozen = ss.frozen;
            sp->doze_end_ns = rt_now_ns();
        } else if (ss.frozen)
            in.state = LC_FROZEN;
        else if (strcmp(row->stage, "RUNNING") == 0 && row->upstream[0])
            in.state = LC_RUNNING;
        else
            in.state = LC_STARTING;
        (void) snprintf(path, sizeof(path), "%s/run.log", dir);
        in.log_off = stat(path, &st) == 0 ? st.st_size : 0;
        sp->cur = in;
        lc__log(sp, RT_LOG_INFO, "reattached to %s (pid %d)", in.sha, (int) ss.pid);
        return;
    }
    if (!lc__sandbox_gone(dir)) {
        /* Not adopted (its shim does not answer, or its spec is unreadable), yet its
         * sandbox lives: it may have GPUs, which lc__gpu_rebuild() counts from this dir. */
        char cmd[32];

        (void) snprintf(cmd, sizeof(cmd), "stop %d", LC_STOP_GRACE_S);
        (void) rt_shim_command(dir, cmd, &ss, &err);
        lc__log(sp, RT_LOG_ERR,
                "%s: not reattached, and its sandbox was not seen to end: kept, with its "
                "gpus, until it does",
                dir);
        lc__gpu_wait_add(sp, dir);
        return;
    }
    /* It ended while runtimed was away. */
    if (rt_shim_read_status(dir, &ss, &err) == 0 && strcmp(ss.state, "exited") == 0 &&
        (strcmp(row->stage, "RUNNING") == 0 || strcmp(row->stage, "APP_STARTING") == 0)) {
        char msg[1024], mem[32];
        lc__copy_logs(lc, sp, &in);
        lc__crash_message(sp, &ss, lc__memory_of(lc, sp, mem), msg, sizeof(msg));
        (void) lc__store_set(
            lc, sp, &(struct lc_change){ .stage = "RUNTIME_ERROR", .error = msg, .upstream = "" },
            true);
        (void) snprintf(row->stage, sizeof(row->stage), "RUNTIME_ERROR");
    }
    lc__remove_dir(dir);
}

struct find_row {
    int64_t id;
    struct rt_space *row;
    bool found;
};

static int on_row(const struct rt_space *s, void *userdata)
{
    struct find_row *f = userdata;

    if (s->id == f->id) {
        *f->row = *s;
        f->found = true;
    }
    return 1;
}

static void reattach_space(struct rt_lifecycle *lc, int64_t id, const char *dir)
{
    struct rt_space row;
    struct find_row f = { .id = id, .row = &row };
    struct rt_err err = { 0 };
    struct lc_space *sp;
    DIR *d;
    struct dirent *e;
    char *names[256];
    size_t n = 0;

    rt_store_lock(lc->st);
    (void) rt_store_space_list(lc->st, id - 1, on_row, &f, &err);
    rt_store_unlock(lc->st);
    sp = calloc(1, sizeof(*sp));
    if (!sp)
        return;
    sp->id = id;
    sp->last_activity_ms = rt_store_now_ms();
    if (!f.found || !load_build(dir, sp)) {
        /* Deleted while we were away, or never built: nothing of it may run. */
        sp->want = LC_WANT_DELETE;
        if (f.found)
            sp->want = 0;
    } else {
        (void) snprintf(sp->host, sizeof(sp->host), "%s", row.host);
        sp->paused = row.paused;
    }
    d = opendir(dir);
    while (d && (e = readdir(d)) && n < 256)
        if (rt_is_digits(e->d_name) && (names[n] = strdup(e->d_name)))
            n++;
    if (d)
        (void) closedir(d);
    for (size_t i = 0; i < n; i++) {
        char sub[LC_PATH];
        (void) snprintf(sub, sizeof(sub), "%s/%s", dir, names[i]);
        if (f.found)
            found_inst(lc, sp, &row, sub);
        else {
            struct lc_inst in = { 0 };
            (void) snprintf(in.dir, sizeof(in.dir), "%s", sub);
            lc__stop_inst(lc, sp, &in);
        }
        free(names[i]);
    }
    /* Was running, and its shim is gone (the node rebooted): start it again. */
    if (f.found && sp->build.set && !sp->cur.dir[0] && !row.paused &&
        (strcmp(row.stage, "RUNNING") == 0 || strcmp(row.stage, "APP_STARTING") == 0))
        sp->want_start = true;
    sp->next = lc->spaces;
    lc->spaces = sp;
}

void lc__reattach(struct rt_lifecycle *lc)
{
    DIR *d = opendir(lc->run_dir);
    struct dirent *e;

    while (d && (e = readdir(d))) {
        char dir[LC_PATH];
        uint64_t id;

        if (!rt_is_digits(e->d_name) || rt_parse_u64(e->d_name, &id) < 0)
            continue;
        (void) snprintf(dir, sizeof(dir), "%s/%s", lc->run_dir, e->d_name);
        reattach_space(lc, (int64_t) id, dir);
    }
    if (d)
        (void) closedir(d);
}

/* --- GPUs -------------------------------------------------------------------------------- */

static bool spec_has(json_t *gpus, const char *path)
{
    size_t i;
    json_t *v;

    json_array_foreach(gpus, i, v) if (json_is_string(v) &&
                                       strcmp(json_string_value(v), path) == 0) return true;
    return false;
}

/* The units whose own (non-shared) nodes all are in the spec's "gpus": what the
 * sandbox really holds, whatever runtimed remembered. */
static size_t spec_units(const struct gpu_inventory *inv, json_t *gpus, const char **uuids,
                         size_t cap)
{
    size_t n = 0;

    for (size_t u = 0; u < inv->n_units && n < cap; u++) {
        const struct gpu_unit *un = &inv->units[u];
        size_t own = 0, have = 0;

        for (size_t k = 0; k < un->n_nodes; k++) {
            if (un->nodes[k].flags & (GPU_NODE_SHARED | GPU_NODE_OPTIONAL))
                continue;
            own++;
            have += spec_has(gpus, un->nodes[k].path);
        }
        if (own && own == have)
            uuids[n++] = un->uuid;
    }
    return n;
}

static bool in_zero_pool(struct rt_lifecycle *lc, const char *uuid)
{
    const struct gpu_slot *zero;
    size_t nz = rt_gpunode_zero_slots(lc->gpus, &zero);

    for (size_t i = 0; i < nz; i++)
        if (strcmp(zero[i].uuid, uuid) == 0)
            return true;
    return false;
}

/* Who already claimed @uuid, or NULL. */
static const char *claimed(const struct gpu_holding *h, size_t n, const char *uuid)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(h[i].uuid, uuid) == 0)
            return h[i].holder;
    return NULL;
}

/* Fences the node (no grant until a restart) when the holdings cannot be rebuilt: a unit
 * that looks free may still be in a running sandbox. */
static void rebuild_failed(struct rt_lifecycle *lc, const char *why)
{
    rt_log(RT_LOG_ERR, &(struct rt_log_ctx){ .action = "gpu" },
           "rebuild gpu holders: %s; this node grants no gpu until runtimed restarts", why);
    rt_gpunode_fence(lc->gpus, "its holdings could not be rebuilt after a restart");
}

void lc__gpu_rebuild(struct rt_lifecycle *lc)
{
    const struct gpu_inventory *inv;
    struct gpu_holding *h = NULL;
    /* The specs whose ids @h points to: only those with a claim stay, at most one per
     * unit, so n_units bounds them however many Spaces run (ZeroGPU ones claim none). */
    json_t **specs = NULL;
    size_t n = 0, n_specs = 0, missing = 0;
    struct rt_err err = { 0 };

    if (!lc->gpus)
        return;
    inv = rt_gpunode_inventory(lc->gpus);
    h = calloc(inv->n_units ? inv->n_units : 1, sizeof(*h));
    specs = calloc(inv->n_units ? inv->n_units : 1, sizeof(*specs));
    if (!h || !specs) {
        free(h);
        free(specs);
        rebuild_failed(lc, "out of memory");
        return;
    }
    for (struct lc_space *sp = lc->spaces; sp; sp = sp->next)
        for (size_t d = 0; d <= LC_GPU_WAIT_MAX; d++) {
            /* its instance, and those whose sandbox was not seen to end */
            const char *dir = d == 0 ? sp->cur.dir : sp->gpu_wait[d - 1];
            char path[LC_PATH + 16];
            const char *uuids[RT_GPU_GRANT_MAX];
            const char *id;
            json_t *j, *gpus;
            size_t k, before = n;

            if (!dir[0])
                continue;
            (void) snprintf(path, sizeof(path), "%s/spec.json", dir);
            j = load_json(path);
            id = json_string_value(json_object_get(j, "id"));
            gpus = json_object_get(j, "gpus");
            if (!id || !json_is_array(gpus) ||
                !(k = spec_units(inv, gpus, uuids, RT_GPU_GRANT_MAX))) {
                json_decref(j);
                continue;
            }
            for (size_t i = 0; i < k && n < inv->n_units; i++) {
                const char *other;

                if (in_zero_pool(lc, uuids[i])) /* a ZeroGPU Space's sandbox holds the pool's */
                    continue;
                if ((other = claimed(h, n, uuids[i]))) {
                    /* Never two holders: the first claim stands; this sandbox still has
                     * the device (stop it to be sure), so say so. */
                    if (strcmp(other, id) != 0)
                        lc__log(sp, RT_LOG_ERR, "gpu %s is held by another Space too", uuids[i]);
                    continue;
                }
                h[n++] = (struct gpu_holding){ id, uuids[i] };
                (void) snprintf(sp->gpu_holder, sizeof(sp->gpu_holder), "%s", id);
            }
            if (n > before) /* n_specs <= n <= n_units */
                specs[n_specs++] = j;
            else
                json_decref(j);
        }
    if (rt_gpunode_rebuild(lc->gpus, h, n, &missing, &err) < 0) {
        rebuild_failed(lc, err.msg);
    } else if (n || missing) {
        rt_log(RT_LOG_INFO, &(struct rt_log_ctx){ .action = "gpu" },
               "%zu gpu unit(s) held by running Spaces, %zu no longer on this node", n - missing,
               missing);
    }
    for (size_t i = 0; i < n_specs; i++)
        json_decref(specs[i]);
    free(specs);
    free(h);
}
