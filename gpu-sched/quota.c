/* Daily GPU-second quotas: one record per identity in a chained hash table.
 * The window opens at an identity's first use and lasts quota_period_s (HF:
 * "quota resets 24 h after first use"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#include "banned.h"

#define GC_EVERY_MS (3600ULL * 1000)

int gpu__quota_init(struct gpu__quota *q, uint64_t period_ms)
{
    memset(q, 0, sizeof(*q));
    q->n_buckets = 256;
    q->buckets = calloc(q->n_buckets, sizeof(*q->buckets));
    q->period_ms = period_ms ? period_ms : 86400ULL * 1000;
    return q->buckets ? 0 : -ENOMEM;
}

void gpu__quota_done(struct gpu__quota *q)
{
    for (size_t i = 0; q->buckets && i < q->n_buckets; i++)
        for (struct gpu__quota_rec *r = q->buckets[i], *next; r; r = next) {
            next = r->next;
            free(r);
        }
    free(q->buckets);
    q->buckets = NULL;
}

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (unsigned char) *s) * 1099511628211ULL;
    return h;
}

/* Doubles the table when it averages two records per bucket; on ENOMEM the
 * chains just grow longer. */
static void grow(struct gpu__quota *q)
{
    size_t nb = q->n_buckets * 2;
    struct gpu__quota_rec **b = calloc(nb, sizeof(*b));

    if (!b)
        return;
    for (size_t i = 0; i < q->n_buckets; i++)
        for (struct gpu__quota_rec *r = q->buckets[i], *next; r; r = next) {
            size_t h = hash(r->key) % nb;

            next = r->next;
            r->next = b[h];
            b[h] = r;
        }
    free(q->buckets);
    q->buckets = b;
    q->n_buckets = nb;
}

static void roll(const struct gpu__quota *q, struct gpu__quota_rec *r, uint64_t now_ms)
{
    if (!r->window || now_ms < r->window_start_ms + q->period_ms)
        return;
    r->used_ms = 0;
    /* Leases still running open the next window now; their charge lands there. */
    r->window = r->pending_ms > 0;
    r->window_start_ms = now_ms;
}

struct gpu__quota_rec *gpu__quota_get(struct gpu__quota *q, const char *space, const char *identity,
                                      bool create, uint64_t now_ms)
{
    char key[sizeof(((struct gpu__quota_rec *) 0)->key)];
    struct gpu__quota_rec *r;
    size_t h;

    if (identity && *identity)
        (void) snprintf(key, sizeof(key), "%s", identity);
    else
        (void) snprintf(key, sizeof(key), "space:%s", space ? space : "");
    h = hash(key) % q->n_buckets;
    for (r = q->buckets[h]; r; r = r->next)
        if (strcmp(r->key, key) == 0) {
            roll(q, r, now_ms);
            return r;
        }
    if (!create || !(r = calloc(1, sizeof(*r))))
        return NULL;
    memcpy(r->key, key, sizeof(key));
    r->next = q->buckets[h];
    q->buckets[h] = r;
    if (++q->n > q->n_buckets * 2)
        grow(q);
    return r;
}

int64_t gpu__quota_left_ms(const struct gpu__quota_rec *r, uint32_t limit_s)
{
    if (!limit_s)
        return INT64_MAX;
    return (int64_t) limit_s * 1000 - (int64_t) (r ? r->used_ms + r->pending_ms : 0);
}

void gpu__quota_reserve(struct gpu__quota_rec *r, uint64_t ms, uint64_t now_ms)
{
    if (!r->window) {
        r->window = true;
        r->window_start_ms = now_ms;
    }
    r->pending_ms += ms;
}

void gpu__quota_settle(struct gpu__quota_rec *r, uint64_t reserved_ms, uint64_t charged_ms)
{
    r->pending_ms -= reserved_ms < r->pending_ms ? reserved_ms : r->pending_ms;
    r->used_ms += charged_ms;
}

void gpu__quota_gc(struct gpu__quota *q, uint64_t now_ms)
{
    if (now_ms < q->last_gc_ms + GC_EVERY_MS)
        return;
    q->last_gc_ms = now_ms;
    for (size_t i = 0; i < q->n_buckets; i++)
        for (struct gpu__quota_rec **p = &q->buckets[i]; *p;) {
            struct gpu__quota_rec *r = *p;

            roll(q, r, now_ms);
            if (!r->window && !r->pending_ms) {
                *p = r->next;
                free(r);
                q->n--;
            } else {
                p = &r->next;
            }
        }
}
