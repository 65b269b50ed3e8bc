/* The fake backend: GPUs declared in the config, backed by character devices
 * the tests create, so every path but the driver runs on machines without GPUs.
 *
 * Spec: comma-separated entries COUNTxKIND:MEMORY[:mig=NxPROFILE], for example
 * "2xa10g:24G,1xa100:80G:mig=2x3g.40gb".  GPUs are numbered across entries in
 * order; a MIG entry's GPUs are allocatable only as their instances. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cleanup.h"
#include "internal.h"
#include "util.h"

#include "banned.h"

int gpu__fake_parse(const char *spec, struct gpu__fake_entry *out, size_t cap, size_t *ret_n,
                    struct rt_err *err)
{
    _cleanup_free_ char *copy = NULL;
    char *save = NULL, *tok;
    size_t n = 0;

    if (!spec || !*spec)
        return rt_err_set(err, EINVAL, "fake gpu spec is empty");
    copy = strdup(spec);
    if (!copy)
        return rt_err_set(err, ENOMEM, "copy fake gpu spec");
    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        struct gpu__fake_entry *e = &out[n];
        char *x, *colon, *mem, *mig = NULL;
        uint64_t count, v;

        while (*tok == ' ')
            tok++;
        if (n >= cap)
            return rt_err_set(err, EINVAL, "fake gpu spec: more than %zu entries", cap);
        memset(e, 0, sizeof(*e));
        x = strchr(tok, 'x');
        colon = strchr(tok, ':');
        if (!x || !colon || x > colon)
            return rt_err_set(err, EINVAL, "fake gpu spec '%s': expected COUNTxKIND:MEMORY", tok);
        *x = '\0';
        *colon = '\0';
        mem = colon + 1;
        if ((colon = strchr(mem, ':'))) {
            *colon = '\0';
            mig = colon + 1;
        }
        if (rt_parse_u64(tok, &count) < 0 || count == 0 || count > 64)
            return rt_err_set(err, EINVAL, "fake gpu spec: bad count '%s' (1..64)", tok);
        e->count = (unsigned) count;
        if (!x[1] || strlen(x + 1) >= sizeof(e->kind) ||
            strspn(x + 1, "abcdefghijklmnopqrstuvwxyz0123456789-.") != strlen(x + 1))
            return rt_err_set(err, EINVAL, "fake gpu spec: bad kind '%s' (a-z 0-9 - .)", x + 1);
        memcpy(e->kind, x + 1, strlen(x + 1) + 1);
        if (rt_parse_size(mem, &e->memory) < 0 || e->memory == 0)
            return rt_err_set(err, EINVAL, "fake gpu spec: bad memory '%s'", mem);
        if (mig) {
            char *mx, *gb;

            if (strncmp(mig, "mig=", 4) != 0 || !(mx = strchr(mig + 4, 'x')))
                return rt_err_set(err, EINVAL, "fake gpu spec: expected mig=NxPROFILE, got '%s'",
                                  mig);
            *mx = '\0';
            if (rt_parse_u64(mig + 4, &v) < 0 || v == 0 || v > 7)
                return rt_err_set(err, EINVAL, "fake gpu spec: bad MIG count '%s' (1..7)", mig + 4);
            e->mig_count = (unsigned) v;
            /* "3g.40gb": compute slices, then memory. */
            gb = strchr(mx + 1, '.');
            if (strlen(mx + 1) >= sizeof(e->mig_profile) || !gb || mx[1] < '1' || mx[1] > '9' ||
                mx[2] != 'g' || gb != mx + 3)
                return rt_err_set(err, EINVAL, "fake gpu spec: bad MIG profile '%s' (like 3g.40gb)",
                                  mx + 1);
            memcpy(e->mig_profile, mx + 1, strlen(mx + 1) + 1);
            {
                char size[16];
                size_t sl = strlen(gb + 1);

                if (sl < 3 || sl >= sizeof(size) || strcmp(gb + 1 + sl - 2, "gb") != 0)
                    return rt_err_set(err, EINVAL, "fake gpu spec: bad MIG memory in '%s'",
                                      e->mig_profile);
                (void) snprintf(size, sizeof(size), "%.*sG", (int) (sl - 2), gb + 1);
                if (rt_parse_size(size, &e->mig_memory) < 0 || e->mig_memory > e->memory ||
                    e->mig_memory * e->mig_count > e->memory)
                    return rt_err_set(err, EINVAL, "fake gpu spec: MIG '%s' x%u does not fit %s",
                                      e->mig_profile, e->mig_count, mem);
            }
        }
        n++;
    }
    if (n == 0)
        return rt_err_set(err, EINVAL, "fake gpu spec is empty");
    /* Minors 254 and 255 of the GPU major are modeset and ctl; keep well clear. */
    {
        unsigned total = 0;

        for (size_t i = 0; i < n; i++)
            total += out[i].count;
        if (total > 64)
            return rt_err_set(err, EINVAL, "fake gpu spec: %u GPUs, at most 64", total);
    }
    *ret_n = n;
    return 0;
}

/* The minors of MIG instance @k (0-based) of fake GPU @gpu in nvidia-caps. */
static unsigned fake_gi_minor(unsigned gpu, unsigned k)
{
    return 1 + gpu * 16 + 2 * k;
}

/* Adds a node: with a dev dir, the node on disk decides the numbers (as the NVIDIA
 * toolkit checks st_rdev before it trusts a node); without, the scheme does. */
static int fake_node(const struct gpu_config *cfg, struct gpu_unit *u, const char *name,
                     unsigned major, unsigned minor, unsigned flags, struct rt_err *err)
{
    char path[GPU_PATH_MAX];
    int r;

    if (cfg->fake_dev_dir) {
        struct stat st;

        if ((size_t) snprintf(path, sizeof(path), "%s/%s", cfg->fake_dev_dir, name) >= sizeof(path))
            return rt_err_set(err, ENAMETOOLONG, "fake gpu node path '%s/%s' too long",
                              cfg->fake_dev_dir, name);
        if (lstat(path, &st) < 0)
            return rt_err_set(err, errno, "fake gpu node '%s' (gpu_fake_mknod creates it)", path);
        if (!S_ISCHR(st.st_mode))
            return rt_err_set(err, EINVAL, "fake gpu node '%s' is not a character device", path);
        major = major(st.st_rdev);
        minor = minor(st.st_rdev);
    } else {
        (void) snprintf(path, sizeof(path), "/dev/%s", name);
    }
    r = gpu__node_add(u, path, major, minor, flags);
    if (r < 0)
        return rt_err_set(err, -r, "add node '%s'", path);
    return 0;
}

static int fake_common_nodes(const struct gpu_config *cfg, struct gpu_unit *u, unsigned gpu,
                             struct rt_err *err)
{
    char name[32];
    int r;

    (void) snprintf(name, sizeof(name), "nvidia%u", gpu);
    if ((r = fake_node(cfg, u, name, GPU__FAKE_MAJOR, gpu, 0, err)) < 0 ||
        (r = fake_node(cfg, u, "nvidiactl", GPU__FAKE_MAJOR, 255, GPU_NODE_SHARED, err)) < 0 ||
        (r = fake_node(cfg, u, "nvidia-uvm", GPU__FAKE_UVM_MAJOR, 0, GPU_NODE_SHARED, err)) < 0 ||
        (r = fake_node(cfg, u, "nvidia-uvm-tools", GPU__FAKE_UVM_MAJOR, 1,
                       GPU_NODE_SHARED | GPU_NODE_OPTIONAL, err)) < 0 ||
        (r = fake_node(cfg, u, "nvidia-modeset", GPU__FAKE_MAJOR, 254,
                       GPU_NODE_SHARED | GPU_NODE_OPTIONAL, err)) < 0)
        return r;
    return 0;
}

static int fake_probe(const struct gpu_config *cfg, struct gpu_inventory *inv, struct rt_err *err)
{
    struct gpu__fake_entry e[GPU__FAKE_ENTRIES_MAX];
    size_t n;
    unsigned gpu = 0;
    int r;

    r = gpu__fake_parse(cfg->fake_spec, e, ARRAY_SIZE(e), &n, err);
    if (r < 0)
        return r;
    (void) snprintf(inv->driver, sizeof(inv->driver), "fake");
    for (size_t i = 0; i < n; i++)
        for (unsigned c = 0; c < e[i].count; c++, gpu++) {
            for (unsigned k = 0; k < (e[i].mig_count ? e[i].mig_count : 1); k++) {
                struct gpu_unit *u = gpu__inventory_add(inv);
                char name[48];

                if (!u)
                    return rt_err_set(err, ENOMEM, "add fake gpu");
                u->gpu_index = gpu;
                u->memory = e[i].memory;
                (void) snprintf(u->kind, sizeof(u->kind), "%s", e[i].kind);
                (void) snprintf(u->name, sizeof(u->name), "Fake %s", e[i].kind);
                (void) snprintf(u->uuid, sizeof(u->uuid), "GPU-fa4e%04x-0000-4000-8000-%012x", gpu,
                                gpu);
                if ((r = fake_common_nodes(cfg, u, gpu, err)) < 0)
                    return r;
                if (!e[i].mig_count)
                    continue;
                u->mig_gi = (int) k + 1;
                u->mig_ci = 0;
                u->memory = e[i].mig_memory;
                (void) snprintf(u->kind, sizeof(u->kind), "%s-%s", e[i].kind, e[i].mig_profile);
                (void) snprintf(u->name, sizeof(u->name), "Fake %s MIG %s", e[i].kind,
                                e[i].mig_profile);
                (void) snprintf(u->uuid, sizeof(u->uuid), "MIG-fa4e%04x-%04x-4000-8000-%012x", gpu,
                                k, gpu * 8 + k);
                (void) snprintf(name, sizeof(name), "nvidia-caps/nvidia-cap%u",
                                fake_gi_minor(gpu, k));
                if ((r = fake_node(cfg, u, name, GPU__FAKE_CAPS_MAJOR, fake_gi_minor(gpu, k), 0,
                                   err)) < 0)
                    return r;
                (void) snprintf(name, sizeof(name), "nvidia-caps/nvidia-cap%u",
                                fake_gi_minor(gpu, k) + 1);
                if ((r = fake_node(cfg, u, name, GPU__FAKE_CAPS_MAJOR, fake_gi_minor(gpu, k) + 1, 0,
                                   err)) < 0)
                    return r;
            }
        }
    inv->n_gpus = gpu;
    return 0;
}

static int mknod_one(int dirfd, const char *name, unsigned major, unsigned minor,
                     struct rt_err *err)
{
    if (mknodat(dirfd, name, S_IFCHR | 0600, makedev(major, minor)) < 0 && errno != EEXIST)
        return rt_err_set(err, errno, "mknod '%s' %u:%u", name, major, minor);
    return 0;
}

int gpu_fake_mknod(const char *dir, const char *spec, struct rt_err *err)
{
    struct gpu__fake_entry e[GPU__FAKE_ENTRIES_MAX];
    _cleanup_close_ int dfd = -1;
    size_t n;
    unsigned gpu = 0;
    char name[48];
    int r;

    r = gpu__fake_parse(spec, e, ARRAY_SIZE(e), &n, err);
    if (r < 0)
        return r;
    dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return rt_err_set(err, errno, "open '%s'", dir);
    if ((r = mknod_one(dfd, "nvidiactl", GPU__FAKE_MAJOR, 255, err)) < 0 ||
        (r = mknod_one(dfd, "nvidia-modeset", GPU__FAKE_MAJOR, 254, err)) < 0 ||
        (r = mknod_one(dfd, "nvidia-uvm", GPU__FAKE_UVM_MAJOR, 0, err)) < 0 ||
        (r = mknod_one(dfd, "nvidia-uvm-tools", GPU__FAKE_UVM_MAJOR, 1, err)) < 0)
        return r;
    if (mkdirat(dfd, "nvidia-caps", 0755) < 0 && errno != EEXIST)
        return rt_err_set(err, errno, "mkdir '%s/nvidia-caps'", dir);
    for (size_t i = 0; i < n; i++)
        for (unsigned c = 0; c < e[i].count; c++, gpu++) {
            (void) snprintf(name, sizeof(name), "nvidia%u", gpu);
            if ((r = mknod_one(dfd, name, GPU__FAKE_MAJOR, gpu, err)) < 0)
                return r;
            for (unsigned k = 0; k < e[i].mig_count; k++)
                for (unsigned m = 0; m < 2; m++) {
                    unsigned minor = fake_gi_minor(gpu, k) + m;

                    (void) snprintf(name, sizeof(name), "nvidia-caps/nvidia-cap%u", minor);
                    if ((r = mknod_one(dfd, name, GPU__FAKE_CAPS_MAJOR, minor, err)) < 0)
                        return r;
                }
        }
    return 0;
}

const struct gpu__backend gpu__backend_fake = {
    .name = "fake",
    .probe = fake_probe,
};
