/* runtimed's own settings: embedded defaults, then a YAML file (--config), then flags.
 * One table (config.c) drives parsing, defaults and validation. */
#ifndef SP_RUNTIMED_CONFIG_H
#define SP_RUNTIMED_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

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
    int64_t gpus;             /* GPUs on this node; -1: count /dev/nvidiaN */
    int64_t light_sleep_ms;   /* idle time before a Space's cgroup is frozen; -1 never */
    char templates_dir[512];  /* SDK templates; "": ../templates beside the binary */
    char shim[512];           /* spaceport-shim; "": beside the runtimed binary */
};

/* Fills @c with the embedded defaults. */
void rt_config_defaults(struct rt_config *c);

/* Reads the YAML mapping in @path over @c.  Unknown keys and bad values are errors
 * naming the file, line and key. */
int rt_config_load(struct rt_config *c, const char *path, struct rt_err *err);

/* Parses "ADDR:PORT" (or ":PORT", "PORT") into what civetweb wants ("127.0.0.1:8080").
 * Returns 0 or -EINVAL. */
int rt_config_check_listen(const char *listen, struct rt_err *err);

#endif
