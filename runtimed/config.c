#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cleanup.h"
#include "error.h"
#include "log.h"
#include "util.h"
#include "banned.h"

enum conf_type { CONF_STR, CONF_INT, CONF_SIZE, CONF_LEVEL, CONF_FORMAT };

struct conf_key {
    const char *name;
    enum conf_type type;
    size_t offset;
    size_t size; /* CONF_STR: buffer size */
    int64_t min, max;
    /* Comment lines for ops/runtimed.conf.example ('\n' between lines); every key has
     * one, so the example (runtimed --print-config-example) documents every key. */
    const char *doc;
};

#define STR(k, f, doc)                                                                             \
    {                                                                                              \
        k, CONF_STR, offsetof(struct rt_config, f), sizeof(((struct rt_config *) 0)->f), 0, 0, doc \
    }
#define INT(k, f, lo, hi, doc)                                                                     \
    {                                                                                              \
        k, CONF_INT, offsetof(struct rt_config, f), 0, lo, hi, doc                                 \
    }

static const struct conf_key keys[] = {
    STR("listen", listen, "API and git address."),
    STR("data_dir", data_dir,
        "State, tokens (admin.token, proxy.token, mode 0600) and the SQLite database."),
    { "log_level", CONF_LEVEL, offsetof(struct rt_config, log_level), 0, 0, 0,
      "err, warn, info or debug." },
    { "log_format", CONF_FORMAT, offsetof(struct rt_config, log_json), 0, 0, 0,
      "text (logfmt) or json lines on stderr." },
    STR("domain", domain,
        "Spaces answer at OWNER-NAME.DOMAIN:PROXY_PORT (used in the URLs runtimed reports)."),
    INT("proxy_port", proxy_port, 1, 65535, "The port spaceproxy serves Spaces on."),
    INT("api_threads", api_threads, 2, 256,
        "HTTP worker threads: each request, and each open log stream, holds one; so does\n"
        "each held spaceproxy routes long-poll, at most api_threads / 4 and 4 at once (none\n"
        "under 4 threads: the proxy then polls)."),
    { "max_body", CONF_SIZE, offsetof(struct rt_config, max_body), 0, 1024, 1 << 30,
      "Largest JSON request body; bigger ones get 413." },
    INT("sse_keepalive_ms", sse_keepalive_ms, 50, 3600 * 1000,
        "How often an idle SSE log stream sends a keep-alive."),
    INT("max_log_streams", max_log_streams, 1, 1024, "Open SSE log streams at once (429 beyond)."),
    INT("gpus", gpus, -1, 1024,
        "Deprecated: the GPU inventory (gpu_backend) counts GPUs by kind now.  Any value\n"
        "but -1 is refused at start, so an old count cannot silently disagree with it."),
    STR("gpu_backend", gpu_backend,
        "Where GPUs come from: auto (NVML when the NVIDIA driver loads, else none), nvml,\n"
        "fake (gpu_fake, for tests) or none.  Tiers needing GPUs of a kind this node has\n"
        "no free unit of are refused (422), and a Space gets its own units exclusively."),
    STR("gpu_fake", gpu_fake,
        "gpu_backend fake: the GPUs, COUNTxKIND:MEMORY[:mig=NxPROFILE] comma-separated,\n"
        "e.g. 2xa10g:24G (gpu-sched/README.md)."),
    STR("gpu_fake_dev_dir", gpu_fake_dev_dir,
        "gpu_backend fake: the directory holding the fake device nodes (gpu-sim --inventory\n"
        "--dev-dir makes them; majors 120-122, which open nothing).  Empty: synthetic\n"
        "/dev/nvidiaN paths (Spaces on GPU tiers then cannot start)."),
    INT("zero_gpus", zero_gpus, 0, 64,
        "GPU units kept out of dedicated tiers as the ZeroGPU pool (holder @zerogpu)."),
    STR("zero_gpu_kind", zero_gpu_kind,
        "Kind of the ZeroGPU pool's units (e.g. a10g).  Empty: the kind of the first unit."),
    INT("light_sleep_ms", light_sleep_ms, -1, INT64_C(86400000) * 365,
        "Idle time (ms) before a running Space's cgroup is frozen (light sleep); -1 never."),
    INT("sleep_grace_ms", sleep_grace_ms, 0, 600000,
        "Deep sleep: how long (ms) a Space's app keeps running after its route is withdrawn,\n"
        "so a visit already on its way is answered; a wake in it resumes without a restart."),
    STR("templates_dir", templates_dir,
        "SDK templates (templates/*.yaml).  Empty: ../templates beside the runtimed binary\n"
        "(the source tree); make install sets PREFIX/share/spaceport/templates in\n"
        "/etc/spaceport/runtimed.conf."),
    STR("shim", shim, "The spaceport-shim binary.  Empty: the one beside the runtimed binary."),
    STR("metrics_listen", metrics_listen,
        "Admin listener for GET /metrics (Prometheus text format), no auth: keep it on\n"
        "loopback or a private interface.  Empty: no metrics listener."),
    STR("rootfs", rootfs,
        "Base image for builds and Spaces: a directory holding a Debian root (ops/mkbase.sh\n"
        "builds one).  Empty: the host's /usr, /bin, /lib*, /sbin and a minimal /etc."),
    STR("egress_resolvers", egress_resolvers,
        "DNS resolvers of Spaces with egress (the host forwards): at most 3 IPv4 addresses,\n"
        "space- or comma-separated, each public (a Space reaches public addresses only; a\n"
        "private one is refused at start).  Empty: the public nameservers of the host's\n"
        "/etc/resolv.conf (systemd-resolved's upstream list behind 127.0.0.53); when it has\n"
        "none, Spaces resolve no names and runtimed warns at start.  E.g. \"1.1.1.1 9.9.9.9\"."),
    INT("build_timeout_s", build_timeout_s, 1, 24 * 3600,
        "Longest a build may take (seconds), dependency installs included."),
    STR("build_network", build_network,
        "Network of build sandboxes: host (package installs work) or none."),
    { "build_memory", CONF_SIZE, offsetof(struct rt_config, build_memory), 0, 64 << 20, INT64_MAX,
      "Memory of one build sandbox." },
    { "max_file_size", CONF_SIZE, offsetof(struct rt_config, max_file_size), 0, 1, INT64_MAX,
      "Largest file a pushed commit may hold; a bigger one fails the build." },
    STR("pip_index_url", pip_index_url,
        "Package index for builds.  The pip_* keys left empty take the host's pip settings\n"
        "(PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST, PIP_FIND_LINKS, PIP_CERT,\n"
        "/etc/pip.conf)."),
    STR("pip_extra_index_url", pip_extra_index_url, "More package indexes, space-separated."),
    STR("pip_trusted_host", pip_trusted_host, "Index hosts pip trusts without TLS."),
    STR("pip_find_links", pip_find_links, "A folder or URL of wheels for builds."),
    STR("pip_cert", pip_cert, "A CA bundle for the index, bound read-only into each build."),
    STR("pip_proxy", pip_proxy, "An HTTP proxy for package installs."),
    INT("gc_interval_s", gc_interval_s, 0, 30 * 86400,
        "How often (seconds) unused build outputs are removed: layers no instance uses\n"
        "and no Space's current build names, build leftovers, pip caches over\n"
        "gc_pip_cache_max (docs/builds.md).  0: never on a timer (POST /api/admin/gc\n"
        "still runs it)."),
    INT("gc_app_grace_s", gc_app_grace_s, 0, 365 * 86400,
        "An unused app layer is kept this long (seconds) after the build that made or\n"
        "reused it."),
    INT("gc_deps_keep_s", gc_deps_keep_s, 0, 365 * 86400,
        "An unused dependency layer is kept this long (seconds) after its last build or\n"
        "start, so a Space coming back soon reuses it instead of reinstalling."),
    { "gc_pip_cache_max", CONF_SIZE, offsetof(struct rt_config, gc_pip_cache_max), 0, 0, INT64_MAX,
      "Largest pip cache of one owner; the oldest files go beyond it." },
};

void rt_config_defaults(struct rt_config *c)
{
    memset(c, 0, sizeof(*c));
    (void) snprintf(c->listen, sizeof(c->listen), "127.0.0.1:8080");
    (void) snprintf(c->data_dir, sizeof(c->data_dir), "/var/lib/spaceport");
    c->log_level = RT_LOG_INFO;
    c->log_json = 0;
    (void) snprintf(c->domain, sizeof(c->domain), "localhost");
    c->proxy_port = 8000;
    c->api_threads = 16;
    c->max_body = 1 << 20;
    c->sse_keepalive_ms = 15000;
    c->max_log_streams = 8;
    c->gpus = -1;
    (void) snprintf(c->gpu_backend, sizeof(c->gpu_backend), "auto");
    c->light_sleep_ms = 60000;
    c->sleep_grace_ms = 3000;
    (void) snprintf(c->metrics_listen, sizeof(c->metrics_listen), "127.0.0.1:9090");
    c->build_timeout_s = 1800;
    (void) snprintf(c->build_network, sizeof(c->build_network), "host");
    c->build_memory = 4ULL << 30;
    c->max_file_size = 1ULL << 30;
    c->gc_interval_s = 3600;
    c->gc_app_grace_s = 3600;
    c->gc_deps_keep_s = 7 * 86400;
    c->gc_pip_cache_max = 2ULL << 30;
}

int rt_config_check_listen(const char *listen, struct rt_err *err)
{
    const char *colon = strrchr(listen, ':');
    const char *port = colon ? colon + 1 : listen;
    uint64_t p;

    if (rt_parse_u64(port, &p) < 0 || p == 0 || p > 65535)
        return rt_err_set(err, EINVAL, "listen address '%s': expected ADDR:PORT", listen);
    if (strchr(listen, ',') || strchr(listen, ' '))
        return rt_err_set(err, EINVAL, "listen address '%s': one ADDR:PORT only", listen);
    return 0;
}

static int set_key(struct rt_config *c, const struct conf_key *k, const char *v, struct rt_err *err)
{
    char *field = (char *) c + k->offset;
    int64_t n;
    uint64_t u;
    char *end;

    switch (k->type) {
    case CONF_STR:
        if (strlen(v) >= k->size)
            return rt_err_set(err, EINVAL, "%s: longer than %zu characters", k->name, k->size - 1);
        memcpy(field, v, strlen(v) + 1);
        return 0;
    case CONF_INT:
        errno = 0;
        n = strtoll(v, &end, 10);
        if (errno || end == v || *end || n < k->min || n > k->max)
            return rt_err_set(err, EINVAL, "%s: expected an integer in %lld..%lld, got '%s'",
                              k->name, (long long) k->min, (long long) k->max, v);
        memcpy(field, &n, sizeof(n));
        return 0;
    case CONF_SIZE:
        if (rt_parse_size(v, &u) < 0 || u < (uint64_t) k->min || u > (uint64_t) k->max)
            return rt_err_set(err, EINVAL, "%s: expected a size such as '1M', got '%s'", k->name,
                              v);
        memcpy(field, &u, sizeof(u));
        return 0;
    case CONF_LEVEL: {
        int lvl = rt_log_level_from_name(v);
        if (lvl < 0)
            return rt_err_set(err, EINVAL, "%s: expected err, warn, info or debug, got '%s'",
                              k->name, v);
        memcpy(field, &lvl, sizeof(lvl));
        return 0;
    }
    case CONF_FORMAT: {
        int json;
        if (strcmp(v, "text") == 0)
            json = 0;
        else if (strcmp(v, "json") == 0)
            json = 1;
        else
            return rt_err_set(err, EINVAL, "%s: expected text or json, got '%s'", k->name, v);
        memcpy(field, &json, sizeof(json));
        return 0;
    }
    }
    return rt_err_set(err, EINVAL, "%s: unhandled type", k->name);
}

static const struct conf_key *find_key(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static void parser_deletep(yaml_parser_t **p)
{
    if (*p)
        yaml_parser_delete(*p);
}

/* Reads a flat mapping of scalars.  Work on a copy so a bad file leaves @c as it was. */
int rt_config_load(struct rt_config *c, const char *path, struct rt_err *err)
{
    _cleanup_fclose_ FILE *f = NULL;
    yaml_parser_t parser;
    _cleanup_(parser_deletep) yaml_parser_t *pp = NULL;
    struct rt_config copy = *c;
    char key[128] = "";
    bool have_key = false, in_map = false, done = false;
    int r = 0;

    if (!yaml_parser_initialize(&parser))
        return rt_err_set(err, ENOMEM, "initialise YAML parser");
    pp = &parser;
    f = fopen(path, "re");
    if (!f)
        return rt_err_set(err, errno, "open config '%s'", path);
    yaml_parser_set_input_file(&parser, f);

    while (!done) {
        yaml_event_t ev;
        unsigned long line;

        if (!yaml_parser_parse(&parser, &ev))
            return rt_err_set(err, EINVAL, "%s:%lu: %s", path,
                              (unsigned long) parser.problem_mark.line + 1,
                              parser.problem ? parser.problem : "YAML syntax error");
        line = (unsigned long) ev.start_mark.line + 1;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_MAPPING_START_EVENT:
            if (in_map)
                r = rt_err_set(err, EINVAL, "%s:%lu: %s: expected a plain value", path, line, key);
            in_map = true;
            break;
        case YAML_MAPPING_END_EVENT:
            in_map = false;
            break;
        case YAML_SCALAR_EVENT: {
            const char *v = (const char *) ev.data.scalar.value;
            if (!in_map) {
                /* An empty document is a scalar null: accept it, refuse anything else. */
                if (*v)
                    r = rt_err_set(err, EINVAL, "%s:%lu: expected a mapping of settings", path,
                                   line);
            } else if (!have_key) {
                (void) snprintf(key, sizeof(key), "%s", v);
                have_key = true;
            } else {
                const struct conf_key *k = find_key(key);
                have_key = false;
                if (!k)
                    r = rt_err_set(err, EINVAL, "%s:%lu: unknown setting '%s'", path, line, key);
                else if (set_key(&copy, k, v, err) < 0)
                    r = rt_err_wrap(err, "%s:%lu", path, line);
            }
            break;
        }
        default:
            r = rt_err_set(err, EINVAL, "%s:%lu: %s: expected a plain value", path, line,
                           have_key ? key : "value");
            break;
        }
        yaml_event_delete(&ev);
        if (r < 0)
            return r;
    }
    if (strcmp(copy.build_network, "host") != 0 && strcmp(copy.build_network, "none") != 0)
        return rt_err_set(err, EINVAL, "%s: build_network: expected host or none, got '%s'", path,
                          copy.build_network);
    if (copy.gpus != -1)
        return rt_err_set(err, EINVAL,
                          "%s: gpus: replaced by gpu_backend (the inventory counts GPUs by kind; "
                          "gpu_backend: fake with gpu_fake: 2xa10g:24G declares some)",
                          path);
    if (strcmp(copy.gpu_backend, "auto") != 0 && strcmp(copy.gpu_backend, "nvml") != 0 &&
        strcmp(copy.gpu_backend, "fake") != 0 && strcmp(copy.gpu_backend, "none") != 0)
        return rt_err_set(err, EINVAL,
                          "%s: gpu_backend: expected auto, nvml, fake or none, got '%s'", path,
                          copy.gpu_backend);
    if (strcmp(copy.gpu_backend, "fake") == 0 && !copy.gpu_fake[0])
        return rt_err_set(err, EINVAL, "%s: gpu_backend fake needs gpu_fake (e.g. 2xa10g:24G)",
                          path);
    if (copy.listen[0] && rt_config_check_listen(copy.listen, err) < 0)
        return rt_err_wrap(err, "%s", path);
    if (copy.metrics_listen[0] && rt_config_check_listen(copy.metrics_listen, err) < 0)
        return rt_err_wrap(err, "%s: metrics_listen", path);
    *c = copy;
    return 0;
}

/* Renders a key's current value as YAML would spell it in the config file. */
static void print_value(FILE *out, const struct rt_config *c, const struct conf_key *k)
{
    static const char *const levels[] = { "err", "warn", "info", "debug", NULL };
    const char *field = (const char *) c + k->offset;
    int64_t n;
    uint64_t u;
    int i;
    char buf[32];

    switch (k->type) {
    case CONF_STR:
        fprintf(out, "\"%s\"", field);
        return;
    case CONF_INT:
        memcpy(&n, field, sizeof(n));
        fprintf(out, "%lld", (long long) n);
        return;
    case CONF_SIZE:
        memcpy(&u, field, sizeof(u));
        fprintf(out, "%s", rt_format_size(u, buf, sizeof(buf)));
        return;
    case CONF_LEVEL:
        memcpy(&i, field, sizeof(i));
        for (const char *const *l = levels; *l; l++)
            if (rt_log_level_from_name(*l) == i)
                fprintf(out, "%s", *l);
        return;
    case CONF_FORMAT:
        memcpy(&i, field, sizeof(i));
        fprintf(out, "%s", i ? "json" : "text");
        return;
    }
}

int rt_config_print_example(FILE *out)
{
    struct rt_config c;

    rt_config_defaults(&c);
    fprintf(out,
            "# runtimed settings (YAML), written by `runtimed --print-config-example` from the\n"
            "# table its parser uses.  Every key is optional and shown with its default:\n"
            "# runtimed starts with none of them.  Flags (--data-dir, --listen) win over\n"
            "# this file.  Unknown keys are errors.\n");
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        const char *d = keys[i].doc;

        if (!d || !*d)
            return -EINVAL; /* a key without a doc: the test of the example says which */
        fputc('\n', out);
        while (*d) {
            size_t len = strcspn(d, "\n");
            fprintf(out, "# %.*s\n", (int) len, d);
            d += len + (d[len] == '\n');
        }
        fprintf(out, "%s: ", keys[i].name);
        print_value(out, &c, &keys[i]);
        fputc('\n', out);
    }
    return ferror(out) ? -EIO : 0;
}
