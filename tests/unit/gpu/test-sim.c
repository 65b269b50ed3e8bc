/* Unit tests for the trace simulator: trace parsing (and its errors), and exact
 * results of a small trace under both policies, worked out by hand. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "../tap.h"
#include "gpu-sched/sim.h"

static int parse(const char *text, struct gpu_trace *t, struct rt_err *err)
{
    FILE *f = fmemopen((void *) text, strlen(text), "r");
    int r;

    if (!f)
        return -errno;
    r = gpu_trace_parse(f, "trace", t, err);
    fclose(f);
    return r;
}

static void test_parse(void)
{
    struct gpu_trace t = { 0 };
    struct rt_err err = { 0 };
    static const struct {
        const char *text, *msg;
    } bad[] = {
        { "1,a/b,ip:1,anon,60\n",
          "trace:1: expected arrival_s,space,visitor,class,declared_s,actual_s[,size]" },
        { "# c\n1,a/b,ip:1,vip,60,1\n",
          "trace:2: bad value (class: anonymous, user or pro; size: large or xlarge)" },
        { "x,a/b,ip:1,user,60,1\n",
          "trace:1: bad value (class: anonymous, user or pro; size: large or xlarge)" },
        { "1,a/b,ip:1,user,60.5,1\n",
          "trace:1: bad value (class: anonymous, user or pro; size: large or xlarge)" },
        { "1,,ip:1,user,60,1\n",
          "trace:1: bad value (class: anonymous, user or pro; size: large or xlarge)" },
        { "-1,a/b,ip:1,user,60,1\n",
          "trace:1: bad value (class: anonymous, user or pro; size: large or xlarge)" },
        { "1,a/b,ip:1,user,60,1,huge\n",
          "trace:1: bad value (class: anonymous, user or pro; size: large or xlarge)" },
        { "1,a/b,ip:1,user,60,1,xlarge,extra\n",
          "trace:1: expected arrival_s,space,visitor,class,declared_s,actual_s[,size]" },
    };

    is_int(parse("# comment\narrival_s,space,visitor,class,declared_s,actual_s\n"
                 "5.5,b/b,,pro,0,3\n\n1.25, a/a ,ip:1,anonymous,60,10.5\r\n",
                 &t, &err),
           0, "parse a trace");
    is_int(t.n, 2, "two requests, comments and header skipped");
    if (t.n == 2) {
        ok(t.reqs[0].arrival_s == 1.25, "sorted by arrival");
        is_str(t.reqs[0].space, "a/a", "spaces trimmed");
        is_int(t.reqs[0].cls, GPU_CLASS_ANON, "class");
        ok(t.reqs[0].actual_s == 10.5, "actual with CRLF");
        is_str(t.reqs[1].visitor, "", "empty visitor: billed to the Space");
        is_int(t.reqs[1].declared_s, 0, "declared 0: default");
        is_int(t.reqs[1].size, GPU_SIZE_LARGE, "no size column: large");
    }
    gpu_trace_done(&t);
    is_int(parse("1,a/b,ip:1,user,60,1,xlarge\n2,a/b,ip:1,user,60,1, large \n", &t, &err), 0,
           "a 7th column: size");
    ok(t.n == 2 && t.reqs[0].size == GPU_SIZE_XLARGE && t.reqs[1].size == GPU_SIZE_LARGE,
       "sizes read");
    gpu_trace_done(&t);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        is_int(parse(bad[i].text, &t, &err), -EINVAL, "bad trace refused");
        is_str(err.msg, bad[i].msg, "error names the line");
    }
}

static void test_run(void)
{
    /* 1 GPU.  a runs 0-10; b (60 s declared) and c (10 s) wait.  Priority: c's key
     * 2+10+30 < b's 1+60+30, so c runs 10-15, b 15-35.  FIFO: b 10-30, c 30-35.
     * d declares 5 s, runs 9 s: revoked at its deadline. */
    const char *text = "0,a/a,user:1,user,60,10\n"
                       "1,b/b,user:2,user,60,20\n"
                       "2,c/c,user:3,user,10,5\n"
                       "100,d/d,user:4,pro,5,9\n"
                       "101,e/e,user:5,pro,400,1\n";
    struct gpu_trace t = { 0 };
    struct rt_err err = { 0 };
    struct gpu_sched_config cfg;
    struct gpu_sim_result r;

    if (parse(text, &t, &err) < 0) {
        ok(0, "parse: %s", err.msg);
        return;
    }
    gpu_sched_config_default(&cfg);
    is_int(gpu_sim_run(&t, &cfg, 1, 0, &r, &err), 0, "priority run");
    is_int(r.all.requests, 5, "five requests");
    is_int(r.all.granted, 4, "four granted");
    is_int(r.cls[GPU_CLASS_PRO].too_long, 1, "400 s > max 300: refused");
    is_int(r.all.expired, 1, "d overran its 5 s: revoked");
    ok(r.cls[GPU_CLASS_USER].wait_max_s == 14, "b waited 14 s (got %g)",
       r.cls[GPU_CLASS_USER].wait_max_s);
    ok(r.cls[GPU_CLASS_USER].wait_p50_s == 8, "median user wait 8 s: c (got %g)",
       r.cls[GPU_CLASS_USER].wait_p50_s);
    ok(r.all.gpu_s == 40, "GPU time 10+20+5+5 = 40 s (got %g)", r.all.gpu_s);
    ok(r.makespan_s == 105, "makespan 0..105 s (got %g)", r.makespan_s);
    ok(fabs(r.utilization - 40.0 / 105) < 1e-9, "utilization 40/105 (got %g)", r.utilization);
    ok(r.jain > 0 && r.jain <= 1, "Jain index in (0, 1] (got %g)", r.jain);
    is_int(r.visitors, 4, "four visitors were served");

    cfg.policy = GPU_POLICY_FIFO;
    is_int(gpu_sim_run(&t, &cfg, 1, 0, &r, &err), 0, "fifo run");
    ok(r.cls[GPU_CLASS_USER].wait_max_s == 28, "FIFO: c waited 28 s (got %g)",
       r.cls[GPU_CLASS_USER].wait_max_s);
    ok(r.cls[GPU_CLASS_USER].wait_p50_s == 9, "FIFO median 9 s: b (got %g)",
       r.cls[GPU_CLASS_USER].wait_p50_s);
    is_int(gpu_sim_run(&t, &cfg, 0, 0, &r, &err), 0, "no GPUs at all");
    is_int(r.all.none_free, 4, "everything 503 but the too-long one");
    gpu_trace_done(&t);
}

/* One whole GPU and one MIG slice.  a (large) takes the slice 0-10, x (xlarge) the
 * GPU 1-6; b (large, key 92) and y (xlarge, key 93) queue; at 6 the GPU goes to b
 * (a large may use it), y waits on the free slice, and gets the GPU at 10. */
static void test_run_sizes(void)
{
    const char *text = "0,a/a,user:1,user,60,10\n"
                       "1,x/x,user:2,user,30,5,xlarge\n"
                       "2,b/b,user:3,user,60,4,large\n"
                       "3,y/y,user:4,user,30,5,xlarge\n";
    struct gpu_trace t = { 0 };
    struct rt_err err = { 0 };
    struct gpu_sched_config cfg;
    struct gpu_sim_result r;

    if (parse(text, &t, &err) < 0) {
        ok(0, "parse: %s", err.msg);
        return;
    }
    gpu_sched_config_default(&cfg);
    is_int(gpu_sim_run(&t, &cfg, 1, 1, &r, &err), 0, "sized run");
    is_int(r.all.granted, 4, "all four granted");
    ok(r.all.wait_max_s == 7, "y waited 3..10 s for the GPU (got %g)", r.all.wait_max_s);
    ok(r.all.gpu_s == 24, "GPU time 10+5+4+5 (got %g)", r.all.gpu_s);
    ok(fabs(r.utilization - 24.0 / 30) < 1e-9, "utilization over 2 units x 15 s (got %g)",
       r.utilization);
    is_int(gpu_sim_run(&t, &cfg, 0, 2, &r, &err), 0, "slices only");
    is_int(r.all.none_free, 2, "both xlarge calls refused (503)");
    is_int(r.all.granted, 2, "both large calls run");
    gpu_trace_done(&t);
}

/* Untrusted text: mutated traces either parse or fail with -EINVAL, never crash
 * (ASan+UBSan watch this run too). */
static void test_parse_mutations(void)
{
    const char *seed = "12.5,alice/sdxl,ip:203.0.113.7,anonymous,60,23.1\n";
    unsigned rnd = 99, parsed = 0, refused = 0, other = 0;
    char buf[256];

    for (unsigned i = 0; i < 5000; i++) {
        struct gpu_trace t = { 0 };
        struct rt_err err = { 0 };
        size_t len = strlen(seed);
        int r;

        memcpy(buf, seed, len + 1);
        for (unsigned k = 0; k < 1 + i % 4; k++) {
            rnd = rnd * 1103515245 + 12345;
            buf[(rnd >> 8) % len] = (char) (rnd >> 20);
        }
        r = parse(buf, &t, &err);
        parsed += r == 0;
        refused += r == -EINVAL;
        other += r != 0 && r != -EINVAL;
        gpu_trace_done(&t);
    }
    ok(parsed > 0 && refused > 0, "mutations: %u parsed, %u refused", parsed, refused);
    is_int(other, 0, "nothing but success or -EINVAL");
}

int main(void)
{
    tap_start();
    test_parse();
    test_run();
    test_run_sizes();
    test_parse_mutations();
    return tap_done();
}
