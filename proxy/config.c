/* spaceproxy's configuration: built-in defaults, then an optional YAML file, then the
 * command line (main.c).  One table drives parsing, defaults and validation. */
#include "proxy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cleanup.h"
#include "util.h"
#include "banned.h"

enum key_type { K_STR, K_DUR, K_SIZE, K_UINT };

struct conf_key {
    const char *name;
    enum key_type type;
    size_t off;
    uint64_t min, max;
};

#define OFF(f) offsetof(struct px_config, f)
static const struct conf_key keys[] = {
    { "listen", K_STR, OFF(listen), 0, 0 },
    { "admin_listen", K_STR, OFF(admin_listen), 0, 0 },
    { "domain", K_STR, OFF(domain), 0, 0 },
    { "runtimed", K_STR, OFF(runtimed), 0, 0 },
    { "token_file", K_STR, OFF(token_file), 0, 0 },
    { "access_log", K_STR, OFF(access_log), 0, 0 },
    { "trusted_proxy", K_STR, OFF(trusted_proxy), 0, 0 },
    { "workers", K_UINT, OFF(workers), 0, 256 },
    { "max_header_size", K_SIZE, OFF(max_header_size), 1024, 65535 },
    { "max_body_size", K_SIZE, OFF(max_body_size), 0, UINT64_MAX },
    { "max_connections", K_UINT, OFF(max_connections), 1, 10000000 },
    { "space_max_concurrency", K_UINT, OFF(space_max_concurrency), 0, 10000000 },
    { "wake_queue", K_UINT, OFF(wake_queue), 0, 100000 },
    { "header_timeout", K_DUR, OFF(header_timeout_ms), 100, 3600000 },
    { "keepalive_timeout", K_DUR, OFF(keepalive_timeout_ms), 100, 86400000 },
    { "idle_timeout", K_DUR, OFF(idle_timeout_ms), 100, 7 * 86400000u },
    { "connect_timeout", K_DUR, OFF(connect_timeout_ms), 100, 600000 },
    { "upstream_keepalive", K_DUR, OFF(upstream_keepalive_ms), 100, 3600000 },
    { "wake_timeout", K_DUR, OFF(wake_timeout_ms), 100, 3600000 },
    { "drain_timeout", K_DUR, OFF(drain_timeout_ms), 0, 3600000 },
    { "poll_interval", K_DUR, OFF(poll_interval_ms), 50, 3600000 },
    { "activity_interval", K_DUR, OFF(activity_interval_ms), 100, 3600000 },
    { "token_cache", K_DUR, OFF(token_cache_ms), 100, 3600000 },
};

void px_config_defaults(struct px_config *cfg)
{
    *cfg = (struct px_config){
        .workers = 0,
        .max_header_size = 16384,
        .max_body_size = 0,
        .max_connections = 100000,
        .space_max_concurrency = 0,
        .wake_queue = 256,
        .header_timeout_ms = 30000,
        .keepalive_timeout_ms = 75000,
        .idle_timeout_ms = 6 * 3600 * 1000,
        .connect_timeout_ms = 5000,
        .upstream_keepalive_ms = 4000,
        .wake_timeout_ms = 90000,
        .drain_timeout_ms = 10000,
        .poll_interval_ms = 1000,
        .activity_interval_ms = 10000,
        .token_cache_ms = 60000,
    };
    cfg->listen = strdup("127.0.0.1:8000");
    cfg->domain = strdup("localhost");
    cfg->token_file = strdup("/var/lib/spaceport/proxy.token");
    cfg->access_log = strdup("stderr");
}

void px_config_done(struct px_config *cfg)
{
    free(cfg->listen);
    free(cfg->admin_listen);
    free(cfg->domain);
    free(cfg->runtimed);
    free(cfg->token_file);
    free(cfg->access_log);
    free(cfg->trusted_proxy);
    for (size_t i = 0; i < cfg->nroutes; i++) {
        free(cfg->routes[i].host);
        free(cfg->routes[i].upstream);
        free(cfg->routes[i].custom_headers);
    }
    free(cfg->routes);
    *cfg = (struct px_config){ 0 };
}

int px_parse_addr(const char *s, struct sockaddr_storage *ret_addr, socklen_t *ret_len)
{
    char host[64];
    const char *colon, *port_s;
    uint64_t port;
    struct sockaddr_storage ss = { 0 };

    if (!s || !*s)
        return -EINVAL;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (size_t) (close - s - 1) >= sizeof(host))
            return -EINVAL;
        memcpy(host, s + 1, (size_t) (close - s - 1));
        host[close - s - 1] = '\0';
        port_s = close + 2;
    } else if ((colon = strrchr(s, ':'))) {
        if ((size_t) (colon - s) >= sizeof(host))
            return -EINVAL;
        memcpy(host, s, (size_t) (colon - s));
        host[colon - s] = '\0';
        port_s = colon + 1;
    } else {
        snprintf(host, sizeof(host), "127.0.0.1");
        port_s = s;
    }
    if (rt_parse_u64(port_s, &port) < 0 || port == 0 || port > 65535)
        return -EINVAL;
    if (host[0] == '\0' || strcmp(host, "*") == 0)
        snprintf(host, sizeof(host), "0.0.0.0");
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    struct sockaddr_in *in4 = (struct sockaddr_in *) &ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t) port);
        *ret_len = sizeof(*in4);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t) port);
        *ret_len = sizeof(*in6);
    } else {
        return -EINVAL;
    }
    *ret_addr = ss;
    return 0;
}

int px_parse_duration_ms(const char *s, unsigned *ret_ms)
{
    char *end;
    double v;
    double mult = 1000;

    if (!s || !isdigit((unsigned char) s[0]))
        return -EINVAL;
    errno = 0;
    v = strtod(s, &end);
    if (errno)
        return -EINVAL;
    if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        mult = 1000;
    else if (strcmp(end, "m") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else
        return -EINVAL;
    v *= mult;
    if (v < 0 || v > 4e9)
        return -EINVAL;
    *ret_ms = (unsigned) v;
    return 0;
}

static int set_key(struct px_config *cfg, const struct conf_key *k, const char *val,
                   struct rt_err *err)
{
    char *p = (char *) cfg + k->off;
    uint64_t v = 0;
    unsigned ms;

    switch (k->type) {
    case K_STR: {
        char *dup = strdup(val);
        if (!dup)
            return rt_err_set(err, ENOMEM, "copy '%s'", k->name);
        free(*(char **) p);
        *(char **) p = dup;
        return 0;
    }
    case K_DUR:
        if (px_parse_duration_ms(val, &ms) < 0)
            return rt_err_set(err, EINVAL, "%s: expected a duration such as 30s or 500ms, got '%s'",
                              k->name, val);
        v = ms;
        break;
    case K_SIZE:
        if (rt_parse_size(val, &v) < 0)
            return rt_err_set(err, EINVAL, "%s: expected a size such as 16k, got '%s'", k->name,
                              val);
        break;
    case K_UINT:
        if (rt_parse_u64(val, &v) < 0)
            return rt_err_set(err, EINVAL, "%s: expected an integer, got '%s'", k->name, val);
        break;
    }
    if (v < k->min || v > k->max)
        return rt_err_set(err, ERANGE, "%s: %llu is out of range %llu..%llu", k->name,
                          (unsigned long long) v, (unsigned long long) k->min,
                          (unsigned long long) k->max);
    if (k->type == K_SIZE)
        *(uint64_t *) p = v;
    else
        *(unsigned *) p = (unsigned) v;
    return 0;
}

/* Sets one option by name (used for both the file and the command line). */
static int px_config_set(struct px_config *cfg, const char *name, const char *val,
                         struct rt_err *err)
{
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
        if (strcmp(keys[i].name, name) == 0)
            return set_key(cfg, &keys[i], val, err);
    return rt_err_set(err, EINVAL, "unknown key '%s'", name);
}

static const char *scalar(yaml_document_t *doc, yaml_node_t *n)
{
    (void) doc;
    if (!n || n->type != YAML_SCALAR_NODE)
        return NULL;
    return (const char *) n->data.scalar.value;
}

/* Checks and lowercases a host name in place: letters, digits, '-' and '.'. */
static int normalise_host(char *h)
{
    if (!*h || strlen(h) > 253)
        return -EINVAL;
    for (char *p = h; *p; p++) {
        *p = (char) tolower((unsigned char) *p);
        if (!isalnum((unsigned char) *p) && *p != '-' && *p != '.')
            return -EINVAL;
    }
    return 0;
}

static int parse_route(struct px_config *cfg, yaml_document_t *doc, yaml_node_t *n,
                       struct px_route_conf *r, struct rt_err *err)
{
    struct sockaddr_storage ss;
    socklen_t len;

    if (n->type != YAML_MAPPING_NODE)
        return rt_err_set(err, EINVAL, "line %zu: a route is a mapping", n->start_mark.line + 1);
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(doc, p->value);
        const char *k = scalar(doc, kn), *v = scalar(doc, vn);

        if (!k)
            return rt_err_set(err, EINVAL, "line %zu: route keys are strings",
                              n->start_mark.line + 1);
        if (strcmp(k, "custom_headers") == 0) {
            if (!vn || vn->type != YAML_MAPPING_NODE)
                return rt_err_set(err, EINVAL, "line %zu: custom_headers is a mapping",
                                  kn->start_mark.line + 1);
            for (yaml_node_pair_t *q = vn->data.mapping.pairs.start; q < vn->data.mapping.pairs.top;
                 q++) {
                const char *hn = scalar(doc, yaml_document_get_node(doc, q->key));
                const char *hv = scalar(doc, yaml_document_get_node(doc, q->value));
                if (!hn || !hv || px_render_header(&r->custom_headers, hn, hv) < 0)
                    return rt_err_set(err, EINVAL, "line %zu: bad custom header",
                                      vn->start_mark.line + 1);
            }
            continue;
        }
        if (!v)
            return rt_err_set(err, EINVAL, "line %zu: '%s' must be a scalar",
                              kn->start_mark.line + 1, k);
        if (strcmp(k, "host") == 0) {
            free(r->host);
            r->host = strdup(v);
            if (!r->host)
                return rt_err_set(err, ENOMEM, "copy host");
            if (normalise_host(r->host) < 0)
                return rt_err_set(err, EINVAL, "line %zu: bad host '%s'", kn->start_mark.line + 1,
                                  v);
        } else if (strcmp(k, "upstream") == 0) {
            if (px_parse_addr(v, &ss, &len) < 0)
                return rt_err_set(err, EINVAL, "line %zu: upstream: expected IP:PORT, got '%s'",
                                  kn->start_mark.line + 1, v);
            free(r->upstream);
            r->upstream = strdup(v);
            if (!r->upstream)
                return rt_err_set(err, ENOMEM, "copy upstream");
        } else if (strcmp(k, "disable_embedding") == 0) {
            r->disable_embedding = strcmp(v, "true") == 0 || strcmp(v, "yes") == 0;
        } else {
            return rt_err_set(err, EINVAL, "line %zu: unknown route key '%s'",
                              kn->start_mark.line + 1, k);
        }
    }
    if (!r->host || !r->upstream)
        return rt_err_set(err, EINVAL, "line %zu: a route needs host and upstream",
                          n->start_mark.line + 1);
    (void) cfg;
    return 0;
}

static int load_doc(struct px_config *cfg, yaml_document_t *doc, struct rt_err *err)
{
    yaml_node_t *root = yaml_document_get_root_node(doc);

    if (!root)
        return 0; /* an empty file is a valid, empty config */
    if (root->type != YAML_MAPPING_NODE)
        return rt_err_set(err, EINVAL, "the top level must be a mapping");
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(doc, p->value);
        const char *k = scalar(doc, kn);
        int r;

        if (!k)
            return rt_err_set(err, EINVAL, "keys must be strings");
        if (strcmp(k, "routes") == 0) {
            if (vn->type != YAML_SEQUENCE_NODE)
                return rt_err_set(err, EINVAL, "line %zu: routes is a list",
                                  kn->start_mark.line + 1);
            size_t n = (size_t) (vn->data.sequence.items.top - vn->data.sequence.items.start);
            struct px_route_conf *rs = calloc(n ? n : 1, sizeof(*rs));
            if (!rs)
                return rt_err_set(err, ENOMEM, "allocate routes");
            for (size_t i = 0; i < cfg->nroutes; i++) {
                free(cfg->routes[i].host);
                free(cfg->routes[i].upstream);
                free(cfg->routes[i].custom_headers);
            }
            free(cfg->routes);
            cfg->routes = rs;
            cfg->nroutes = n;
            for (size_t i = 0; i < n; i++) {
                yaml_node_t *it = yaml_document_get_node(doc, vn->data.sequence.items.start[i]);
                r = parse_route(cfg, doc, it, &rs[i], err);
                if (r < 0)
                    return rt_err_wrap(err, "routes[%zu]", i);
            }
            continue;
        }
        const char *v = scalar(doc, vn);
        if (!v)
            return rt_err_set(err, EINVAL, "line %zu: '%s' must be a scalar",
                              kn->start_mark.line + 1, k);
        r = px_config_set(cfg, k, v, err);
        if (r < 0)
            return rt_err_wrap(err, "line %zu", kn->start_mark.line + 1);
    }
    return 0;
}

int px_config_load(struct px_config *cfg, const char *path, struct rt_err *err)
{
    FILE *f = fopen(path, "re");
    yaml_parser_t parser;
    yaml_document_t doc;
    int r;

    if (!f)
        return rt_err_set(err, errno, "open config '%s'", path);
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return rt_err_set(err, ENOMEM, "initialise YAML parser");
    }
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        r = rt_err_set(err, EINVAL, "%s:%zu: %s", path, parser.problem_mark.line + 1,
                       parser.problem ? parser.problem : "YAML error");
        yaml_parser_delete(&parser);
        fclose(f);
        return r;
    }
    r = load_doc(cfg, &doc, err);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    if (r < 0)
        return rt_err_wrap(err, "%s", path);
    return 0;
}

int px__config_set(struct px_config *cfg, const char *name, const char *val, struct rt_err *err)
{
    return px_config_set(cfg, name, val, err);
}
