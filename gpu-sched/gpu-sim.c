/* gpu-sim: replays a ZeroGPU request trace through the real scheduler, for our
 * policy and plain FIFO side by side; also prints the node's GPU inventory and
 * measures the scheduler's grant latency.  Usage in usage() and README.md. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "gpu.h"
#include "sim.h"
#include "util.h"
#include "version.h"

#include "banned.h"

static void usage(FILE *f)
{
    fputs("usage: gpu-sim [OPTIONS] TRACE            replay a trace (README.md: format)\n"
          "       gpu-sim --inventory [--backend nvml|fake|none] [--fake SPEC] [--dev-dir DIR]\n"
          "       gpu-sim --bench-grant N             scheduler latency, N requests\n"
          "  --gpus N              whole GPUs in the ZeroGPU pool: large or xlarge (default 4)\n"
          "  --slices N            MIG slices in the pool besides them: large only (default 0)\n"
          "  --policy P            priority, fifo or both (default both)\n"
          "  --max-duration S      tier maximum per call (default 300)\n"
          "  --concurrency N       leases per Space at once, 0 = no cap (default 2)\n"
          "  --queue-timeout S     drop requests waiting longer, 0 = never (default 0)\n"
          "  --quota C=S[,C=S]     daily seconds per class (default "
          "anonymous=120,user=300,pro=2400)\n"
          "  --json                one JSON object instead of a table\n"
          "  --help, --version\n",
          f);
}

struct opts {
    unsigned gpus, slices;
    const char *policy;
    bool json;
    struct gpu_sched_config cfg;
};

static int parse_u32(const char *opt, const char *s, uint32_t *ret)
{
    uint64_t v;

    if (rt_parse_u64(s, &v) < 0 || v > UINT32_MAX) {
        fprintf(stderr, "gpu-sim: %s: expected a number, got '%s'\n", opt, s);
        return -1;
    }
    *ret = (uint32_t) v;
    return 0;
}

static int parse_quota(const char *s, struct gpu_sched_config *cfg)
{
    _cleanup_free_ char *copy = strdup(s);
    char *save = NULL;

    if (!copy)
        return -1;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        int c;

        if (eq)
            *eq = '\0';
        c = eq ? gpu_class_from_name(tok) : -1;
        if (c < 0 || parse_u32("--quota", eq + 1, &cfg->quota_s[c]) < 0) {
            fprintf(stderr, "gpu-sim: --quota: expected CLASS=SECONDS, got '%s'\n", tok);
            return -1;
        }
    }
    return 0;
}

static void print_table(const char *policy, const struct gpu_sim_result *r)
{
    for (int c = 0; c <= _GPU_CLASS_MAX; c++) {
        const struct gpu_sim_stats *st = c < _GPU_CLASS_MAX ? &r->cls[c] : &r->all;

        printf("%-9s %-10s %6u %7u %5u %5u %7u %9.1f %9.1f %9.1f %9.0f\n", policy,
               c < _GPU_CLASS_MAX ? gpu_class_name((enum gpu_class) c) : "all", st->requests,
               st->granted, st->quota + st->too_long, st->none_free + st->timed_out, st->expired,
               st->wait_p50_s, st->wait_p99_s, st->wait_max_s, st->gpu_s);
    }
    printf("%-9s utilization %.3f  jain %.3f  visitors %u  makespan %.0f s  starvation (max "
           "wait) %.1f s\n",
           policy, r->utilization, r->jain, r->visitors, r->makespan_s, r->all.wait_max_s);
}

static void print_stats_json(const struct gpu_sim_stats *st)
{
    printf("{\"requests\":%u,\"granted\":%u,\"quota\":%u,\"too_long\":%u,\"none_free\":%u,"
           "\"timed_out\":%u,\"expired\":%u,\"wait_p50_s\":%.3f,\"wait_p99_s\":%.3f,"
           "\"wait_max_s\":%.3f,\"gpu_s\":%.3f}",
           st->requests, st->granted, st->quota, st->too_long, st->none_free, st->timed_out,
           st->expired, st->wait_p50_s, st->wait_p99_s, st->wait_max_s, st->gpu_s);
}

static void print_json(const char *policy, const struct gpu_sim_result *r, bool first)
{
    printf("%s\"%s\":{\"utilization\":%.4f,\"jain\":%.4f,\"visitors\":%u,\"makespan_s\":%.3f,"
           "\"max_wait_s\":%.3f,\"classes\":{",
           first ? "" : ",", policy, r->utilization, r->jain, r->visitors, r->makespan_s,
           r->all.wait_max_s);
    for (int c = 0; c < _GPU_CLASS_MAX; c++) {
        printf("%s\"%s\":", c ? "," : "", gpu_class_name((enum gpu_class) c));
        print_stats_json(&r->cls[c]);
    }
    printf("},\"all\":");
    print_stats_json(&r->all);
    printf("}");
}

static int run_trace(const char *path, const struct opts *o)
{
    static const struct {
        const char *name;
        enum gpu_policy policy;
    } policies[] = { { "priority", GPU_POLICY_PRIORITY }, { "fifo", GPU_POLICY_FIFO } };
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    struct gpu_trace t = { 0 };
    struct rt_err err = { 0 };
    char buf[600], slices[48] = "";
    bool first = true;

    if (o->slices)
        (void) snprintf(slices, sizeof(slices), " + %u MIG slices", o->slices);
    if (!f) {
        fprintf(stderr, "gpu-sim: open '%s': %s\n", path, strerror(errno));
        return 1;
    }
    if (gpu_trace_parse(f, path, &t, &err) < 0) {
        fprintf(stderr, "gpu-sim: %s\n", rt_err_str(&err, buf, sizeof(buf)));
        return 1;
    }
    if (o->json)
        printf("{\"requests\":%zu,\"gpus\":%u,\"slices\":%u,\"policies\":{", t.n, o->gpus,
               o->slices);
    else
        printf("gpu-sim: %zu requests on %u gpus%s; waits in seconds; refused = 429 quota or "
               "too long, dropped = 503 or queue timeout\n"
               "%-9s %-10s %6s %7s %5s %5s %7s %9s %9s %9s %9s\n",
               t.n, o->gpus, slices, "policy", "class", "reqs", "granted", "429", "503", "expired",
               "p50_wait", "p99_wait", "max_wait", "gpu_s");
    for (size_t i = 0; i < ARRAY_SIZE(policies); i++) {
        struct gpu_sched_config cfg = o->cfg;
        struct gpu_sim_result r;

        if (strcmp(o->policy, "both") != 0 && strcmp(o->policy, policies[i].name) != 0)
            continue;
        cfg.policy = policies[i].policy;
        if (gpu_sim_run(&t, &cfg, o->gpus, o->slices, &r, &err) < 0) {
            fprintf(stderr, "gpu-sim: %s\n", rt_err_str(&err, buf, sizeof(buf)));
            gpu_trace_done(&t);
            return 1;
        }
        if (o->json)
            print_json(policies[i].name, &r, first);
        else
            print_table(policies[i].name, &r);
        first = false;
    }
    if (o->json)
        printf("}}\n");
    gpu_trace_done(&t);
    return 0;
}

static int inventory(const struct gpu_config *cfg)
{
    struct gpu_inventory *inv = NULL;
    struct rt_err err = { 0 };
    char buf[600];
    size_t len;
    _cleanup_free_ char *json = NULL;

    if (gpu_inventory_load(cfg, &inv, &err) < 0) {
        fprintf(stderr, "gpu-sim: %s\n", rt_err_str(&err, buf, sizeof(buf)));
        return err.code == ENODEV ? 3 : 1;
    }
    len = gpu_inventory_json(inv, NULL, 0) + 1;
    json = malloc(len);
    if (!json) {
        gpu_inventory_free(inv);
        fprintf(stderr, "gpu-sim: out of memory\n");
        return 1;
    }
    (void) gpu_inventory_json(inv, json, len);
    printf("%s\n", json);
    gpu_inventory_free(inv);
    return 0;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

    return (x > y) - (x < y);
}

static void report(const char *what, uint64_t *ns, size_t n, bool json, bool last)
{
    qsort(ns, n, sizeof(*ns), u64_cmp);
    if (json)
        printf("\"%s\":{\"n\":%zu,\"p50_us\":%.3f,\"p99_us\":%.3f,\"max_us\":%.3f}%s", what, n,
               ns[n / 2] / 1e3, ns[(n * 99) / 100] / 1e3, ns[n - 1] / 1e3, last ? "" : ",");
    else
        printf("%-34s n=%zu  p50 %.2f us  p99 %.2f us  max %.2f us\n", what, n, ns[n / 2] / 1e3,
               ns[(n * 99) / 100] / 1e3, ns[n - 1] / 1e3);
}

/* Grant latency inside the scheduler: a request that finds a free unit (the
 * common case), and a release that hands a unit to the head of a deep queue. */
static int bench_grant(unsigned n, bool json)
{
    struct gpu_sched_config cfg;
    struct gpu_slot slots[8] = { 0 };
    struct gpu_sched *s = NULL;
    struct rt_err err = { 0 };
    _cleanup_free_ uint64_t *grant = calloc(n, sizeof(*grant));
    _cleanup_free_ uint64_t *handoff = calloc(n, sizeof(*handoff));
    uint64_t now = 0;
    char buf[600];

    if (!grant || !handoff)
        return 1;
    gpu_sched_config_default(&cfg);
    for (int c = 0; c < _GPU_CLASS_MAX; c++)
        cfg.quota_s[c] = 0;
    cfg.space_concurrency = 0;
    cfg.queue_max = 100000;
    for (unsigned i = 0; i < ARRAY_SIZE(slots); i++)
        (void) snprintf(slots[i].uuid, sizeof(slots[i].uuid), "GPU-bench-%u", i);
    if (gpu_sched_new(&cfg, slots, ARRAY_SIZE(slots), NULL, &s, &err) < 0) {
        fprintf(stderr, "gpu-sim: %s\n", rt_err_str(&err, buf, sizeof(buf)));
        return 1;
    }
    for (unsigned i = 0; i < n; i++) {
        char who[32], space[32];
        struct gpu_lease_req req = { space, who,  (enum gpu_class)(i % 3), 60,
                                     i,     true, GPU_SIZE_LARGE };
        struct gpu_answer a;
        uint64_t t0;

        (void) snprintf(who, sizeof(who), "ip:10.0.%u.%u", (i / 256) % 256, i % 256);
        (void) snprintf(space, sizeof(space), "owner/space-%u", i % 50);
        t0 = rt_now_ns();
        if (gpu_sched_request(s, &req, now, &a, &err) < 0 || a.verdict != GPU_GRANTED)
            goto fail;
        grant[i] = rt_now_ns() - t0;
        now += 10;
        (void) gpu_sched_release(s, a.lease.id, false, now, NULL, NULL);
    }
    /* Fill the 8 units, then queue 1000 more; each release grants the head. */
    {
        uint64_t ids[8];
        unsigned q = n < 1000 ? n : 1000;

        for (unsigned i = 0; i < 8 + q; i++) {
            char who[32];
            struct gpu_lease_req req = { "owner/busy",  who, (enum gpu_class)(i % 3),
                                         10 + i % 100,  i,   true,
                                         GPU_SIZE_LARGE };
            struct gpu_answer a;

            (void) snprintf(who, sizeof(who), "ip:10.1.%u.%u", i / 256, i % 256);
            if (gpu_sched_request(s, &req, now, &a, &err) < 0)
                goto fail;
            if (i < 8)
                ids[i] = a.lease.id;
        }
        for (unsigned i = 0; i < q; i++) {
            struct gpu_lease_info all[8];
            uint64_t t0;

            now += 10;
            t0 = rt_now_ns();
            if (gpu_sched_release(s, ids[i % 8], false, now, NULL, NULL) < 0 ||
                gpu_sched_queue_len(s) != q - i - 1)
                goto fail;
            handoff[i] = rt_now_ns() - t0;
            /* The freed slot went to the queue's head; leases list in slot order. */
            (void) gpu_sched_list(s, all, 8);
            ids[i % 8] = all[i % 8].id;
        }
        if (json)
            printf("{");
        report("grant_free_gpu", grant, n, json, false);
        report("release_handoff_queue_1000", handoff, q, json, true);
        if (json)
            printf("}\n");
    }
    gpu_sched_free(s);
    return 0;
fail:
    fprintf(stderr, "gpu-sim: bench: %s\n", err.msg[0] ? err.msg : "request not granted");
    gpu_sched_free(s);
    return 1;
}

int main(int argc, char **argv)
{
    enum {
        OPT_GPUS = 256,
        OPT_SLICES,
        OPT_POLICY,
        OPT_MAXDUR,
        OPT_CONC,
        OPT_QTIMEOUT,
        OPT_QUOTA,
        OPT_JSON,
        OPT_INV,
        OPT_BACKEND,
        OPT_FAKE,
        OPT_DEVDIR,
        OPT_BENCH,
        OPT_HELP,
        OPT_VERSION
    };
    static const struct option long_opts[] = {
        { "gpus", required_argument, NULL, OPT_GPUS },
        { "slices", required_argument, NULL, OPT_SLICES },
        { "policy", required_argument, NULL, OPT_POLICY },
        { "max-duration", required_argument, NULL, OPT_MAXDUR },
        { "concurrency", required_argument, NULL, OPT_CONC },
        { "queue-timeout", required_argument, NULL, OPT_QTIMEOUT },
        { "quota", required_argument, NULL, OPT_QUOTA },
        { "json", no_argument, NULL, OPT_JSON },
        { "inventory", no_argument, NULL, OPT_INV },
        { "backend", required_argument, NULL, OPT_BACKEND },
        { "fake", required_argument, NULL, OPT_FAKE },
        { "dev-dir", required_argument, NULL, OPT_DEVDIR },
        { "bench-grant", required_argument, NULL, OPT_BENCH },
        { "help", no_argument, NULL, OPT_HELP },
        { "version", no_argument, NULL, OPT_VERSION },
        { 0 },
    };
    struct opts o = { .gpus = 4, .policy = "both" };
    struct gpu_config gcfg = { .backend = "nvml" };
    bool inv = false;
    uint32_t bench = 0, v;
    int c;

    gpu_sched_config_default(&o.cfg);
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        switch (c) {
        case OPT_GPUS:
            if (parse_u32("--gpus", optarg, &v) < 0 || v > 1024) {
                fprintf(stderr, "gpu-sim: --gpus: 0..1024\n");
                return 2;
            }
            o.gpus = v;
            break;
        case OPT_SLICES:
            if (parse_u32("--slices", optarg, &v) < 0 || v > 1024) {
                fprintf(stderr, "gpu-sim: --slices: 0..1024\n");
                return 2;
            }
            o.slices = v;
            break;
        case OPT_POLICY:
            if (strcmp(optarg, "priority") && strcmp(optarg, "fifo") && strcmp(optarg, "both")) {
                fprintf(stderr, "gpu-sim: --policy: priority, fifo or both\n");
                return 2;
            }
            o.policy = optarg;
            break;
        case OPT_MAXDUR:
            if (parse_u32("--max-duration", optarg, &o.cfg.max_duration_s) < 0)
                return 2;
            break;
        case OPT_CONC:
            if (parse_u32("--concurrency", optarg, &o.cfg.space_concurrency) < 0)
                return 2;
            break;
        case OPT_QTIMEOUT:
            if (parse_u32("--queue-timeout", optarg, &o.cfg.queue_timeout_s) < 0)
                return 2;
            break;
        case OPT_QUOTA:
            if (parse_quota(optarg, &o.cfg) < 0)
                return 2;
            break;
        case OPT_JSON:
            o.json = true;
            break;
        case OPT_INV:
            inv = true;
            break;
        case OPT_BACKEND:
            gcfg.backend = optarg;
            break;
        case OPT_FAKE:
            gcfg.fake_spec = optarg;
            gcfg.backend = "fake";
            break;
        case OPT_DEVDIR:
            gcfg.fake_dev_dir = optarg;
            break;
        case OPT_BENCH:
            if (parse_u32("--bench-grant", optarg, &bench) < 0 || bench == 0)
                return 2;
            break;
        case OPT_HELP:
            usage(stdout);
            return 0;
        case OPT_VERSION:
            printf("gpu-sim %s\n", SPACEPORT_VERSION);
            return 0;
        default:
            fprintf(stderr, "gpu-sim: unknown option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (inv)
        return inventory(&gcfg);
    if (bench)
        return bench_grant(bench, o.json);
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    if (!o.gpus && !o.slices) {
        fprintf(stderr, "gpu-sim: --gpus 0 needs --slices: the pool is empty\n");
        return 2;
    }
    o.cfg.queue_max = UINT32_MAX; /* the simulator measures waiting, not a full queue */
    return run_trace(argv[optind], &o);
}
