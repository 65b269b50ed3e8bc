/* Dedicated allocation: whole GPUs (or MIG instances) given to one holder each,
 * never shared.  State is in memory; runtimed persists holders and calls
 * gpu_alloc_rebuild() after a restart. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "gpu.h"

#include "banned.h"

struct gpu_alloc {
    const struct gpu_inventory *inv;
    char **holder; /* per unit: owned copy of the holder, NULL when free */
};

int gpu_alloc_new(const struct gpu_inventory *inv, struct gpu_alloc **ret_alloc, struct rt_err *err)
{
    struct gpu_alloc *a = calloc(1, sizeof(*a));

    if (!a)
        return rt_err_set(err, ENOMEM, "allocate gpu allocator");
    a->inv = inv;
    a->holder = calloc(inv->n_units ? inv->n_units : 1, sizeof(*a->holder));
    if (!a->holder) {
        free(a);
        return rt_err_set(err, ENOMEM, "allocate gpu allocator");
    }
    *ret_alloc = a;
    return 0;
}

static void clear_all(struct gpu_alloc *a)
{
    for (size_t i = 0; i < a->inv->n_units; i++) {
        free(a->holder[i]);
        a->holder[i] = NULL;
    }
}

void gpu_alloc_free(struct gpu_alloc *a)
{
    if (!a)
        return;
    clear_all(a);
    free(a->holder);
    free(a);
}

static bool kind_is(const struct gpu_unit *u, const char *kind)
{
    return !kind || strcasecmp(u->kind, kind) == 0;
}

const char *gpu_alloc_describe_free(const struct gpu_alloc *a, char *buf, size_t len)
{
    size_t pos = 0;

    if (!len)
        return buf;
    buf[0] = '\0';
    for (size_t i = 0; i < a->inv->n_units; i++) {
        const struct gpu_unit *u = &a->inv->units[i];
        unsigned nfree = 0;
        bool seen = false;

        /* One entry per kind, at its first unit. */
        for (size_t k = 0; k < i && !seen; k++)
            seen = strcasecmp(a->inv->units[k].kind, u->kind) == 0;
        if (seen)
            continue;
        for (size_t k = i; k < a->inv->n_units; k++)
            nfree += !a->holder[k] && strcasecmp(a->inv->units[k].kind, u->kind) == 0;
        if (nfree && pos < len)
            pos += (size_t) snprintf(buf + pos, len - pos, "%s%s x%u", pos ? ", " : "", u->kind,
                                     nfree);
    }
    if (!buf[0])
        (void) snprintf(buf, len, "none");
    return buf;
}

unsigned gpu_alloc_free_count(const struct gpu_alloc *a, const char *kind)
{
    unsigned n = 0;

    for (size_t i = 0; i < a->inv->n_units; i++)
        n += !a->holder[i] && kind_is(&a->inv->units[i], kind);
    return n;
}

unsigned gpu_alloc_held(const struct gpu_alloc *a, const char *holder, unsigned *ret_units,
                        unsigned cap)
{
    unsigned n = 0;

    for (size_t i = 0; i < a->inv->n_units; i++)
        if (a->holder[i] && strcmp(a->holder[i], holder) == 0) {
            if (ret_units && n < cap)
                ret_units[n] = (unsigned) i;
            n++;
        }
    return n;
}

const char *gpu_alloc_holder(const struct gpu_alloc *a, unsigned unit)
{
    return unit < a->inv->n_units ? a->holder[unit] : NULL;
}

int gpu_alloc_reserve(struct gpu_alloc *a, const char *holder, const char *kind, unsigned count,
                      unsigned *ret_units, struct rt_err *err)
{
    _cleanup_free_ unsigned *pick = NULL;
    unsigned total = 0, n = 0, held;
    char what[256];

    if (!holder || !*holder || !kind || !*kind || count == 0)
        return rt_err_set(err, EINVAL, "reserve gpu: holder, kind and a count > 0 are needed");
    held = gpu_alloc_held(a, holder, NULL, 0);
    if (held)
        return rt_err_set(err, EEXIST, "'%s' already holds %u gpu(s)", holder, held);
    pick = calloc(count, sizeof(*pick));
    if (!pick)
        return rt_err_set(err, ENOMEM, "reserve gpu");
    for (size_t i = 0; i < a->inv->n_units; i++) {
        if (!kind_is(&a->inv->units[i], kind))
            continue;
        total++;
        if (!a->holder[i] && n < count)
            pick[n++] = (unsigned) i;
    }
    if (total == 0)
        return rt_err_set(err, ENOENT, "this node has no '%s' gpu (free: %s)", kind,
                          gpu_alloc_describe_free(a, what, sizeof(what)));
    if (n < count)
        return rt_err_set(err, EBUSY, "%u '%s' gpu(s) wanted, %u of %u free (free: %s)", count,
                          kind, n, total, gpu_alloc_describe_free(a, what, sizeof(what)));
    /* All copies first, so a failed strdup changes nothing. */
    for (unsigned i = 0; i < count; i++) {
        a->holder[pick[i]] = strdup(holder);
        if (!a->holder[pick[i]]) {
            for (unsigned k = 0; k < i; k++) {
                free(a->holder[pick[k]]);
                a->holder[pick[k]] = NULL;
            }
            return rt_err_set(err, ENOMEM, "reserve gpu");
        }
    }
    if (ret_units)
        memcpy(ret_units, pick, count * sizeof(*pick));
    return 0;
}

unsigned gpu_alloc_release(struct gpu_alloc *a, const char *holder)
{
    unsigned n = 0;

    for (size_t i = 0; holder && i < a->inv->n_units; i++)
        if (a->holder[i] && strcmp(a->holder[i], holder) == 0) {
            free(a->holder[i]);
            a->holder[i] = NULL;
            n++;
        }
    return n;
}

int gpu_alloc_rebuild(struct gpu_alloc *a, const struct gpu_holding *h, size_t n,
                      size_t *ret_missing, struct rt_err *err)
{
    size_t units = a->inv->n_units, missing = 0;
    char **next = calloc(units ? units : 1, sizeof(*next));

    if (!next)
        return rt_err_set(err, ENOMEM, "rebuild gpu allocation");
    for (size_t i = 0; i < n; i++) {
        const struct gpu_unit *u = gpu_inventory_find_uuid(a->inv, h[i].uuid);
        int r = 0;

        if (!u) {
            missing++;
            continue;
        }
        if (!h[i].holder || !*h[i].holder)
            r = rt_err_set(err, EINVAL, "rebuild: gpu '%s' has an empty holder", h[i].uuid);
        else if (next[u->index])
            r = rt_err_set(err, EINVAL, "rebuild: gpu '%s' claimed by both '%s' and '%s'",
                           h[i].uuid, next[u->index], h[i].holder);
        else if (!(next[u->index] = strdup(h[i].holder)))
            r = rt_err_set(err, ENOMEM, "rebuild gpu allocation");
        if (r < 0) {
            for (size_t k = 0; k < units; k++)
                free(next[k]);
            free(next);
            return r;
        }
    }
    clear_all(a);
    free(a->holder);
    a->holder = next;
    if (ret_missing)
        *ret_missing = missing;
    return 0;
}
