/* runtimed's own settings: embedded defaults, then a YAML file (--config), then flags.
 * One table (config.c) drives parsing, defaults and validation. */
#ifndef SP_RUNTIMED_CONFIG_H
#define SP_RUNTIMED_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct rt_err;

struct rt_config {
    char listen[128]; /* "ADDR:PORT" */
    char data_dir[512];
    int log_level;      /* enum rt_log_level */
    int log_json;       /* 0 logfmt, 1 JSON lines */
    char domain[128];   /* Spaces live at OWNER-NAME.DOMAIN */
    int64_t proxy_port; /* the port spaceproxy serves Spaces on, for URLs we report */
    int64_t api_threads;
    uint64_t max_body;        /* bytes of a JSON request body */
    int64_t sse_keepalive_ms; /* how often an idle log stream sends a keep-alive */
    int64_t max_log_streams;  /* concurrent SSE log streams (each holds a worker) */
    int64_t gpus;             /* deprecated: must stay -1 (gpu_backend counts GPUs) */
    char gpu_backend[16];     /* auto, nvml, fake, none (runtimed/gpunode.h) */
    char gpu_fake[256];       /* fake: "2xa10g:24G" */
    char gpu_fake_dev_dir[512];
    int64_t zero_gpus;      /* units reserved for the ZeroGPU pool */
    char zero_gpu_kind[48]; /* "": the first unit's kind */
    /* builds (runtimed/builder.c) */
    int64_t build_timeout_s; /* one build, install steps included */
    char build_network[8];   /* "host" (package installs) or "none" */
    uint64_t build_memory;   /* bytes for one build sandbox */
    uint64_t max_file_size;  /* one file of a pushed commit */
    char pip_index_url[512]; /* "" : the host's pip settings (PIP_* env, /etc/pip.conf) */
    char pip_extra_index_url[1024];
    char pip_trusted_host[256];
    char pip_find_links[512];
    char pip_cert[512]; /* a CA bundle, bound read-only into builds */
    char pip_proxy[256];
    int64_t light_sleep_ms;     /* idle time before a Space's cgroup is frozen; -1 never */
    int64_t sleep_grace_ms;     /* deep sleep: the app outlives its route by this long */
    char templates_dir[512];    /* SDK templates; "": ../templates beside the binary */
    char shim[512];             /* spaceport-shim; "": beside the runtimed binary */
    char metrics_listen[128];   /* "ADDR:PORT" of the /metrics listener; "": none */
    char rootfs[512];           /* base image directory for sandboxes; "": the host's */
    char egress_resolvers[128]; /* DNS for Spaces with egress; "": the host's public ones */
    /* Not a key: the resolvers Spaces get, space-separated, picked at start from
     * egress_resolvers (runtimed/resolv.h); "" none. */
    char space_nameservers[64];
    /* garbage collection of build outputs (runtimed/gc.h) */
    int64_t gc_interval_s;     /* between two runs; 0 never (POST /api/admin/gc still runs) */
    int64_t gc_app_grace_s;    /* an unused app layer is kept this long after its build */
    int64_t gc_deps_keep_s;    /* an unused dependency layer is kept this long */
    uint64_t gc_pip_cache_max; /* bytes of one owner's pip cache */
};

/* Fills @c with the embedded defaults. */
void rt_config_defaults(struct rt_config *c);

/* Reads the YAML mapping in @path over @c.  Unknown keys and bad values are errors
 * naming the file, line and key. */
int rt_config_load(struct rt_config *c, const char *path, struct rt_err *err);

/* Parses "ADDR:PORT" (or ":PORT", "PORT") into what civetweb wants ("127.0.0.1:8080").
 * Returns 0 or -EINVAL. */
int rt_config_check_listen(const char *listen, struct rt_err *err);

/* Writes ops/runtimed.conf.example: every key of the parser's table with its doc and
 * default.  Returns 0, -EINVAL when a key has no doc, or -EIO. */
int rt_config_print_example(FILE *out);

#endif
