/* The inventory: picks a backend from the config and owns the unit list it fills. */
#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "internal.h"
#include "util.h"

#include "banned.h"

static const struct gpu__backend *const backends[] = { &gpu__backend_nvml, &gpu__backend_fake };

/* What the probe child sends back: this header, then n_units units.  Same binary
 * on both ends, so the structs travel as they are. */
struct probe_reply {
    int r;
    struct rt_err err;
    char driver[32];
    size_t n_gpus, n_units;
};

static int probe_isolated(const struct gpu__backend *b, const struct gpu_config *cfg,
                          struct gpu_inventory *inv, struct rt_err *err)
{
    _cleanup_close_ int rd = -1, wr = -1;
    struct probe_reply h = { 0 };
    int p[2], status = 0;
    ssize_t n;
    size_t bytes;
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) < 0)
        return rt_err_set(err, errno, "pipe for the gpu probe");
    rd = p[0];
    wr = p[1];
    pid = fork();
    if (pid < 0)
        return rt_err_set(err, errno, "fork the gpu probe");
    if (pid == 0) {
        rd = rt_close(rd);
        h.r = b->probe(cfg, inv, &h.err);
        memcpy(h.driver, inv->driver, sizeof(h.driver));
        h.n_gpus = inv->n_gpus;
        h.n_units = h.r < 0 ? 0 : inv->n_units;
        if (rt_write_all(wr, &h, sizeof(h)) < 0 ||
            (h.n_units && rt_write_all(wr, inv->units, h.n_units * sizeof(*inv->units)) < 0))
            _exit(1);
        _exit(0);
    }
    wr = rt_close(wr);
    n = rt_read_all(rd, &h, sizeof(h));
    if (n == (ssize_t) sizeof(h) && h.r == 0 && h.n_units) {
        bytes = h.n_units * sizeof(*inv->units);
        inv->units = h.n_units < 4096 ? malloc(bytes) : NULL;
        if (!inv->units || rt_read_all(rd, inv->units, bytes) != (ssize_t) bytes)
            n = -1;
    }
    /* A daemon reaping every child may have taken the status: ECHILD is fine, the
     * reply is what counts. */
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (n != (ssize_t) sizeof(h)) {
        if (WIFSIGNALED(status))
            return rt_err_set(err, EIO, "gpu probe killed by signal %d", WTERMSIG(status));
        return rt_err_set(err, EIO, "gpu probe ended without an answer");
    }
    if (h.r < 0) {
        *err = h.err;
        return h.r;
    }
    memcpy(inv->driver, h.driver, sizeof(inv->driver));
    inv->driver[sizeof(inv->driver) - 1] = '\0';
    inv->n_gpus = h.n_gpus;
    inv->n_units = h.n_units;
    return 0;
}

int gpu_inventory_load(const struct gpu_config *cfg, struct gpu_inventory **ret_inv,
                       struct rt_err *err)
{
    const char *name = cfg && cfg->backend ? cfg->backend : "nvml";
    struct gpu_inventory *inv;
    const struct gpu__backend *b = NULL;
    int r;

    for (size_t i = 0; i < ARRAY_SIZE(backends); i++)
        if (strcmp(backends[i]->name, name) == 0)
            b = backends[i];
    if (!b && strcmp(name, "none") != 0)
        return rt_err_set(err, EINVAL, "unknown gpu backend '%s' (nvml, fake or none)", name);

    inv = calloc(1, sizeof(*inv));
    if (!inv)
        return rt_err_set(err, ENOMEM, "allocate gpu inventory");
    (void) snprintf(inv->backend, sizeof(inv->backend), "%s", name);
    if (b) {
        r = b->isolate ? probe_isolated(b, cfg, inv, err) : b->probe(cfg, inv, err);
        if (r < 0) {
            gpu_inventory_free(inv);
            return rt_err_wrap(err, "gpu backend '%s'", name);
        }
    }
    *ret_inv = inv;
    return 0;
}

void gpu_inventory_free(struct gpu_inventory *inv)
{
    if (!inv)
        return;
    free(inv->units);
    free(inv);
}

struct gpu_unit *gpu__inventory_add(struct gpu_inventory *inv)
{
    struct gpu_unit *units, *u;

    units = reallocarray(inv->units, inv->n_units + 1, sizeof(*units));
    if (!units)
        return NULL;
    inv->units = units;
    u = &units[inv->n_units];
    memset(u, 0, sizeof(*u));
    u->index = (unsigned) inv->n_units;
    u->mig_gi = u->mig_ci = -1;
    inv->n_units++;
    return u;
}

int gpu__node_add(struct gpu_unit *u, const char *path, unsigned major, unsigned minor,
                  unsigned flags)
{
    struct gpu_node *n;

    if (u->n_nodes >= GPU_NODES_MAX)
        return -ENOSPC;
    n = &u->nodes[u->n_nodes];
    if ((size_t) snprintf(n->path, sizeof(n->path), "%s", path) >= sizeof(n->path))
        return -ENAMETOOLONG;
    n->major = major;
    n->minor = minor;
    n->flags = flags;
    u->n_nodes++;
    return 0;
}

const struct gpu_unit *gpu_inventory_find_uuid(const struct gpu_inventory *inv, const char *uuid)
{
    for (size_t i = 0; inv && uuid && i < inv->n_units; i++)
        if (strcmp(inv->units[i].uuid, uuid) == 0)
            return &inv->units[i];
    return NULL;
}

/* Appends to a bounded buffer, counting what would have been written. */
struct jbuf {
    char *buf;
    size_t len, pos;
};

static void jput(struct jbuf *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jput(struct jbuf *j, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(j->pos < j->len ? j->buf + j->pos : NULL, j->pos < j->len ? j->len - j->pos : 0,
                  fmt, ap);
    va_end(ap);
    if (n > 0)
        j->pos += (size_t) n;
}

/* Names come from the driver or a config: escape what JSON needs, drop controls. */
static void jstr(struct jbuf *j, const char *s)
{
    jput(j, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            jput(j, "\\%c", *s);
        else if ((unsigned char) *s >= 0x20)
            jput(j, "%c", *s);
    }
    jput(j, "\"");
}

size_t gpu_inventory_json(const struct gpu_inventory *inv, char *buf, size_t len)
{
    struct jbuf j = { buf, len, 0 };

    if (len)
        buf[0] = '\0';
    jput(&j, "{\"backend\":");
    jstr(&j, inv->backend);
    jput(&j, ",\"driver\":");
    jstr(&j, inv->driver);
    jput(&j, ",\"gpus\":%zu,\"units\":[", inv->n_gpus);
    for (size_t i = 0; i < inv->n_units; i++) {
        const struct gpu_unit *u = &inv->units[i];

        jput(&j, "%s{\"index\":%u,\"gpu\":%u,\"uuid\":", i ? "," : "", u->index, u->gpu_index);
        jstr(&j, u->uuid);
        jput(&j, ",\"name\":");
        jstr(&j, u->name);
        jput(&j, ",\"kind\":");
        jstr(&j, u->kind);
        jput(&j, ",\"memory\":%" PRIu64 ",\"mig\":", u->memory);
        if (u->mig_gi >= 0)
            jput(&j, "{\"gi\":%d,\"ci\":%d}", u->mig_gi, u->mig_ci);
        else
            jput(&j, "null");
        jput(&j, ",\"nodes\":[");
        for (size_t k = 0; k < u->n_nodes; k++) {
            jput(&j, "%s{\"path\":", k ? "," : "");
            jstr(&j, u->nodes[k].path);
            jput(&j, ",\"major\":%u,\"minor\":%u,\"shared\":%s,\"optional\":%s}", u->nodes[k].major,
                 u->nodes[k].minor, u->nodes[k].flags & GPU_NODE_SHARED ? "true" : "false",
                 u->nodes[k].flags & GPU_NODE_OPTIONAL ? "true" : "false");
        }
        jput(&j, "]}");
    }
    jput(&j, "]}");
    return j.pos;
}

void gpu_kind_from_name(const char *name, char *buf, size_t len)
{
    static const char *const prefixes[] = { "nvidia ", "tesla ", "geforce ", "quadro " };
    char low[GPU_NAME_MAX];
    const char *p = low;
    size_t o = 0;
    bool done = false;

    if (!len)
        return;
    (void) snprintf(low, sizeof(low), "%s", name ? name : "");
    for (char *c = low; *c; c++)
        *c = (char) tolower((unsigned char) *c);
    for (bool again = true; again;) {
        again = false;
        for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++)
            if (strncmp(p, prefixes[i], strlen(prefixes[i])) == 0) {
                p += strlen(prefixes[i]);
                again = true;
            }
    }
    /* Words up to and including the first one with a digit: the model, not the
     * form factor or memory size ("a100-sxm4-80gb" -> "a100", "rtx pro 6000" ->
     * "rtx-pro-6000"). */
    while (*p && !done && o + 1 < len) {
        size_t w = strcspn(p, " -_/");

        if (w) {
            bool digit = false;

            if (o && o + 1 < len)
                buf[o++] = '-';
            for (size_t i = 0; i < w && o + 1 < len; i++) {
                digit |= isdigit((unsigned char) p[i]) != 0;
                if (isalnum((unsigned char) p[i]) || p[i] == '.')
                    buf[o++] = p[i];
            }
            done = digit;
        }
        p += w;
        p += strspn(p, " -_/");
    }
    buf[o] = '\0';
}
