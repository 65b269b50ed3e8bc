/* The node's GPUs for runtimed: gpu-sched's inventory and allocator behind one lock,
 * plus what a holder's sandbox needs.  The allocator's state is in memory only: after
 * a restart the running shims' specs are the truth (lifecycle-reattach.c rebuilds). */
#include "gpunode.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "tiers.h"
#include "util.h"
#include "banned.h"

struct rt_gpunode {
    pthread_mutex_t lock;
    struct gpu_inventory *inv;
    struct gpu_alloc *alloc;
    size_t n_zero;
    unsigned *zero_units;
    struct gpu_slot *zero_slots;
    char fenced[200]; /* "": grants; else why none (rt_gpunode_fence) */
};

static int load(const struct rt_gpunode_config *cfg, struct gpu_inventory **inv, struct rt_err *err)
{
    const char *b = cfg->backend && *cfg->backend ? cfg->backend : "auto";
    struct gpu_config gc = {
        .backend = b,
        .fake_spec = cfg->fake_spec,
        .fake_dev_dir = cfg->fake_dev_dir && *cfg->fake_dev_dir ? cfg->fake_dev_dir : NULL,
    };
    int r;

    if (strcmp(b, "auto") != 0)
        return gpu_inventory_load(&gc, inv, err);
    /* auto: a node without the driver simply has no GPUs */
    gc.backend = "nvml";
    r = gpu_inventory_load(&gc, inv, err);
    if (r != -ENODEV)
        return r;
    *err = (struct rt_err){ 0 };
    gc.backend = "none";
    return gpu_inventory_load(&gc, inv, err);
}

static int reserve_zero(struct rt_gpunode *g, const struct rt_gpunode_config *cfg,
                        struct rt_err *err)
{
    const char *kind = cfg->zero_kind && *cfg->zero_kind ? cfg->zero_kind : NULL;
    int r;

    if (!cfg->zero_gpus)
        return 0;
    if (!kind && g->inv->n_units)
        kind = g->inv->units[0].kind;
    if (!kind)
        return rt_err_set(err, ENOENT, "zero_gpus: %u, but this node has no gpu", cfg->zero_gpus);
    g->zero_units = calloc(cfg->zero_gpus, sizeof(*g->zero_units));
    g->zero_slots = calloc(cfg->zero_gpus, sizeof(*g->zero_slots));
    if (!g->zero_units || !g->zero_slots)
        return rt_err_set(err, ENOMEM, "zero_gpus");
    r = gpu_alloc_reserve(g->alloc, RT_GPU_ZERO_HOLDER, kind, cfg->zero_gpus, g->zero_units, err);
    if (r < 0)
        return rt_err_wrap(err, "zero_gpus");
    g->n_zero = cfg->zero_gpus;
    for (size_t i = 0; i < g->n_zero; i++) {
        g->zero_slots[i].nvidia_index = (unsigned) i;
        (void) snprintf(g->zero_slots[i].uuid, sizeof(g->zero_slots[i].uuid), "%s",
                        g->inv->units[g->zero_units[i]].uuid);
    }
    return 0;
}

int rt_gpunode_new(const struct rt_gpunode_config *cfg, struct rt_gpunode **ret, struct rt_err *err)
{
    struct rt_gpunode *g = calloc(1, sizeof(*g));
    int r;

    if (!g)
        return rt_err_set(err, ENOMEM, "gpu node");
    (void) pthread_mutex_init(&g->lock, NULL);
    r = load(cfg, &g->inv, err);
    if (r == 0)
        r = gpu_alloc_new(g->inv, &g->alloc, err);
    if (r == 0)
        r = reserve_zero(g, cfg, err);
    if (r < 0) {
        rt_gpunode_free(g);
        return r;
    }
    *ret = g;
    return 0;
}

void rt_gpunode_free(struct rt_gpunode *g)
{
    if (!g)
        return;
    gpu_alloc_free(g->alloc);
    gpu_inventory_free(g->inv);
    free(g->zero_units);
    free(g->zero_slots);
    (void) pthread_mutex_destroy(&g->lock);
    free(g);
}

const struct gpu_inventory *rt_gpunode_inventory(const struct rt_gpunode *g)
{
    return g->inv;
}

unsigned rt_gpunode_free_count(struct rt_gpunode *g, const char *kind)
{
    unsigned n;

    (void) pthread_mutex_lock(&g->lock);
    n = gpu_alloc_free_count(g->alloc, kind);
    (void) pthread_mutex_unlock(&g->lock);
    return n;
}

unsigned rt_gpunode_count(const struct rt_gpunode *g, const char *kind)
{
    unsigned n = 0;

    for (size_t i = 0; i < g->inv->n_units; i++)
        n += !kind || strcmp(g->inv->units[i].kind, kind) == 0;
    return n;
}

int rt_gpunode_check_tier(struct rt_gpunode *g, const struct rt_tier *t, const char *holder,
                          struct rt_err *err)
{
    struct rt_tier_gpus n = { 0 };

    if (g) {
        const char *kind = t->gpu_kind[0] ? t->gpu_kind : NULL;

        n.have = kind ? rt_gpunode_count(g, kind) : 0;
        n.zero = (unsigned) g->n_zero;
        (void) pthread_mutex_lock(&g->lock);
        if (kind) {
            n.free = gpu_alloc_free_count(g->alloc, kind);
            for (size_t i = 0; holder && i < g->inv->n_units; i++) {
                const char *h = gpu_alloc_holder(g->alloc, (unsigned) i);
                n.free += h && strcmp(h, holder) == 0 && strcmp(g->inv->units[i].kind, kind) == 0;
            }
        }
        (void) pthread_mutex_unlock(&g->lock);
    }
    return rt_tiers_check_node(t, &n, err);
}

static bool has_node(const struct rt_gpu_grant *gr, const char *path)
{
    for (size_t i = 0; i < gr->n_nodes; i++)
        if (strcmp(gr->nodes[i], path) == 0)
            return true;
    return false;
}

/* Each unit's own nodes first, then the shared ones once; optional ones (uvm-tools,
 * modeset) are never granted, as libnvidia-container gives a compute container. */
static int fill_grant(const struct rt_gpunode *g, const unsigned *units, unsigned n,
                      struct rt_gpu_grant *gr)
{
    size_t vis = 0;

    memset(gr, 0, sizeof(*gr));
    gr->n_units = n;
    for (unsigned i = 0; i < n; i++) {
        const struct gpu_unit *u = &g->inv->units[units[i]];

        gr->units[i] = units[i];
        vis += (size_t) snprintf(gr->visible + vis, sizeof(gr->visible) - vis, "%s%s", i ? "," : "",
                                 u->uuid);
        if (vis >= sizeof(gr->visible))
            vis = sizeof(gr->visible) - 1;
    }
    for (int shared = 0; shared < 2; shared++)
        for (unsigned i = 0; i < n; i++) {
            const struct gpu_unit *u = &g->inv->units[units[i]];
            for (size_t k = 0; k < u->n_nodes; k++) {
                const struct gpu_node *nd = &u->nodes[k];
                if ((nd->flags & GPU_NODE_OPTIONAL) || !!(nd->flags & GPU_NODE_SHARED) != shared ||
                    has_node(gr, nd->path))
                    continue;
                if (gr->n_nodes >= RT_GPU_NODES_MAX)
                    return -E2BIG;
                (void) snprintf(gr->nodes[gr->n_nodes++], GPU_PATH_MAX, "%s", nd->path);
            }
        }
    return 0;
}

int rt_gpunode_reserve(struct rt_gpunode *g, const char *space, const char *kind, unsigned count,
                       struct rt_gpu_grant *ret, struct rt_err *err)
{
    unsigned units[RT_GPU_GRANT_MAX];
    int r;

    if (count == 0 || count > RT_GPU_GRANT_MAX)
        return rt_err_set(err, EINVAL, "%u gpus: a Space may hold 1 to %d", count,
                          RT_GPU_GRANT_MAX);
    if (space[0] == '@')
        return rt_err_set(err, EINVAL, "'%s' is not a Space id", space);
    (void) pthread_mutex_lock(&g->lock);
    if (g->fenced[0])
        r = rt_err_set(err, EBUSY, "no gpu is granted on this node: %s", g->fenced);
    else
        r = gpu_alloc_reserve(g->alloc, space, kind, count, units, err);
    (void) pthread_mutex_unlock(&g->lock);
    if (r < 0)
        return r;
    if (fill_grant(g, units, count, ret) < 0) {
        (void) rt_gpunode_release(g, space);
        return rt_err_set(err, E2BIG, "%u gpus need more than %d device nodes", count,
                          RT_GPU_NODES_MAX);
    }
    return 0;
}

unsigned rt_gpunode_held(struct rt_gpunode *g, const char *space, struct rt_gpu_grant *ret)
{
    unsigned units[RT_GPU_GRANT_MAX], n;

    (void) pthread_mutex_lock(&g->lock);
    n = gpu_alloc_held(g->alloc, space, units, RT_GPU_GRANT_MAX);
    (void) pthread_mutex_unlock(&g->lock);
    if (n > RT_GPU_GRANT_MAX)
        n = RT_GPU_GRANT_MAX;
    (void) fill_grant(g, units, n, ret);
    return n;
}

unsigned rt_gpunode_release(struct rt_gpunode *g, const char *space)
{
    unsigned n;

    if (space[0] == '@') /* the pool is not a Space's to give back */
        return 0;
    (void) pthread_mutex_lock(&g->lock);
    n = gpu_alloc_release(g->alloc, space);
    (void) pthread_mutex_unlock(&g->lock);
    return n;
}

int rt_gpunode_rebuild(struct rt_gpunode *g, const struct gpu_holding *h, size_t n,
                       size_t *ret_missing, struct rt_err *err)
{
    struct gpu_holding *all = calloc(n + g->n_zero + 1, sizeof(*all));
    size_t k = 0;
    int r;

    if (!all)
        return rt_err_set(err, ENOMEM, "rebuild gpu holders");
    for (size_t i = 0; i < g->n_zero; i++)
        all[k++] = (struct gpu_holding){ RT_GPU_ZERO_HOLDER, g->zero_slots[i].uuid };
    for (size_t i = 0; i < n; i++)
        all[k++] = h[i];
    (void) pthread_mutex_lock(&g->lock);
    r = gpu_alloc_rebuild(g->alloc, all, k, ret_missing, err);
    (void) pthread_mutex_unlock(&g->lock);
    free(all);
    return r;
}

void rt_gpunode_fence(struct rt_gpunode *g, const char *why)
{
    (void) pthread_mutex_lock(&g->lock);
    (void) snprintf(g->fenced, sizeof(g->fenced), "%s", why && *why ? why : "fenced");
    (void) pthread_mutex_unlock(&g->lock);
}

size_t rt_gpunode_zero_slots(const struct rt_gpunode *g, const struct gpu_slot **ret)
{
    *ret = g->zero_slots;
    return g->n_zero;
}

const unsigned *rt_gpunode_zero_units(const struct rt_gpunode *g)
{
    return g->zero_units;
}

static json_t *unit_json(const struct gpu_unit *u, const char *holder)
{
    json_t *nodes = json_array(), *o;

    if (!nodes)
        return NULL;
    for (size_t k = 0; k < u->n_nodes; k++)
        if (json_array_append_new(nodes, json_string(u->nodes[k].path)) < 0)
            return json_decref(nodes), NULL;
    o = json_pack("{s:I, s:I, s:s, s:s, s:s, s:I, s:o, s:o}", "index", (json_int_t) u->index, "gpu",
                  (json_int_t) u->gpu_index, "uuid", u->uuid, "name", u->name, "kind", u->kind,
                  "memory", (json_int_t) u->memory, "nodes", nodes, "holder",
                  holder ? json_string(holder) : json_null());
    return o;
}

char *rt_gpunode_json(struct rt_gpunode *g)
{
    json_t *root, *units, *free_by;
    char *text = NULL;

    units = json_array();
    free_by = json_object();
    root =
        json_pack("{s:s, s:s, s:I, s:o, s:o}", "backend", g->inv->backend, "driver", g->inv->driver,
                  "gpus", (json_int_t) g->inv->n_gpus, "units", units, "free", free_by);
    if (!root)
        return NULL;
    (void) pthread_mutex_lock(&g->lock);
    for (size_t i = 0; i < g->inv->n_units; i++) {
        const struct gpu_unit *u = &g->inv->units[i];
        const char *holder = gpu_alloc_holder(g->alloc, (unsigned) i);
        json_t *o = unit_json(u, holder);

        if (!o || json_array_append_new(units, o) < 0)
            goto out;
        if (!json_object_get(free_by, u->kind) &&
            json_object_set_new(free_by, u->kind,
                                json_integer(gpu_alloc_free_count(g->alloc, u->kind))) < 0)
            goto out;
    }
    text = json_dumps(root, JSON_COMPACT);
out:
    (void) pthread_mutex_unlock(&g->lock);
    json_decref(root);
    return text;
}
