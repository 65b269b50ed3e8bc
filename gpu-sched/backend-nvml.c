/* The NVML backend: libnvidia-ml.so.1 loaded at run time, so Spaceport builds and
 * runs without the NVIDIA driver; a node without it reports -ENODEV, cleanly.
 * The few NVML types and prototypes we need are declared here from the public
 * NVML API reference (nvml.h is not needed to build). */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "internal.h"

#include "banned.h"

typedef int nvmlReturn_t; /* NVML_SUCCESS = 0 */
typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct {
    unsigned long long total, free, used;
} nvmlMemory_t;

#define NVML_SUCCESS 0
#define NVML_DEVICE_MIG_ENABLE 1
#define NVML_NAME_LEN 96 /* NVML_DEVICE_NAME_V2_BUFFER_SIZE */
#define NVML_UUID_LEN 96 /* NVML_DEVICE_UUID_V2_BUFFER_SIZE */
#define NVIDIA_MAJOR 195 /* fixed by the driver: /dev/nvidiaN, ctl 255, modeset 254 */

struct nvml {
    void *lib;
    nvmlReturn_t (*init)(void);
    nvmlReturn_t (*shutdown)(void);
    const char *(*error_string)(nvmlReturn_t);
    nvmlReturn_t (*driver_version)(char *, unsigned);
    nvmlReturn_t (*count)(unsigned *);
    nvmlReturn_t (*by_index)(unsigned, nvmlDevice_t *);
    nvmlReturn_t (*name)(nvmlDevice_t, char *, unsigned);
    nvmlReturn_t (*uuid)(nvmlDevice_t, char *, unsigned);
    nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t *);
    nvmlReturn_t (*minor)(nvmlDevice_t, unsigned *);
    /* MIG: absent from old drivers, so optional. */
    nvmlReturn_t (*mig_mode)(nvmlDevice_t, unsigned *, unsigned *);
    nvmlReturn_t (*mig_max)(nvmlDevice_t, unsigned *);
    nvmlReturn_t (*mig_by_index)(nvmlDevice_t, unsigned, nvmlDevice_t *);
    nvmlReturn_t (*gi_id)(nvmlDevice_t, unsigned *);
    nvmlReturn_t (*ci_id)(nvmlDevice_t, unsigned *);
};

static void nvml_closep(struct nvml *n)
{
    if (n->lib) {
        if (n->shutdown)
            (void) n->shutdown();
        (void) dlclose(n->lib);
        n->lib = NULL;
    }
}

static const char *nvml_str(const struct nvml *n, nvmlReturn_t r)
{
    return n->error_string ? n->error_string(r) : "unknown NVML error";
}

#define SYM(field, sym, required)                                                                  \
    do {                                                                                           \
        *(void **) &n->field = dlsym(n->lib, sym);                                                 \
        if (!n->field && (required))                                                               \
            return rt_err_set(err, ENODEV, "'%s' lacks '%s'", lib, sym);                           \
    } while (0)

static int nvml_open(struct nvml *n, const char *lib, struct rt_err *err)
{
    /* dlopen opens the library close-on-exec; RTLD_LOCAL keeps its symbols ours. */
    n->lib = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!n->lib)
        return rt_err_set(err, ENODEV, "NVIDIA driver not available: cannot load '%s': %s", lib,
                          dlerror());
    SYM(init, "nvmlInit_v2", true);
    SYM(shutdown, "nvmlShutdown", true);
    SYM(error_string, "nvmlErrorString", true);
    SYM(driver_version, "nvmlSystemGetDriverVersion", false);
    SYM(count, "nvmlDeviceGetCount_v2", true);
    SYM(by_index, "nvmlDeviceGetHandleByIndex_v2", true);
    SYM(name, "nvmlDeviceGetName", true);
    SYM(uuid, "nvmlDeviceGetUUID", true);
    SYM(memory, "nvmlDeviceGetMemoryInfo", true);
    SYM(minor, "nvmlDeviceGetMinorNumber", true);
    SYM(mig_mode, "nvmlDeviceGetMigMode", false);
    SYM(mig_max, "nvmlDeviceGetMaxMigDeviceCount", false);
    SYM(mig_by_index, "nvmlDeviceGetMigDeviceHandleByIndex", false);
    SYM(gi_id, "nvmlDeviceGetGpuInstanceId", false);
    SYM(ci_id, "nvmlDeviceGetComputeInstanceId", false);
    return 0;
}

struct majors {
    bool have_uvm, have_caps;
    unsigned uvm, caps;
    char root[GPU_PATH_MAX / 2];
};

static int add_node(struct gpu_unit *u, const struct majors *m, const char *name, unsigned major,
                    unsigned minor, unsigned flags, struct rt_err *err)
{
    char path[GPU_PATH_MAX];
    int r;

    (void) snprintf(path, sizeof(path), "%s/dev/%s", m->root, name);
    /* Optional nodes (uvm-tools, modeset) only where the driver made them. */
    if ((flags & GPU_NODE_OPTIONAL) && access(path, F_OK) < 0)
        return 0;
    r = gpu__node_add(u, path, major, minor, flags);
    if (r < 0)
        return rt_err_set(err, -r, "add node '%s'", path);
    return 0;
}

/* The nodes libnvidia-container gives a compute container (research/sandbox.md §6). */
static int gpu_nodes(struct gpu_unit *u, const struct majors *m, unsigned minor, struct rt_err *err)
{
    char name[32];
    int r;

    (void) snprintf(name, sizeof(name), "nvidia%u", minor);
    if ((r = add_node(u, m, name, NVIDIA_MAJOR, minor, 0, err)) < 0 ||
        (r = add_node(u, m, "nvidiactl", NVIDIA_MAJOR, 255, GPU_NODE_SHARED, err)) < 0)
        return r;
    if (m->have_uvm && ((r = add_node(u, m, "nvidia-uvm", m->uvm, 0, GPU_NODE_SHARED, err)) < 0 ||
                        (r = add_node(u, m, "nvidia-uvm-tools", m->uvm, 1,
                                      GPU_NODE_SHARED | GPU_NODE_OPTIONAL, err)) < 0))
        return r;
    return add_node(u, m, "nvidia-modeset", NVIDIA_MAJOR, 254, GPU_NODE_SHARED | GPU_NODE_OPTIONAL,
                    err);
}

static int mig_units(const struct nvml *n, nvmlDevice_t dev, struct gpu_inventory *inv,
                     const struct gpu_unit *parent, const struct majors *m, unsigned minor,
                     struct rt_err *err)
{
    unsigned max = 0;
    char mig_minors[GPU_PATH_MAX];
    nvmlReturn_t nr;

    if (!n->mig_max || !n->mig_by_index || !n->gi_id || !n->ci_id)
        return rt_err_set(err, ENOTSUP, "driver reports MIG mode but lacks the MIG calls");
    if (!m->have_caps)
        return rt_err_set(err, ENODEV,
                          "MIG enabled on gpu %u but no 'nvidia-caps' in %s/proc/devices",
                          parent->gpu_index, m->root);
    (void) snprintf(mig_minors, sizeof(mig_minors), "%s/proc/driver/nvidia-caps/mig-minors",
                    m->root);
    if ((nr = n->mig_max(dev, &max)) != NVML_SUCCESS)
        return rt_err_set(err, EIO, "gpu %u: max MIG devices: %s", parent->gpu_index,
                          nvml_str(n, nr));
    for (unsigned i = 0; i < max; i++) {
        nvmlDevice_t mig;
        nvmlMemory_t mem;
        unsigned gi, ci, gi_minor, ci_minor;
        struct gpu_unit *u;
        const char *profile;
        char name[48];
        int r;

        /* Unpopulated slots answer NOT_FOUND: MIG instances need not be dense. */
        if (n->mig_by_index(dev, i, &mig) != NVML_SUCCESS)
            continue;
        if (n->gi_id(mig, &gi) != NVML_SUCCESS || n->ci_id(mig, &ci) != NVML_SUCCESS)
            continue;
        if (!(u = gpu__inventory_add(inv)))
            return rt_err_set(err, ENOMEM, "add MIG unit");
        u->gpu_index = parent->gpu_index;
        u->mig_gi = (int) gi;
        u->mig_ci = (int) ci;
        if (n->uuid(mig, u->uuid, sizeof(u->uuid)) != NVML_SUCCESS ||
            n->name(mig, u->name, sizeof(u->name)) != NVML_SUCCESS)
            return rt_err_set(err, EIO, "gpu %u: MIG %u: read uuid/name", parent->gpu_index, i);
        if (n->memory(mig, &mem) == NVML_SUCCESS)
            u->memory = mem.total;
        /* "NVIDIA A100-SXM4-80GB MIG 3g.40gb" -> kind "a100-3g.40gb". */
        profile = strstr(u->name, "MIG ");
        (void) snprintf(u->kind, sizeof(u->kind), "%s-%s", parent->kind,
                        profile ? profile + 4 : "mig");
        r = gpu__mig_minor(mig_minors, parent->gpu_index, (int) gi, -1, &gi_minor);
        if (r == 0)
            r = gpu__mig_minor(mig_minors, parent->gpu_index, (int) gi, (int) ci, &ci_minor);
        if (r < 0)
            return rt_err_set(err, -r, "gpu %u: MIG gi %u ci %u: minor in '%s'", parent->gpu_index,
                              gi, ci, mig_minors);
        if ((r = gpu_nodes(u, m, minor, err)) < 0)
            return r;
        (void) snprintf(name, sizeof(name), "nvidia-caps/nvidia-cap%u", gi_minor);
        if ((r = add_node(u, m, name, m->caps, gi_minor, 0, err)) < 0)
            return r;
        (void) snprintf(name, sizeof(name), "nvidia-caps/nvidia-cap%u", ci_minor);
        if ((r = add_node(u, m, name, m->caps, ci_minor, 0, err)) < 0)
            return r;
    }
    return 0;
}

static int nvml_probe(const struct gpu_config *cfg, struct gpu_inventory *inv, struct rt_err *err)
{
    _cleanup_(nvml_closep) struct nvml n = { 0 };
    const char *lib = cfg && cfg->nvml_library ? cfg->nvml_library : "libnvidia-ml.so.1";
    struct majors m = { 0 };
    char path[GPU_PATH_MAX];
    unsigned count = 0;
    nvmlReturn_t nr;
    int r;

    r = nvml_open(&n, lib, err);
    if (r < 0)
        return r;
    if ((nr = n.init()) != NVML_SUCCESS) {
        n.shutdown = NULL; /* nothing to shut down */
        return rt_err_set(err, ENODEV, "NVIDIA driver not available: '%s': nvmlInit: %s", lib,
                          nvml_str(&n, nr));
    }
    (void) snprintf(m.root, sizeof(m.root), "%s", cfg && cfg->root ? cfg->root : "");
    (void) snprintf(path, sizeof(path), "%s/proc/devices", m.root);
    m.have_uvm = gpu__proc_devices_major(path, "nvidia-uvm", &m.uvm) == 0;
    m.have_caps = gpu__proc_devices_major(path, "nvidia-caps", &m.caps) == 0;
    if (n.driver_version)
        (void) n.driver_version(inv->driver, sizeof(inv->driver));
    if ((nr = n.count(&count)) != NVML_SUCCESS)
        return rt_err_set(err, EIO, "count devices: %s", nvml_str(&n, nr));
    for (unsigned i = 0; i < count; i++) {
        nvmlDevice_t dev;
        nvmlMemory_t mem;
        unsigned minor, mig_cur = 0, mig_pending = 0;
        struct gpu_unit gpu = { .gpu_index = i, .mig_gi = -1, .mig_ci = -1 }, *u;

        if ((nr = n.by_index(i, &dev)) != NVML_SUCCESS ||
            (nr = n.uuid(dev, gpu.uuid, sizeof(gpu.uuid))) != NVML_SUCCESS ||
            (nr = n.name(dev, gpu.name, sizeof(gpu.name))) != NVML_SUCCESS ||
            (nr = n.minor(dev, &minor)) != NVML_SUCCESS)
            return rt_err_set(err, EIO, "gpu %u: %s", i, nvml_str(&n, nr));
        if (n.memory(dev, &mem) == NVML_SUCCESS)
            gpu.memory = mem.total;
        gpu_kind_from_name(gpu.name, gpu.kind, sizeof(gpu.kind));
        inv->n_gpus++;
        if (n.mig_mode && n.mig_mode(dev, &mig_cur, &mig_pending) == NVML_SUCCESS &&
            mig_cur == NVML_DEVICE_MIG_ENABLE) {
            if ((r = mig_units(&n, dev, inv, &gpu, &m, minor, err)) < 0)
                return r;
            continue;
        }
        if (!(u = gpu__inventory_add(inv)))
            return rt_err_set(err, ENOMEM, "add gpu");
        gpu.index = u->index;
        *u = gpu;
        if ((r = gpu_nodes(u, &m, minor, err)) < 0)
            return r;
    }
    return 0;
}

/* libnvidia-ml keeps device fds open after nvmlShutdown() (seen on a driver
 * 580 H200 node: 6 fds) and starts threads; probing in a child keeps both out of
 * runtimed and so out of every sandbox it forks. */
const struct gpu__backend gpu__backend_nvml = {
    .name = "nvml",
    .isolate = true,
    .probe = nvml_probe,
};
