/* The trace simulator behind gpu-sim: replays a request trace through the real
 * lease scheduler (lease.h) on a virtual clock and measures what visitors saw.
 *
 * Trace: text, one request per line, '#' starts a comment, an optional header:
 *   arrival_s,space,visitor,class,declared_s,actual_s[,size]
 *   12.5,alice/sdxl,ip:203.0.113.7,anonymous,60,23.1
 *   13.0,bob/flux,user:bob,pro,120,80,xlarge
 * arrival_s: seconds from the trace start (any order); visitor: the billed
 * identity, empty for token-less calls (billed to the Space); class: anonymous
 * (or anon), user, pro; declared_s: the @spaces.GPU duration (0 = default);
 * actual_s: how long the call really runs (past the deadline it is revoked);
 * size: gpuSize, large (the default when the column is absent) or xlarge. */
#ifndef SP_GPU_SIM_H
#define SP_GPU_SIM_H

#include <stdio.h>

#include "lease.h"

struct gpu_sim_req {
    double arrival_s;
    char space[GPU_ID_MAX];
    char visitor[GPU_ID_MAX];
    enum gpu_class cls;
    uint32_t declared_s;
    double actual_s;
    enum gpu_size size;
};

struct gpu_trace {
    struct gpu_sim_req *reqs;
    size_t n;
};

/* Parses @f (named @name in messages).  -EINVAL names the line and field. */
int gpu_trace_parse(FILE *f, const char *name, struct gpu_trace *ret, struct rt_err *err);
void gpu_trace_done(struct gpu_trace *t);

struct gpu_sim_stats {
    unsigned requests, granted, quota, too_long, none_free, timed_out, expired;
    double wait_p50_s, wait_p99_s, wait_max_s, gpu_s;
};

struct gpu_sim_result {
    struct gpu_sim_stats cls[_GPU_CLASS_MAX];
    struct gpu_sim_stats all;
    double makespan_s;  /* first arrival to last lease end */
    double utilization; /* busy unit-seconds / (units x makespan); a slice is a unit */
    double jain;        /* Jain's index over visitors' mean service ratio run/(wait+run) */
    unsigned visitors;
};

/* Runs @t through a scheduler configured by @cfg over @n_gpus whole GPUs (serving
 * large and xlarge) and @n_slices MIG slices (large only).  An xlarge request on a
 * pool without a whole GPU counts as none_free (503). */
int gpu_sim_run(const struct gpu_trace *t, const struct gpu_sched_config *cfg, unsigned n_gpus,
                unsigned n_slices, struct gpu_sim_result *ret, struct rt_err *err);

#endif
