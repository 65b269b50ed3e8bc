/* The HTTP API of runtimed on civetweb: the Hub's Space endpoints, the admin endpoints
 * (docs/API.md) and the spaceproxy contract (docs/ARCHITECTURE.md). */
#ifndef SP_RUNTIMED_API_H
#define SP_RUNTIMED_API_H

#include <stdatomic.h>
#include <stdbool.h>

#include "config.h"
#include "store.h"

struct mg_context;
struct rt_builder;
struct rt_lifecycle;
struct rt_gpuzero;
struct rt_gpunode;

struct rt_api {
    struct rt_store *st;
    const struct rt_config *cfg;
    int node_gpus;           /* units in the GPU inventory (metrics, the start log) */
    struct rt_gpunode *gpus; /* the node's GPUs (gpunode.h); NULL: none */
    struct mg_context *ctx;
    atomic_bool stopping;       /* set before mg_stop so long-lived streams end */
    atomic_int log_streams;     /* SSE streams open now */
    struct rt_builder *builder; /* the build queue (pushes queue builds); NULL: none */
    struct rt_lifecycle *lc;    /* the lifecycle supervisor; NULL: none */
    struct rt_gpuzero *zero;    /* the ZeroGPU device API (gpuzero.h); NULL: no pool */
};

/* Starts the listener and workers.  The store and config must outlive the API. */
int rt_api_start(struct rt_api *api, struct rt_err *err);
/* Ends open streams and stops the server; waits for running handlers. */
void rt_api_stop(struct rt_api *api);

#endif
