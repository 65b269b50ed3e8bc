/* spec.json for a Space's shim.  The layers are mounted where the build made them
 * (build.h: a venv records its own absolute path; the deps layer is the venv the
 * templates name), and HOME is a small writable tmpfs under them. */
#include "runspec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "resolv.h"
#include "spaceconfig.h"
#include "template.h"
#include "util.h"
#include "banned.h"

#define README_MAX (256 * 1024)
#define HOME_DIR "/home/user"
#define HOME_SIZE (256ULL << 20)
#define DEFAULT_PIDS 4096

static int read_readme(const char *app_layer, char **ret, size_t *ret_len, struct rt_err *err)
{
    _cleanup_close_ int fd = -1;
    _cleanup_free_ char *buf = NULL;
    char path[4200];
    ssize_t n;

    (void) snprintf(path, sizeof(path), "%s/README.md", app_layer);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return rt_err_set(err, errno, "read README.md of the build");
    buf = malloc(README_MAX + 1);
    if (!buf)
        return rt_err_set(err, ENOMEM, "read README.md");
    n = rt_read_all(fd, buf, README_MAX);
    if (n < 0)
        return rt_err_set(err, errno, "read README.md");
    buf[n] = '\0';
    *ret_len = (size_t) n;
    *ret = TAKE_PTR(buf);
    return 0;
}

static int add_mount(json_t *mounts, const char *kind, const char *src, const char *dst,
                     uint64_t size)
{
    json_t *m = json_pack("{s:s, s:s}", "kind", kind, "dst", dst);

    if (!m)
        return -ENOMEM;
    if (src && json_object_set_new(m, "src", json_string(src)) < 0)
        return json_decref(m), -ENOMEM;
    if (size && json_object_set_new(m, "size", json_integer((json_int_t) size)) < 0)
        return json_decref(m), -ENOMEM;
    return json_array_append_new(mounts, m) < 0 ? -ENOMEM : 0;
}

static int mounts_of(const struct rt_runspec_in *in, json_t *mounts)
{
    int r = add_mount(mounts, "tmpfs", NULL, HOME_DIR, HOME_SIZE);

    if (r == 0)
        r = add_mount(mounts, "ro-bind", in->app_layer, in->app_mount, 0);
    if (r == 0 && in->deps_layer && *in->deps_layer)
        r = add_mount(mounts, "ro-bind", in->deps_layer, in->deps_mount, 0);
    return r;
}

/* The driver's user-space files a compute container gets from the NVIDIA container
 * toolkit (research/sandbox.md section 6: utility + compute), bound read-only at their
 * host paths.  Only with a rootfs: the host's own root already shows them.  The sandbox
 * resolves each target inside the root (openat2 RESOLVE_IN_ROOT), so an image's
 * symlinks cannot redirect a bind outside it. */
static const char *const driver_bins[] = { "/usr/bin/nvidia-smi", "/usr/bin/nvidia-debugdump" };
static const char *const driver_lib_dirs[] = { "/usr/lib/x86_64-linux-gnu", "/usr/lib64",
                                               "/usr/lib/aarch64-linux-gnu", "/usr/lib" };
static const char *const driver_libs[] = {
    "libnvidia-ml.so.",        "libcuda.so.",         "libnvidia-ptxjitcompiler.so.",
    "libnvidia-nvvm.so.",      "libcudadebugger.so.", "libnvidia-gpucomp.so.",
    "libnvidia-allocator.so.", "libnvidia-cfg.so.",   "libnvidia-opencl.so.",
};

static bool driver_lib(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(driver_libs); i++)
        if (strncmp(name, driver_libs[i], strlen(driver_libs[i])) == 0)
            return true;
    return false;
}

static int driver_mounts(json_t *mounts)
{
    size_t n = 0;
    int r = 0;

    for (size_t i = 0; i < ARRAY_SIZE(driver_bins) && r == 0; i++)
        if (access(driver_bins[i], X_OK) == 0)
            r = add_mount(mounts, "ro-bind", driver_bins[i], driver_bins[i], 0), n++;
    for (size_t d = 0; d < ARRAY_SIZE(driver_lib_dirs) && r == 0; d++) {
        DIR *dir = opendir(driver_lib_dirs[d]);
        struct dirent *e;
        bool found = false;

        while (dir && (e = readdir(dir)) && r == 0) {
            char path[512];
            struct stat st;

            if (!driver_lib(e->d_name))
                continue;
            (void) snprintf(path, sizeof(path), "%s/%s", driver_lib_dirs[d], e->d_name);
            if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
                continue;
            if (++n > 40) /* SBX_MAX_MOUNTS holds the app's own mounts too */
                break;
            r = add_mount(mounts, "ro-bind", path, path, 0);
            found = true;
        }
        if (dir)
            (void) closedir(dir);
        if (found) /* the first directory holding them is the driver's */
            break;
    }
    return r;
}

static void tier_extra(const struct rt_tier *t, char cores[32], char mem[32])
{
    (void) snprintf(cores, 32, "%g", t->cpus);
    if (t->memory >= (1ULL << 30) && t->memory % (1ULL << 30) == 0)
        (void) snprintf(mem, 32, "%lluGi", (unsigned long long) (t->memory >> 30));
    else
        (void) snprintf(mem, 32, "%lluMi", (unsigned long long) (t->memory >> 20));
}

/* The Space's own /etc/resolv.conf and /etc/hosts, written beside spec.json and bound
 * read-only: the host's resolver (127.0.0.53, a LAN address) is out of a Space's reach by
 * design, so a Space with egress gets the public resolvers runtimed picked (resolv.h), and
 * one without gets none (its lookups fail at once).  An image may lack /etc/hosts. */
static int write_file(const char *dir, const char *name, const char *text, struct rt_err *err)
{
    char path[4200];
    _cleanup_close_ int fd = -1;

    (void) snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return rt_err_set(err, errno, "create '%s'", path);
    /* 0644 whatever the umask: the Space's user reads it through the bind */
    if (fchmod(fd, 0644) < 0 || rt_write_all(fd, text, strlen(text)) < 0)
        return rt_err_set(err, errno, "write '%s'", path);
    return 0;
}

static int write_etc(const struct rt_runspec_in *in, const char *dir, bool egress,
                     struct rt_err *err)
{
    const char *addrs[RT_RESOLV_MAX];
    char list[128], text[512], *save = NULL, *tok;
    size_t n = 0;
    int r;

    (void) snprintf(list, sizeof(list), "%s", in->nameservers ? in->nameservers : "");
    for (tok = strtok_r(list, " ", &save); tok && egress && n < RT_RESOLV_MAX;
         tok = strtok_r(NULL, " ", &save))
        addrs[n++] = tok;
    if (rt_resolv_conf_text(addrs, n, text, sizeof(text)) < 0)
        return rt_err_set(err, ENOSPC, "resolv.conf for '%s'", in->space->host);
    r = write_file(dir, "resolv.conf", text, err);
    if (r < 0)
        return r;
    (void) snprintf(text, sizeof(text),
                    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                    "127.0.1.1\t%.63s\n",
                    in->space->host);
    return write_file(dir, "hosts", text, err);
}

static int etc_mounts(const char *dir, json_t *mounts)
{
    char src[4200];
    int r;

    (void) snprintf(src, sizeof(src), "%s/resolv.conf", dir);
    r = add_mount(mounts, "ro-bind", src, "/etc/resolv.conf", 0);
    (void) snprintf(src, sizeof(src), "%s/hosts", dir);
    return r < 0 ? r : add_mount(mounts, "ro-bind", src, "/etc/hosts", 0);
}

/* Spaces may reach the internet (as on the Hub) where the host forwards; a host that
 * does not gets Spaces without egress rather than Spaces that cannot start. */
bool rt_runspec_host_forwards(void)
{
    _cleanup_close_ int fd = open("/proc/sys/net/ipv4/ip_forward", O_RDONLY | O_CLOEXEC);
    char c = '0';

    return fd >= 0 && read(fd, &c, 1) == 1 && c == '1';
}

static int build_json(const struct rt_runspec_in *in, const struct rt_run_spec *run,
                      const char *etc_dir, bool egress, json_t **ret)
{
    const struct rt_space *s = in->space;
    json_t *root, *argv, *env, *mounts;
    char id[RT_ID_SIZE];

    (void) snprintf(id, sizeof(id), "%s/%s", s->owner, s->name);
    argv = json_array();
    env = json_array();
    mounts = json_array();
    root = json_pack("{s:s, s:o, s:o, s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:s, s:b, s:i}", "id", id,
                     "argv", argv, "env", env, "chdir", run->workdir, "mounts", mounts, "memory",
                     (json_int_t) in->tier->memory, "swap", (json_int_t) 0, "pids",
                     (json_int_t) DEFAULT_PIDS, "cpuMilli",
                     (json_int_t) (in->tier->cpus * 1000.0 + 0.5), "upperSize",
                     (json_int_t) (in->tier->disk ? in->tier->disk : (8ULL << 30)), "net", "veth",
                     "egress", egress, "port", (int) run->port);
    if (!root)
        return -ENOMEM;
    if (json_object_set_new(root, "hostname", json_sprintf("%.63s", s->host)) < 0)
        goto oom;
    for (size_t i = 0; i < run->argv.n; i++)
        if (json_array_append_new(argv, json_string(run->argv.v[i])) < 0)
            goto oom;
    for (size_t i = 0; i < run->env.n; i++)
        if (json_array_append_new(env, json_string(run->env.v[i])) < 0)
            goto oom;
    /* Every Space's output reaches its run log as it is written. */
    if (json_array_append_new(env, json_string("PYTHONUNBUFFERED=1")) < 0)
        goto oom;
    for (size_t i = 0; i < in->n_env; i++)
        if (json_array_append_new(env, json_string(in->env[i])) < 0)
            goto oom;
    if (mounts_of(in, mounts) < 0 || etc_mounts(etc_dir, mounts) < 0)
        goto oom;
    if (in->n_gpu_nodes) {
        json_t *gpus = json_array();
        char *e1 = NULL, *e2 = NULL;
        int r = 0;

        if (!gpus || json_object_set_new(root, "gpus", gpus) < 0)
            goto oom;
        /* ZeroGPU: the pool's nodes are bound, never allowed to the app (gpuzero-cg.h) */
        if (in->tier->zero && json_object_set_new(root, "gpusDeferred", json_true()) < 0)
            goto oom;
        for (size_t i = 0; i < in->n_gpu_nodes; i++)
            if (json_array_append_new(gpus, json_string(in->gpu_nodes[i])) < 0)
                goto oom;
        /* A convenience for CUDA and the tools, not isolation: the sandbox holds no other
         * GPU's node, and its device cgroup allows only these. */
        if (asprintf(&e1, "CUDA_VISIBLE_DEVICES=%s", in->gpu_visible ? in->gpu_visible : "") < 0)
            e1 = NULL;
        if (asprintf(&e2, "NVIDIA_VISIBLE_DEVICES=%s", in->gpu_visible ? in->gpu_visible : "") < 0)
            e2 = NULL;
        if (!e1 || !e2 || json_array_append_new(env, json_string(e1)) < 0 ||
            json_array_append_new(env, json_string(e2)) < 0)
            r = -ENOMEM;
        free(e1);
        free(e2);
        if (r < 0 || (in->rootfs && *in->rootfs && driver_mounts(mounts) < 0))
            goto oom;
    }
    if (in->rootfs && *in->rootfs &&
        json_object_set_new(root, "rootfs", json_string(in->rootfs)) < 0)
        goto oom;
    *ret = root;
    return 0;
oom:
    json_decref(root);
    return -ENOMEM;
}

static int write_atomic(const char *path, const char *text, struct rt_err *err)
{
    char tmp[4200];
    _cleanup_close_ int fd = -1;

    (void) snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return rt_err_set(err, errno, "create '%s'", tmp);
    if (rt_write_all(fd, text, strlen(text)) < 0 || fsync(fd) < 0)
        return rt_err_set(err, errno, "write '%s'", tmp);
    if (rename(tmp, path) < 0)
        return rt_err_set(err, errno, "rename '%s'", tmp);
    return 0;
}

int rt_runspec_write(const struct rt_runspec_in *in, const char *path, struct rt_runspec_out *ret,
                     struct rt_err *err)
{
    _cleanup_free_ char *readme = NULL, *text = NULL;
    struct rt_spaceconfig *cfg = NULL;
    struct rt_run_spec *run = NULL;
    struct rt_strmap extra = { 0 };
    const struct rt_template *t;
    char id[RT_ID_SIZE], host[RT_HOST_SIZE + 130], cores[32], mem[32], etc_dir[4096];
    json_t *root = NULL;
    bool egress;
    size_t len = 0;
    int r;

    r = read_readme(in->app_layer, &readme, &len, err);
    if (r < 0)
        return r;
    r = rt_spaceconfig_parse(readme, len, &cfg, err);
    if (r < 0)
        return rt_err_wrap(err, "README.md");
    t = rt_templates_find(in->templates, rt_sdk_name(cfg->sdk));
    if (!t) {
        r = rt_err_set(err, EOPNOTSUPP, "no template for sdk '%s'", rt_sdk_name(cfg->sdk));
        goto out;
    }
    (void) snprintf(id, sizeof(id), "%s/%s", in->space->owner, in->space->name);
    (void) snprintf(host, sizeof(host), "%s.%s", in->space->host, in->domain);
    tier_extra(in->tier, cores, mem);
    if (rt_strmap_push(&extra, "ACCELERATOR", in->tier->gpu_kind[0] ? in->tier->gpu_kind : "none") <
            0 ||
        rt_strmap_push(&extra, "CPU_CORES", cores) < 0 ||
        rt_strmap_push(&extra, "MEMORY", mem) < 0 ||
        rt_strmap_push(&extra, "SPACE_CREATOR_USER_ID", in->space->owner) < 0) {
        r = rt_err_set(err, ENOMEM, "render '%s'", id);
        goto out;
    }
    {
        struct rt_render_in rin = { .cfg = cfg, .space_id = id, .host = host, .extra = &extra };
        r = rt_template_render_run(t, &rin, &run, err);
    }
    if (r < 0)
        goto out;
    {
        const char *slash = strrchr(path, '/');
        (void) snprintf(etc_dir, sizeof(etc_dir), "%.*s", slash ? (int) (slash - path) : 1,
                        slash ? path : ".");
    }
    egress = rt_runspec_host_forwards();
    r = write_etc(in, etc_dir, egress, err);
    if (r < 0)
        goto out;
    if (build_json(in, run, etc_dir, egress, &root) < 0 ||
        !(text = json_dumps(root, JSON_COMPACT))) {
        r = rt_err_set(err, ENOMEM, "spec for '%s'", id);
        goto out;
    }
    r = write_atomic(path, text, err);
    if (r < 0)
        goto out;
    ret->port = run->port;
    (void) snprintf(ret->health_path, sizeof(ret->health_path), "%s",
                    run->health_path ? run->health_path : "/");
    ret->health_interval_ms = run->health_interval_ms ? run->health_interval_ms : 1000;
    ret->health_timeout_ms = run->health_timeout_ms ? run->health_timeout_ms : 5000;
    ret->startup_timeout_ms = run->startup_timeout_ms ? run->startup_timeout_ms : 30 * 60 * 1000;
out:
    json_decref(root);
    rt_run_spec_free(run);
    rt_strmap_done(&extra);
    rt_spaceconfig_free(cfg);
    return r;
}
