/* Unit tests for the pure part of runtimed/gc.c: which layer entries may go (in use,
 * wanted, grace, leftovers, .old-<key>-<ms> kept while <key> is mounted, non-directories)
 * and how many of a pip cache's oldest files a trim removes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "runtimed/gc.h"

#define NOW 1000000
#define HOUR 3600

static const char *verdict(enum rt_gc_kind kind, const char *name, bool is_dir, int64_t age,
                           const struct rt_gc_names *use, const struct rt_gc_names *want)
{
    struct rt_gc_policy p = { .now_s = NOW, .app_grace_s = HOUR, .deps_keep_s = 7 * 24 * HOUR };
    struct rt_gc_entry e = { .name = name, .is_dir = is_dir, .mtime_s = NOW - age };

    return rt_gc_verdict(kind, &e, use, want, &p);
}

static void test_names(void)
{
    struct rt_gc_names s = { 0 };

    ok(!rt_gc_names_has(&s, "a"), "an empty set has nothing");
    for (int i = 0; i < 40; i++) {
        char n[16];
        (void) snprintf(n, sizeof(n), "n%d", i);
        is_int(rt_gc_names_add(&s, n), 0, "add");
    }
    is_int(rt_gc_names_add(&s, "n3"), 0, "adding a name again");
    is_int(s.n, 40, "no duplicates");
    ok(rt_gc_names_has(&s, "n39") && !rt_gc_names_has(&s, "n40"), "lookups");
    rt_gc_names_done(&s);
    is_int(s.n, 0, "done empties the set");
}

static void test_verdicts(void)
{
    struct rt_gc_names use = { 0 }, want = { 0 }, none = { 0 };
    const char *sha = "0123456789abcdef0123456789abcdef01234567";

    (void) rt_gc_names_add(&use, "inuse");
    (void) rt_gc_names_add(&use, "k1");
    (void) rt_gc_names_add(&want, "wanted");

    is_str(verdict(RT_GC_APP, sha, true, 2 * HOUR, &none, &none), "unused",
           "an old unused app layer goes");
    ok(!verdict(RT_GC_APP, sha, true, HOUR - 1, &none, &none), "one inside the grace stays");
    ok(!verdict(RT_GC_APP, "inuse", true, 100 * HOUR, &use, &want), "a mounted one stays");
    ok(!verdict(RT_GC_APP, "wanted", true, 100 * HOUR, &use, &want),
       "a Space's current build stays");
    ok(!verdict(RT_GC_DEPS, "k2", true, 6 * 24 * HOUR, &use, &want),
       "a deps layer unused for less than gc_deps_keep_s stays");
    is_str(verdict(RT_GC_DEPS, "k2", true, 8 * 24 * HOUR, &use, &want), "unused",
           "one unused for longer goes");
    ok(!verdict(RT_GC_DEPS, "k1", true, 80 * 24 * HOUR, &use, &want),
       "a mounted deps layer stays however old");

    is_str(verdict(RT_GC_APP, "evil", false, 0, &use, &want), "not a layer",
           "a symlink goes at once");
    is_str(verdict(RT_GC_APP, "inuse", false, 0, &use, &want), "not a layer",
           "even under a name in use: a layer is a directory");

    ok(!verdict(RT_GC_APP, ".tmp-abc-XYZ", true, HOUR - 1, &none, &none),
       "a fresh .tmp- stays (a build may be writing it)");
    is_str(verdict(RT_GC_APP, ".tmp-abc-XYZ", true, HOUR, &none, &none), "leftover",
           "an hour-old .tmp- goes");
    ok(!verdict(RT_GC_DEPS, ".old-k1-1700000000000", true, 100 * HOUR, &use, &want),
       ".old-<key> stays while an instance mounts <key>");
    is_str(verdict(RT_GC_DEPS, ".old-k2-1700000000000", true, HOUR, &use, &want), "leftover",
           ".old-<key> goes once <key> is not mounted");
    ok(!verdict(RT_GC_DEPS, ".old-k2-1700000000000", true, 60, &use, &want), "a fresh .old- stays");
    ok(!verdict(RT_GC_DEPS, ".old-", true, 100 * HOUR, &use, &want), "a malformed .old- stays");
    ok(!verdict(RT_GC_DEPS, ".other", true, 100 * HOUR, &use, &want),
       "other dot folders are not ours");

    rt_gc_names_done(&use);
    rt_gc_names_done(&want);
}

static void test_trim(void)
{
    char a[] = "a", b[] = "b", c[] = "c", d[] = "d";
    struct rt_gc_file f[4] = {
        { .path = c, .bytes = 100, .mtime_s = 30 },
        { .path = a, .bytes = 100, .mtime_s = 10 },
        { .path = d, .bytes = 100, .mtime_s = 40 },
        { .path = b, .bytes = 100, .mtime_s = 20 },
    };

    is_int(rt_gc_trim_count(f, 4, 400), 0, "a cache at its cap keeps everything");
    is_int(rt_gc_trim_count(f, 4, 250), 2, "two files bring 400 bytes under 250");
    is_str(f[0].path, "a", "oldest first");
    is_str(f[1].path, "b", "then the next oldest");
    is_int(rt_gc_trim_count(f, 4, 0), 4, "a cap of 0 empties the cache");
    is_int(rt_gc_trim_count(NULL, 0, 0), 0, "an empty cache");
}

int main(void)
{
    tap_start();
    test_names();
    test_verdicts();
    test_trim();
    return tap_done();
}
