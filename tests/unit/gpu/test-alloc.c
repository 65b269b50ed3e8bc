/* Unit tests for dedicated allocation: exclusive, all-or-nothing, refused with
 * what is free, released on stop, rebuilt from the store's holders. */
#include <errno.h>
#include <string.h>

#include "../tap.h"
#include "gpu-sched/gpu.h"

static struct gpu_inventory *load(const char *spec)
{
    struct gpu_config cfg = { .backend = "fake", .fake_spec = spec };
    struct gpu_inventory *inv = NULL;
    struct rt_err err = { 0 };

    if (gpu_inventory_load(&cfg, &inv, &err) < 0)
        printf("# %s\n", err.msg);
    return inv;
}

static void test_exclusive(void)
{
    struct gpu_inventory *inv = load("2xa10g:24G,1xa100:80G:mig=2x3g.40gb");
    struct gpu_alloc *a = NULL;
    struct rt_err err = { 0 };
    unsigned u[4] = { 99, 99, 99, 99 }, v[2] = { 99, 99 };
    char buf[128];

    if (!inv || gpu_alloc_new(inv, &a, &err) < 0) {
        ok(0, "setup");
        gpu_inventory_free(inv);
        return;
    }
    is_int(gpu_alloc_free_count(a, NULL), 4, "all four units free");
    is_str(gpu_alloc_describe_free(a, buf, sizeof(buf)), "a10g x2, a100-3g.40gb x2", "free list");
    is_int(gpu_alloc_reserve(a, "alice/sd", "a10g", 1, u, &err), 0, "one a10g for alice");
    is_int(u[0], 0, "the first a10g");
    is_str(gpu_alloc_holder(a, 0), "alice/sd", "alice holds unit 0");
    is_int(gpu_alloc_reserve(a, "bob/llm", "a10g", 2, v, &err), -EBUSY, "two a10g: only one free");
    is_str(err.msg, "2 'a10g' gpu(s) wanted, 1 of 2 free (free: a10g x1, a100-3g.40gb x2)",
           "refusal names what is free");
    is_int(v[0], 99, "nothing returned on refusal");
    ok(gpu_alloc_holder(a, 1) == NULL, "all or nothing: unit 1 still free");
    is_int(gpu_alloc_reserve(a, "bob/llm", "A10G", 1, v, &err), 0, "kind matches case-blind");
    is_int(v[0], 1, "bob gets the other a10g");
    is_int(gpu_alloc_reserve(a, "carol/x", "a10g", 1, v, &err), -EBUSY, "no a10g left");
    ok(strstr(err.msg, "0 of 2 free") != NULL, "says none free: %s", err.msg);
    is_int(gpu_alloc_reserve(a, "carol/x", "h100", 1, v, &err), -ENOENT, "kind absent");
    is_str(err.msg, "this node has no 'h100' gpu (free: a100-3g.40gb x2)", "absent kind message");
    is_int(gpu_alloc_reserve(a, "alice/sd", "a100-3g.40gb", 1, v, &err), -EEXIST,
           "a holder cannot reserve twice");
    is_int(gpu_alloc_reserve(a, "carol/x", "a100-3g.40gb", 2, u, &err), 0, "two MIG slices");
    is_int(u[0] * 10 + u[1], 23, "units 2 and 3");
    is_str(gpu_alloc_describe_free(a, buf, sizeof(buf)), "none", "nothing free");
    is_int(gpu_alloc_held(a, "carol/x", u, 4), 2, "carol holds two");
    is_int(gpu_alloc_reserve(a, "", "a10g", 1, u, &err), -EINVAL, "empty holder refused");
    is_int(gpu_alloc_reserve(a, "d/e", "a10g", 0, u, &err), -EINVAL, "zero count refused");

    /* Release on stop. */
    is_int(gpu_alloc_release(a, "alice/sd"), 1, "alice's unit released");
    is_int(gpu_alloc_release(a, "alice/sd"), 0, "releasing twice frees nothing");
    is_int(gpu_alloc_free_count(a, "a10g"), 1, "one a10g free again");
    is_int(gpu_alloc_reserve(a, "dave/y", "a10g", 1, u, &err), 0, "reused after release");
    is_int(u[0], 0, "the released unit");
    is_int(gpu_alloc_release(a, "carol/x"), 2, "both slices released");
    gpu_alloc_free(a);
    gpu_inventory_free(inv);
}

static void test_never_oversubscribed(void)
{
    struct gpu_inventory *inv = load("3xl4:24G");
    struct gpu_alloc *a = NULL;
    struct rt_err err = { 0 };
    unsigned granted = 0, u;
    char name[32];
    bool exclusive = true;

    if (!inv || gpu_alloc_new(inv, &a, &err) < 0) {
        ok(0, "setup");
        gpu_inventory_free(inv);
        return;
    }
    /* Many holders come and go; no unit ever has two. */
    for (unsigned i = 0; i < 300; i++) {
        (void) snprintf(name, sizeof(name), "s/%u", i % 7);
        if (i % 3 == 2) {
            gpu_alloc_release(a, name);
            continue;
        }
        if (gpu_alloc_reserve(a, name, "l4", 1, &u, &err) == 0) {
            granted++;
        }
        {
            unsigned total = 0;

            for (unsigned j = 0; j < 7; j++) {
                unsigned n;

                (void) snprintf(name, sizeof(name), "s/%u", j);
                n = gpu_alloc_held(a, name, NULL, 0);
                exclusive &= n <= 1;
                total += n;
            }
            /* Held plus free is always exactly the three units. */
            exclusive &= total + gpu_alloc_free_count(a, NULL) == 3;
        }
    }
    ok(granted > 20, "many grants (%u)", granted);
    ok(exclusive, "no holder ever had two units and the counts stayed sane");
    gpu_alloc_free(a);
    gpu_inventory_free(inv);
}

static void test_rebuild(void)
{
    struct gpu_inventory *inv = load("2xa10g:24G");
    struct gpu_alloc *a = NULL;
    struct rt_err err = { 0 };
    unsigned u;
    size_t missing = 99;

    if (!inv || gpu_alloc_new(inv, &a, &err) < 0) {
        ok(0, "setup");
        gpu_inventory_free(inv);
        return;
    }
    ok(gpu_alloc_reserve(a, "old/holder", "a10g", 1, &u, &err) == 0, "state before restart");
    {
        struct gpu_holding h[] = {
            { "alice/sd", inv->units[1].uuid },
            { "gone/one", "GPU-00000000-dead-beef-0000-000000000000" },
        };
        is_int(gpu_alloc_rebuild(a, h, 2, &missing, &err), 0, "rebuild");
        is_int(missing, 1, "a vanished gpu is counted, not fatal");
        ok(gpu_alloc_holder(a, 0) == NULL, "old state replaced");
        is_str(gpu_alloc_holder(a, 1), "alice/sd", "holder restored by uuid");
        is_int(gpu_alloc_reserve(a, "bob/x", "a10g", 2, NULL, &err), -EBUSY,
               "rebuilt holder counts against new reservations");
    }
    {
        struct gpu_holding h[] = {
            { "x/1", inv->units[0].uuid },
            { "x/2", inv->units[0].uuid },
        };
        is_int(gpu_alloc_rebuild(a, h, 2, &missing, &err), -EINVAL, "double claim refused");
        ok(strstr(err.msg, "claimed by both 'x/1' and 'x/2'") != NULL, "says who: %s", err.msg);
        is_str(gpu_alloc_holder(a, 1), "alice/sd", "old state kept on failure");
    }
    is_int(gpu_alloc_rebuild(a, NULL, 0, &missing, &err), 0, "rebuild from nothing");
    is_int(gpu_alloc_free_count(a, NULL), 2, "all free");
    gpu_alloc_free(a);
    gpu_inventory_free(inv);
}

int main(void)
{
    tap_start();
    test_exclusive();
    test_never_oversubscribed();
    test_rebuild();
    return tap_done();
}
