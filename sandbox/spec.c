/* The sandbox spec: defaults, "SRC:DST" parsing, environment edits and validation.
 * Validation happens in the parent so the child never meets a surprise. */
#include <errno.h>
#include <string.h>

#include "sandbox.h"
#include "banned.h"

#define SBX_DEFAULT_UID 1000

void sbx_spec_init(struct sbx_spec *spec)
{
    memset(spec, 0, sizeof(*spec));
    spec->uid = SBX_DEFAULT_UID;
    spec->gid = SBX_DEFAULT_UID;
    spec->chdir = "/";
    spec->hostname = "sandbox";
    spec->cgroup_parent = "spaceport";
    spec->upper_size = 512ULL << 20;
    spec->tmpfs_size = 64ULL << 20;
    spec->nofile = 4096;
    spec->net = SBX_NET_NONE;
    spec->die_with_parent = true;
    spec->stdio[0] = spec->stdio[1] = spec->stdio[2] = -1;
}

int sbx_spec_add_mount(struct sbx_spec *spec, enum sbx_mount_kind kind, char *arg,
                       struct rt_err *err)
{
    struct sbx_mount *m;
    char *colon;

    if (spec->n_mounts >= SBX_MAX_MOUNTS)
        return rt_err_set(err, E2BIG, "too many mounts (at most %d)", SBX_MAX_MOUNTS);
    if (!arg || !*arg)
        return rt_err_set(err, EINVAL, "empty mount argument");
    m = &spec->mounts[spec->n_mounts];
    memset(m, 0, sizeof(*m));
    m->kind = kind;
    if (kind == SBX_MOUNT_TMPFS) {
        m->dst = arg;
    } else {
        colon = strchr(arg, ':');
        if (colon) {
            *colon = '\0';
            m->src = arg;
            m->dst = colon + 1;
        } else {
            m->src = m->dst = arg;
        }
        if (!*m->src || m->src[0] != '/')
            return rt_err_set(err, EINVAL, "bind source '%s' must be an absolute path", m->src);
    }
    if (!*m->dst)
        return rt_err_set(err, EINVAL, "mount destination is empty");
    spec->n_mounts++;
    return 0;
}

int sbx_spec_add_env(struct sbx_spec *spec, const char *kv, struct rt_err *err)
{
    const char *eq = kv ? strchr(kv, '=') : NULL;
    size_t klen;

    if (!eq || eq == kv)
        return rt_err_set(err, EINVAL, "environment entry '%s' is not K=V", kv ? kv : "");
    klen = (size_t) (eq - kv) + 1;
    for (size_t i = 0; i < spec->n_env; i++) {
        if (strncmp(spec->env[i], kv, klen) == 0) {
            spec->env[i] = kv;
            return 0;
        }
    }
    if (spec->n_env >= SBX_MAX_ENV)
        return rt_err_set(err, E2BIG, "too many environment entries (at most %d)", SBX_MAX_ENV);
    spec->env[spec->n_env++] = kv;
    return 0;
}

/* An in-sandbox path: absolute, no "." or ".." component, no empty name, not too long. */
static bool path_ok(const char *p)
{
    const char *c;

    if (!p || p[0] != '/' || strlen(p) >= 1024)
        return false;
    for (c = p; *c;) {
        const char *end;
        size_t len;

        while (*c == '/')
            c++;
        end = strchrnul(c, '/');
        len = (size_t) (end - c);
        if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
            return false;
        c = end;
    }
    return true;
}

static bool host_path_ok(const char *p)
{
    return p && p[0] == '/' && strlen(p) < 1024;
}

int sbx_spec_validate(const struct sbx_spec *spec, struct rt_err *err)
{
    if (!spec->argv || !spec->argv[0] || !spec->argv[0][0])
        return rt_err_set(err, EINVAL, "no command given");
    if (spec->rootfs && !host_path_ok(spec->rootfs))
        return rt_err_set(err, EINVAL, "rootfs '%s' must be an absolute path", spec->rootfs);
    if (spec->n_layers > SBX_MAX_LAYERS || spec->n_mounts > SBX_MAX_MOUNTS ||
        spec->n_env > SBX_MAX_ENV || spec->n_gpus > SBX_MAX_GPUS)
        return rt_err_set(err, E2BIG, "too many layers, mounts, variables or devices");
    if (spec->n_layers && !spec->rootfs)
        return rt_err_set(err, EINVAL, "layers need a rootfs to sit on");
    for (size_t i = 0; i < spec->n_layers; i++) {
        if (!host_path_ok(spec->layers[i]) || strchr(spec->layers[i], ':') ||
            strchr(spec->layers[i], ','))
            return rt_err_set(err, EINVAL, "layer '%s' must be an absolute path without ':' or ','",
                              spec->layers[i] ? spec->layers[i] : "");
    }
    if (spec->rootfs && (strchr(spec->rootfs, ':') || strchr(spec->rootfs, ',')))
        return rt_err_set(err, EINVAL, "rootfs '%s' must not contain ':' or ','", spec->rootfs);
    for (size_t i = 0; i < spec->n_mounts; i++) {
        const struct sbx_mount *m = &spec->mounts[i];

        if (m->kind > SBX_MOUNT_TMPFS)
            return rt_err_set(err, EINVAL, "mount %zu has an unknown kind", i);
        if (!path_ok(m->dst) || strcmp(m->dst, "/") == 0)
            return rt_err_set(err, EINVAL,
                              "mount destination '%s' must be an absolute path below / "
                              "without '.' or '..'",
                              m->dst ? m->dst : "");
        if (m->kind != SBX_MOUNT_TMPFS && !host_path_ok(m->src))
            return rt_err_set(err, EINVAL, "bind source '%s' must be an absolute path",
                              m->src ? m->src : "");
    }
    for (size_t i = 0; i < spec->n_env; i++) {
        const char *eq = spec->env[i] ? strchr(spec->env[i], '=') : NULL;

        if (!eq || eq == spec->env[i])
            return rt_err_set(err, EINVAL, "environment entry '%s' is not K=V",
                              spec->env[i] ? spec->env[i] : "");
    }
    for (size_t i = 0; i < spec->n_gpus; i++) {
        if (!spec->gpus[i] || strncmp(spec->gpus[i], "/dev/", 5) != 0 || !path_ok(spec->gpus[i]))
            return rt_err_set(err, EINVAL, "device '%s' must be a path under /dev",
                              spec->gpus[i] ? spec->gpus[i] : "");
    }
    if (!path_ok(spec->chdir ? spec->chdir : "/"))
        return rt_err_set(err, EINVAL, "working directory '%s' must be an absolute path",
                          spec->chdir);
    if (spec->hostname && (strlen(spec->hostname) == 0 || strlen(spec->hostname) > 64))
        return rt_err_set(err, EINVAL, "hostname '%s' must be 1 to 64 characters", spec->hostname);
    if (spec->uid > 65535 || spec->gid > 65535)
        return rt_err_set(err, EINVAL, "uid and gid inside must be below 65536");
    if (spec->host_uid_base && spec->host_uid_base < 65536)
        return rt_err_set(err, EINVAL,
                          "host uid base %u overlaps the host's own users (need >= 65536)",
                          spec->host_uid_base);
    if (spec->host_uid_base > UINT32_MAX - 65536)
        return rt_err_set(err, ERANGE, "host uid base %u is too large", spec->host_uid_base);
    if (spec->net > SBX_NET_VETH)
        return rt_err_set(err, EINVAL, "unknown network mode");
    if (spec->net == SBX_NET_VETH && !spec->on_netns)
        return rt_err_set(err, ENOTSUP, "veth networking is not available in this build");
    if (spec->upper_size < (1ULL << 20))
        return rt_err_set(err, EINVAL, "writable layer size must be at least 1M");
    if (spec->memory_max && spec->memory_max < (1ULL << 20))
        return rt_err_set(err, EINVAL, "memory limit must be at least 1M");
    if (spec->nofile < 16 || spec->nofile > (1ULL << 20))
        return rt_err_set(err, EINVAL, "open file limit must be between 16 and 1048576");
    if (spec->name && (!*spec->name || strchr(spec->name, '/') || strcmp(spec->name, ".") == 0 ||
                       strcmp(spec->name, "..") == 0 || strlen(spec->name) > 64))
        return rt_err_set(err, EINVAL, "sandbox name '%s' is not a valid cgroup name", spec->name);
    if (!spec->cgroup_parent || !*spec->cgroup_parent || strstr(spec->cgroup_parent, "..") ||
        spec->cgroup_parent[0] == '/')
        return rt_err_set(err, EINVAL, "cgroup parent must be a relative path without '..'");
    return 0;
}
