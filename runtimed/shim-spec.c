#include "shim-spec.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "banned.h"

static int get_str_array(json_t *arr, const char *name, const char **out, size_t max, size_t *ret_n,
                         struct rt_err *err)
{
    size_t i;
    json_t *v;

    if (!json_is_array(arr))
        return rt_err_set(err, EINVAL, "spec: '%s' must be an array of strings", name);
    if (json_array_size(arr) > max)
        return rt_err_set(err, E2BIG, "spec: '%s' has more than %zu items", name, max);
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v))
            return rt_err_set(err, EINVAL, "spec: '%s'[%zu] must be a string", name, i);
        out[i] = json_string_value(v);
    }
    *ret_n = json_array_size(arr);
    return 0;
}

static int get_u64(json_t *v, const char *name, uint64_t *out, struct rt_err *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return rt_err_set(err, EINVAL, "spec: '%s' must be a non-negative integer", name);
    *out = (uint64_t) json_integer_value(v);
    return 0;
}

static int add_mount(struct rt_shim_spec *s, json_t *m, size_t i, struct rt_err *err)
{
    const char *kind = json_string_value(json_object_get(m, "kind"));
    const char *src = json_string_value(json_object_get(m, "src"));
    const char *dst = json_string_value(json_object_get(m, "dst"));
    enum sbx_mount_kind k;
    char *arg;

    if (!kind || !dst)
        return rt_err_set(err, EINVAL, "spec: mounts[%zu] needs 'kind' and 'dst'", i);
    if (strcmp(kind, "tmpfs") == 0) {
        struct sbx_mount *t;
        if (s->sbx.n_mounts >= SBX_MAX_MOUNTS)
            return rt_err_set(err, E2BIG, "spec: too many mounts");
        t = &s->sbx.mounts[s->sbx.n_mounts++];
        t->kind = SBX_MOUNT_TMPFS;
        t->src = NULL;
        t->dst = dst;
        t->size = 0;
        return json_object_get(m, "size")
                   ? get_u64(json_object_get(m, "size"), "size", &t->size, err)
                   : 0;
    }
    if (strcmp(kind, "bind") == 0)
        k = SBX_MOUNT_BIND;
    else if (strcmp(kind, "ro-bind") == 0)
        k = SBX_MOUNT_RO_BIND;
    else
        return rt_err_set(err, EINVAL, "spec: mounts[%zu]: unknown kind '%s'", i, kind);
    if (!src)
        return rt_err_set(err, EINVAL, "spec: mounts[%zu] needs 'src'", i);
    if (s->n_strs >= SBX_MAX_MOUNTS || asprintf(&arg, "%s:%s", src, dst) < 0)
        return rt_err_set(err, ENOMEM, "spec: mounts[%zu]", i);
    s->strs[s->n_strs++] = arg;
    return sbx_spec_add_mount(&s->sbx, k, arg, err);
}

int rt_shim_spec_load(const char *path, struct rt_shim_spec *s, struct rt_err *err)
{
    static const char *const known[] = { "id",       "argv",         "env",      "chdir",
                                         "rootfs",   "layers",       "mounts",   "memory",
                                         "swap",     "pids",         "cpuMilli", "upperSize",
                                         "net",      "egress",       "port",     "gpus",
                                         "hostname", "gpusDeferred", NULL };
    json_error_t jerr;
    json_t *root, *v;
    const char *key;
    size_t n;
    int r;

    memset(s, 0, sizeof(*s));
    sbx_spec_init(&s->sbx);
    root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return rt_err_set(err, EINVAL, "spec '%s': %s (line %d)", path, jerr.text, jerr.line);
    s->json = root;
    if (!json_is_object(root))
        return rt_err_set(err, EINVAL, "spec '%s': not an object", path);
    json_object_foreach(root, key, v)
    {
        bool ok = false;
        for (size_t i = 0; known[i]; i++)
            ok |= strcmp(key, known[i]) == 0;
        if (!ok)
            return rt_err_set(err, EINVAL, "spec: unknown field '%s'", key);
    }
    s->id = (char *) json_string_value(json_object_get(root, "id"));
    if (!s->id)
        return rt_err_set(err, EINVAL, "spec: 'id' is required");

    {
        size_t na;
        json_t *a = json_object_get(root, "argv");
        if ((r = get_str_array(a, "argv", s->argv, ARRAY_SIZE(s->argv) - 1, &na, err)) < 0)
            return r;
        if (na == 0)
            return rt_err_set(err, EINVAL, "spec: 'argv' is empty");
        s->argv[na] = NULL;
        s->sbx.argv = s->argv;
    }
    if ((v = json_object_get(root, "env"))) {
        const char *env[SBX_MAX_ENV];
        if ((r = get_str_array(v, "env", env, SBX_MAX_ENV, &n, err)) < 0)
            return r;
        for (size_t i = 0; i < n; i++)
            if ((r = sbx_spec_add_env(&s->sbx, env[i], err)) < 0)
                return r;
    }
    if ((v = json_object_get(root, "layers")) &&
        (r = get_str_array(v, "layers", s->sbx.layers, SBX_MAX_LAYERS, &s->sbx.n_layers, err)) < 0)
        return r;
    if ((v = json_object_get(root, "gpus")) &&
        (r = get_str_array(v, "gpus", s->sbx.gpus, SBX_MAX_GPUS, &s->sbx.n_gpus, err)) < 0)
        return r;
    if ((v = json_object_get(root, "gpusDeferred"))) {
        if (!json_is_boolean(v))
            return rt_err_set(err, EINVAL, "spec: 'gpusDeferred' must be true or false");
        /* ZeroGPU: bound now, allowed only by the allow-gpus command (shim.h) */
        s->sbx.gpus_deferred = json_is_true(v);
    }
    if ((v = json_object_get(root, "mounts"))) {
        size_t i;
        json_t *m;
        if (!json_is_array(v))
            return rt_err_set(err, EINVAL, "spec: 'mounts' must be an array");
        json_array_foreach(v, i, m) if ((r = add_mount(s, m, i, err)) < 0) return r;
    }
    s->sbx.chdir = json_string_value(json_object_get(root, "chdir"));
    s->sbx.rootfs = json_string_value(json_object_get(root, "rootfs"));
    if ((v = json_object_get(root, "hostname")))
        s->sbx.hostname = json_string_value(v);
    if ((v = json_object_get(root, "memory")) &&
        (r = get_u64(v, "memory", &s->sbx.memory_max, err)) < 0)
        return r;
    if ((v = json_object_get(root, "swap")) && (r = get_u64(v, "swap", &s->sbx.swap_max, err)) < 0)
        return r;
    if ((v = json_object_get(root, "pids")) && (r = get_u64(v, "pids", &s->sbx.pids_max, err)) < 0)
        return r;
    if ((v = json_object_get(root, "upperSize")) &&
        (r = get_u64(v, "upperSize", &s->sbx.upper_size, err)) < 0)
        return r;
    if ((v = json_object_get(root, "cpuMilli"))) {
        uint64_t c = 0;
        if ((r = get_u64(v, "cpuMilli", &c, err)) < 0)
            return r;
        s->sbx.cpu_milli = (uint32_t) c;
    }
    if ((v = json_object_get(root, "port"))) {
        uint64_t p = 0;
        if ((r = get_u64(v, "port", &p, err)) < 0)
            return r;
        if (p == 0 || p > 65535)
            return rt_err_set(err, EINVAL, "spec: 'port' must be in 1..65535");
        s->port = (uint16_t) p;
    }
    s->egress = json_is_true(json_object_get(root, "egress"));
    if ((v = json_object_get(root, "net"))) {
        const char *net = json_string_value(v);
        if (!net)
            return rt_err_set(err, EINVAL, "spec: 'net' must be a string");
        if (strcmp(net, "none") == 0)
            s->sbx.net = SBX_NET_NONE;
        else if (strcmp(net, "host") == 0)
            s->sbx.net = SBX_NET_HOST;
        else if (strcmp(net, "veth") == 0)
            s->sbx.net = SBX_NET_VETH;
        else
            return rt_err_set(err, EINVAL, "spec: unknown net '%s'", net);
    }
    s->sbx.want_cgroup = true; /* freeze and thaw need one */
    return 0;
}

void rt_shim_spec_done(struct rt_shim_spec *s)
{
    for (size_t i = 0; i < s->n_strs; i++)
        free(s->strs[i]);
    s->n_strs = 0;
    if (s->json)
        json_decref(s->json);
    s->json = NULL;
}
