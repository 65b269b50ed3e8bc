/* Unit tests for the gpu inventory: the fake backend (synthetic and backed by
 * real character devices), the NVML backend without a driver, the procfs parsers
 * and model-name kinds. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../tap.h"
#include "cleanup.h"
#include "gpu-sched/internal.h"

static void test_kinds(void)
{
    static const struct {
        const char *name, *kind;
    } cases[] = {
        { "NVIDIA A100-SXM4-80GB", "a100" },
        { "NVIDIA A10G", "a10g" },
        { "Tesla T4", "t4" },
        { "NVIDIA L40S", "l40s" },
        { "NVIDIA L4", "l4" },
        { "NVIDIA H100 80GB HBM3", "h100" },
        { "NVIDIA H200", "h200" },
        { "NVIDIA RTX PRO 6000 Blackwell Server Edition", "rtx-pro-6000" },
        { "NVIDIA GeForce RTX 4090", "rtx-4090" },
        { "", "" },
    };
    char buf[GPU_KIND_MAX];

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        gpu_kind_from_name(cases[i].name, buf, sizeof(buf));
        is_str(buf, cases[i].kind, cases[i].name);
    }
    gpu_kind_from_name("NVIDIA A100-SXM4-80GB", buf, 3);
    is_str(buf, "a1", "kind truncates to the buffer");
}

static void test_fake_synthetic(void)
{
    struct gpu_config cfg = { .backend = "fake",
                              .fake_spec = "2xa10g:24G, 1xa100:80G:mig=2x3g.40gb" };
    struct gpu_inventory *inv = NULL;
    struct rt_err err = { 0 };
    char json[8192];

    is_int(gpu_inventory_load(&cfg, &inv, &err), 0, "fake inventory loads");
    if (!inv)
        return;
    is_str(inv->backend, "fake", "backend name");
    is_int(inv->n_gpus, 3, "three physical gpus");
    is_int(inv->n_units, 4, "two whole gpus + two MIG instances");
    is_str(inv->units[0].kind, "a10g", "unit 0 kind");
    is_int(inv->units[0].memory, 24ULL << 30, "unit 0 memory");
    is_int(inv->units[0].mig_gi, -1, "whole gpu has no MIG id");
    is_str(inv->units[0].nodes[0].path, "/dev/nvidia0", "synthetic node path");
    is_int(inv->units[1].nodes[0].minor, 1, "gpu 1 -> minor 1");
    is_int(inv->units[0].nodes[0].major, GPU__FAKE_MAJOR, "fake major");
    is_str(inv->units[1].nodes[1].path, "/dev/nvidiactl", "ctl is the second node");
    ok(inv->units[1].nodes[1].flags & GPU_NODE_SHARED, "ctl is shared");
    ok(inv->units[1].nodes[3].flags & GPU_NODE_OPTIONAL, "uvm-tools is optional");
    is_str(inv->units[2].kind, "a100-3g.40gb", "MIG kind = gpu kind + profile");
    is_int(inv->units[2].memory, 40ULL << 30, "MIG memory from the profile");
    is_int(inv->units[2].gpu_index, 2, "both MIG instances on gpu 2");
    is_int(inv->units[3].gpu_index, 2, "both MIG instances on gpu 2");
    is_int(inv->units[3].mig_gi, 2, "second gpu instance");
    is_int(inv->units[2].n_nodes, 7, "MIG unit: 5 gpu nodes + 2 caps");
    is_str(inv->units[2].nodes[5].path, "/dev/nvidia-caps/nvidia-cap33", "gi access cap");
    is_int(inv->units[2].nodes[6].minor, 34, "ci access cap minor");
    ok(strncmp(inv->units[3].uuid, "MIG-", 4) == 0, "MIG unit has a MIG- uuid");
    ok(strcmp(inv->units[2].uuid, inv->units[3].uuid) != 0, "MIG uuids differ");
    ok(gpu_inventory_find_uuid(inv, inv->units[3].uuid) == &inv->units[3], "find by uuid");
    ok(gpu_inventory_find_uuid(inv, "GPU-nope") == NULL, "unknown uuid");
    ok(gpu_inventory_json(inv, json, sizeof(json)) < sizeof(json), "json fits");
    ok(strstr(json, "\"kind\":\"a100-3g.40gb\"") != NULL, "json names the MIG kind");
    ok(strstr(json, "\"mig\":{\"gi\":1,\"ci\":0}") != NULL, "json has MIG ids");
    gpu_inventory_free(inv);
}

static void test_fake_bad_specs(void)
{
    static const char *const bad[] = {
        "",
        "a10g:24G",
        "0xa10g:24G",
        "2xA10G:24G",
        "2xa10g:lots",
        "1xa100:80G:mig=9x3g.40gb",
        "1xa100:80G:mig=3x3g.40gb",
        "1xa100:80G:mig=1xbogus",
        "65xa10g:1G",
        "2xa10g",
    };

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        struct gpu_config cfg = { .backend = "fake", .fake_spec = bad[i] };
        struct gpu_inventory *inv = NULL;
        struct rt_err err = { 0 };
        int r = gpu_inventory_load(&cfg, &inv, &err);

        is_int(r, -EINVAL, bad[i]);
        ok(inv == NULL && strstr(err.msg, "gpu backend 'fake': fake gpu spec") == err.msg,
           "clear message: %s", err.msg);
    }
}

/* A config value is untrusted text: mutated specs load or fail with -EINVAL. */
static void test_fake_spec_mutations(void)
{
    const char *seed = "2xa10g:24G,1xa100:80G:mig=2x3g.40gb";
    unsigned rnd = 7, loaded = 0, refused = 0, other = 0;
    char buf[64];

    for (unsigned i = 0; i < 5000; i++) {
        struct gpu_config cfg = { .backend = "fake", .fake_spec = buf };
        struct gpu_inventory *inv = NULL;
        struct rt_err err = { 0 };
        size_t len = strlen(seed);
        int r;

        memcpy(buf, seed, len + 1);
        for (unsigned k = 0; k < 1 + i % 3; k++) {
            rnd = rnd * 1103515245 + 12345;
            buf[(rnd >> 8) % len] = "0123456789x:,=.gGMabz \377"[(rnd >> 16) % 24];
        }
        r = gpu_inventory_load(&cfg, &inv, &err);
        loaded += r == 0;
        refused += r == -EINVAL;
        other += r != 0 && r != -EINVAL;
        gpu_inventory_free(inv);
    }
    ok(loaded > 0 && refused > 0, "mutations: %u loaded, %u refused", loaded, refused);
    is_int(other, 0, "nothing but success or -EINVAL");
}

/* Real character devices: mknod needs CAP_MKNOD, which root has here and in CI. */
static void test_fake_nodes(void)
{
    char dir[] = "/tmp/gpu-fake-XXXXXX", path[512];
    struct gpu_config cfg = { .backend = "fake",
                              .fake_spec = "1xt4:16G,1xa100:80G:mig=1x3g.40gb",
                              .fake_dev_dir = dir };
    struct gpu_inventory *inv = NULL;
    struct rt_err err = { 0 };
    struct stat st;
    int r;

    if (!mkdtemp(dir)) {
        ok(0, "mkdtemp");
        return;
    }
    is_int(gpu_inventory_load(&cfg, &inv, &err), -ENOENT, "missing nodes are refused");
    ok(strstr(err.msg, "nvidia0") != NULL, "the message names the node: %s", err.msg);
    r = gpu_fake_mknod(dir, cfg.fake_spec, &err);
    if (r == -EPERM) {
        printf("# skip: mknod needs CAP_MKNOD\n");
    } else {
        is_int(r, 0, "gpu_fake_mknod");
        (void) snprintf(path, sizeof(path), "%s/nvidia1", dir);
        ok(stat(path, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 120 &&
               minor(st.st_rdev) == 1,
           "nvidia1 is char 120:1");
        /* Major 120 has no driver: opening the node reaches nothing. */
        {
            int fd = open(path, O_RDWR | O_CLOEXEC);

            ok(fd < 0 && errno == ENXIO, "opening a fake node fails with ENXIO");
            fd = rt_close(fd);
        }
        is_int(gpu_inventory_load(&cfg, &inv, &err), 0, "inventory over real nodes");
        if (inv) {
            is_int(inv->n_units, 2, "t4 + one MIG instance");
            (void) snprintf(path, sizeof(path), "%s/nvidia-caps/nvidia-cap17", dir);
            is_str(inv->units[1].nodes[5].path, path, "MIG cap node under the dev dir");
            is_int(inv->units[1].nodes[5].major, 122, "caps major read from the node");
            gpu_inventory_free(inv);
            inv = NULL;
        }
        /* A regular file where a node should be is refused. */
        (void) snprintf(path, sizeof(path), "%s/nvidia0", dir);
        (void) unlink(path);
        {
            _cleanup_close_ int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
            ok(fd >= 0, "plant a regular file");
        }
        is_int(gpu_inventory_load(&cfg, &inv, &err), -EINVAL, "non-device node refused");
        ok(strstr(err.msg, "not a character device") != NULL, "says why: %s", err.msg);
    }
    {
        char cmd[600];

        (void) snprintf(cmd, sizeof(cmd), "%s/nvidia-caps", dir);
        /* Tidy: the nodes, the caps dir, the dir. */
        for (int pass = 0; pass < 2; pass++) {
            static const char *const names[] = { "nvidia0",
                                                 "nvidia1",
                                                 "nvidiactl",
                                                 "nvidia-modeset",
                                                 "nvidia-uvm",
                                                 "nvidia-uvm-tools",
                                                 "nvidia-caps/nvidia-cap17",
                                                 "nvidia-caps/nvidia-cap18" };
            for (size_t i = 0; pass == 0 && i < ARRAY_SIZE(names); i++) {
                (void) snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
                (void) unlink(path);
            }
            if (pass == 1) {
                (void) rmdir(cmd);
                ok(rmdir(dir) == 0, "temp dir removed (nothing else was created)");
            }
        }
    }
}

static void test_nvml_absent(void)
{
    struct gpu_config cfg = { .backend = "nvml" };
    struct gpu_inventory *inv = NULL;
    struct rt_err err = { 0 };
    int r;

    r = gpu_inventory_load(&cfg, &inv, &err);
    if (r == 0) {
        /* A machine with the driver: what NVML says must look like a GPU. */
        ok(inv->n_gpus > 0 && inv->n_units > 0, "driver present: %zu gpus", inv->n_gpus);
        ok(inv->driver[0] != '\0', "driver version '%s'", inv->driver);
        for (size_t i = 0; i < inv->n_units; i++) {
            const struct gpu_unit *u = &inv->units[i];

            ok(strncmp(u->uuid, u->mig_gi < 0 ? "GPU-" : "MIG-", 4) == 0, "uuid '%s'", u->uuid);
            ok(u->kind[0] && u->memory > (1ULL << 30), "kind '%s', %llu bytes", u->kind,
               (unsigned long long) u->memory);
            ok(u->n_nodes >= 2 && u->nodes[0].major == 195 && u->nodes[1].minor == 255,
               "nodes: /dev/nvidiaN and nvidiactl");
        }
        gpu_inventory_free(inv);
        return; /* tap_done() checks that NVML left no fd behind (it probes in a child) */
    }
    is_int(r, -ENODEV, "no driver: -ENODEV");
    ok(strstr(err.msg, "NVIDIA driver not available") && strstr(err.msg, "libnvidia-ml.so.1"),
       "clear message: %s", err.msg);
    ok(inv == NULL, "nothing returned");
    cfg.nvml_library = "/nonexistent/libnvidia-ml.so.1";
    is_int(gpu_inventory_load(&cfg, &inv, &err), -ENODEV, "explicit missing library");
    /* A library that loads but is not NVML. */
    cfg.nvml_library = "libm.so.6";
    is_int(gpu_inventory_load(&cfg, &inv, &err), -ENODEV, "a library without NVML symbols");
    ok(strstr(err.msg, "lacks 'nvmlInit_v2'") != NULL, "names the missing symbol: %s", err.msg);
}

static void test_backends(void)
{
    struct gpu_config cfg = { .backend = "none" };
    struct gpu_inventory *inv = NULL;
    struct rt_err err = { 0 };

    is_int(gpu_inventory_load(&cfg, &inv, &err), 0, "'none' backend loads");
    if (inv)
        is_int(inv->n_units, 0, "'none' has no units");
    gpu_inventory_free(inv);
    cfg.backend = "cuda";
    is_int(gpu_inventory_load(&cfg, &inv, &err), -EINVAL, "unknown backend");
    is_str(err.msg, "unknown gpu backend 'cuda' (nvml, fake or none)", "unknown backend message");
}

static int write_file(const char *path, const char *text)
{
    _cleanup_close_ int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);

    return fd >= 0 && write(fd, text, strlen(text)) == (ssize_t) strlen(text) ? 0 : -1;
}

static void test_proc_parsers(void)
{
    char devices[] = "/tmp/gpu-devices-XXXXXX", minors[] = "/tmp/gpu-minors-XXXXXX";
    unsigned v = 0;
    int fd;

    fd = mkstemp(devices);
    fd = rt_close(fd);
    fd = mkstemp(minors);
    fd = rt_close(fd);
    ok(write_file(devices,
                  "Character devices:\n  1 mem\n195 nvidia-frontend\n"
                  "235 nvidia-caps\n511 nvidia-uvm\n\nBlock devices:\n 44 nvidia-uvm\n") == 0,
       "write devices");
    is_int(gpu__proc_devices_major(devices, "nvidia-uvm", &v), 0, "uvm major found");
    is_int(v, 511, "uvm major is the character one");
    is_int(gpu__proc_devices_major(devices, "nvidia-caps", &v), 0, "caps major found");
    is_int(v, 235, "caps major");
    is_int(gpu__proc_devices_major(devices, "nvidia-modeset", &v), -ENOENT, "absent major");
    ok(write_file(minors, "config 1\nmonitor 2\ngpu0/gi1/access 12\ngpu0/gi1/ci0/access 13\n"
                          "gpu1/gi1/access 147\ngpu1/gi1/ci0/access 148\n") == 0,
       "write mig-minors");
    is_int(gpu__mig_minor(minors, 1, 1, -1, &v), 0, "gi access of gpu 1");
    is_int(v, 147, "gi minor");
    is_int(gpu__mig_minor(minors, 0, 1, 0, &v), 0, "ci access of gpu 0");
    is_int(v, 13, "ci minor");
    is_int(gpu__mig_minor(minors, 0, 2, -1, &v), -ENOENT, "absent instance");
    is_int(gpu__mig_minor("/nonexistent", 0, 1, -1, &v), -ENOENT, "absent file");
    (void) unlink(devices);
    (void) unlink(minors);
}

int main(void)
{
    tap_start();
    test_kinds();
    test_backends();
    test_fake_synthetic();
    test_fake_bad_specs();
    test_fake_spec_mutations();
    test_fake_nodes();
    test_nvml_absent();
    test_proc_parsers();
    return tap_done();
}
