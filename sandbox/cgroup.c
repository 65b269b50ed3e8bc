/* Cgroups, one controller at a time: each is driven on whichever hierarchy holds it, so a
 * hybrid host (controllers on v1, hugetlb alone on v2, as on our CI machine) works where
 * crun refuses.  v1 needs one directory per hierarchy; v2 one directory in all. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "devcg.h"
#include "sandbox.h"
#include "util.h"
#include "banned.h"

static const char *const ctl_names[_SBX_CTL_MAX] = {
    [SBX_CTL_CPU] = "cpu",         [SBX_CTL_MEMORY] = "memory",   [SBX_CTL_PIDS] = "pids",
    [SBX_CTL_FREEZER] = "freezer", [SBX_CTL_DEVICES] = "devices",
};

#define SBX_DEV_RULES_MAX 64

struct sbx_cgroup {
    char dir[_SBX_CTL_MAX][512]; /* "" when the controller is not used */
    int version[_SBX_CTL_MAX];
    bool fake;
    /* v2 devices: the allowlist program attached to the group, and its rules */
    int devprog_fd;
    struct rt_dev_rule dev_rules[SBX_DEV_RULES_MAX];
    size_t n_dev_rules;
};

/* --- detection --------------------------------------------------------------------------- */

static int ctl_from_name(const char *name)
{
    for (int i = 0; i < _SBX_CTL_MAX; i++)
        if (strcmp(name, ctl_names[i]) == 0)
            return i;
    return -1;
}

static void read_v2_controllers(struct sbx_cgroup_host *host)
{
    char path[300], buf[512], *save = NULL;
    _cleanup_close_ int fd = -1;
    ssize_t n;

    (void) snprintf(path, sizeof(path), "%s/cgroup.controllers", host->v2);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    n = rt_read_all(fd, buf, sizeof(buf) - 1);
    if (n < 0)
        return;
    buf[n] = '\0';
    for (char *tok = strtok_r(buf, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
        int c = ctl_from_name(tok);
        if (c >= 0)
            host->v2_mask |= 1u << c;
    }
}

int sbx_cgroup_host_detect(const char *mountinfo, struct sbx_cgroup_host *ret, struct rt_err *err)
{
    _cleanup_fclose_ FILE *f = NULL;
    struct sbx_cgroup_host host;
    char line[4096];

    memset(&host, 0, sizeof(host));
    f = fopen(mountinfo ? mountinfo : "/proc/self/mountinfo", "re");
    if (!f)
        return rt_err_set(err, errno, "open '%s'", mountinfo ? mountinfo : "/proc/self/mountinfo");
    while (fgets(line, sizeof(line), f)) {
        char *fields[12], *save = NULL, *dash, *tail[3], *tsave = NULL;
        int nf = 0;

        dash = strstr(line, " - ");
        if (!dash)
            continue;
        *dash = '\0';
        for (char *t = strtok_r(line, " ", &save); t && nf < 12; t = strtok_r(NULL, " ", &save))
            fields[nf++] = t;
        if (nf < 5 || strcmp(fields[3], "/") != 0)
            continue; /* a bind of a sub-directory is not the hierarchy's root */
        tail[0] = strtok_r(dash + 3, " \n", &tsave);
        tail[1] = tail[0] ? strtok_r(NULL, " \n", &tsave) : NULL;
        tail[2] = tail[1] ? strtok_r(NULL, " \n", &tsave) : NULL;
        if (!tail[2] || strlen(fields[4]) >= sizeof(host.v2))
            continue;
        if (strcmp(tail[0], "cgroup2") == 0 && !host.v2[0]) {
            (void) snprintf(host.v2, sizeof(host.v2), "%s", fields[4]);
        } else if (strcmp(tail[0], "cgroup") == 0) {
            char *osave = NULL;
            for (char *o = strtok_r(tail[2], ",", &osave); o; o = strtok_r(NULL, ",", &osave)) {
                int c = ctl_from_name(o);
                if (c >= 0 && !host.v1[c][0])
                    (void) snprintf(host.v1[c], sizeof(host.v1[c]), "%s", fields[4]);
            }
        }
    }
    if (host.v2[0])
        read_v2_controllers(&host);
    *ret = host;
    return 0;
}

int sbx_cgroup_host_version(const struct sbx_cgroup_host *host, enum sbx_ctl ctl)
{
    if (ctl >= _SBX_CTL_MAX)
        return 0;
    if (host->v1[ctl][0])
        return 1;
    if (!host->v2[0])
        return 0;
    /* v2's freezer is built into every group, and so is device control: an eBPF
     * program attached to the group (common/devcg.h) */
    if (ctl == SBX_CTL_FREEZER || ctl == SBX_CTL_DEVICES)
        return 2;
    return (host->v2_mask & (1u << ctl)) ? 2 : 0;
}

/* --- file helpers ------------------------------------------------------------------------ */

static int cg_write(const struct sbx_cgroup *cg, const char *dir, const char *file, const char *val,
                    struct rt_err *err)
{
    _cleanup_close_ int fd = -1;
    char path[600];
    int r;

    (void) snprintf(path, sizeof(path), "%s/%s", dir, file);
    /* the kernel creates control files; only the fake cgroupfs of the tests needs O_CREAT */
    fd = open(path, O_WRONLY | O_CLOEXEC | (cg->fake ? O_CREAT | O_TRUNC : 0), 0644);
    if (fd < 0)
        return rt_err_set(err, errno, "open '%s'", path);
    r = rt_write_all(fd, val, strlen(val));
    if (r < 0)
        return rt_err_set(err, -r, "write '%s' to '%s'", val, path);
    return 0;
}

static int cg_read(const char *dir, const char *file, char *buf, size_t len, struct rt_err *err)
{
    _cleanup_close_ int fd = -1;
    char path[600];
    ssize_t n;

    (void) snprintf(path, sizeof(path), "%s/%s", dir, file);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rt_err_set(err, errno, "open '%s'", path);
    n = rt_read_all(fd, buf, len - 1);
    if (n < 0)
        return rt_err_set(err, (int) -n, "read '%s'", path);
    buf[n] = '\0';
    return 0;
}

/* Reads a number; "max" or v1's "unlimited" huge values read as 0 ("no limit"). */
static int cg_read_u64(const char *dir, const char *file, uint64_t *ret, struct rt_err *err)
{
    char buf[64];
    int r = cg_read(dir, file, buf, sizeof(buf), err);
    uint64_t v;

    if (r < 0)
        return r;
    buf[strcspn(buf, " \n")] = '\0';
    if (strcmp(buf, "max") == 0 || strcmp(buf, "-1") == 0) {
        *ret = 0;
        return 0;
    }
    if (rt_parse_u64(buf, &v) < 0)
        return rt_err_set(err, EINVAL, "'%s/%s' holds '%s', not a number", dir, file, buf);
    *ret = v >= (1ULL << 62) ? 0 : v;
    return 0;
}

/* Finds "key N" in a flat-keyed file (memory.events, memory.oom_control). */
static int cg_read_key(const char *dir, const char *file, const char *key, uint64_t *ret,
                       struct rt_err *err)
{
    char buf[2048], *save = NULL;
    size_t klen = strlen(key);
    int r = cg_read(dir, file, buf, sizeof(buf), err);

    if (r < 0)
        return r;
    for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (strncmp(l, key, klen) == 0 && l[klen] == ' ')
            return rt_parse_u64(l + klen + 1, ret) < 0
                       ? rt_err_set(err, EINVAL, "bad '%s' line in '%s/%s'", key, dir, file)
                       : 0;
    }
    *ret = 0;
    return 0;
}

static int mkdir_p(const char *path, struct rt_err *err)
{
    char buf[512];
    size_t len = strlen(path);

    if (len >= sizeof(buf))
        return rt_err_set(err, ENAMETOOLONG, "cgroup path '%s'", path);
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return rt_err_set(err, errno, "create cgroup '%s'", buf);
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return rt_err_set(err, errno, "create cgroup '%s'", buf);
    return 0;
}

static void closedirp(DIR **d)
{
    if (*d)
        (void) closedir(*d);
}

static bool seen_dir(const struct sbx_cgroup *cg, int upto, const char *dir)
{
    for (int i = 0; i < upto; i++)
        if (strcmp(cg->dir[i], dir) == 0)
            return true;
    return false;
}

/* --- creation ---------------------------------------------------------------------------- */

/* v2's "no internal process" rule: a controller must be enabled in every ancestor's
 * subtree_control before a leaf can use it. */
static int v2_enable(const struct sbx_cgroup_host *host, const struct sbx_cgroup *cg,
                     const char *parent, unsigned mask, struct rt_err *err)
{
    char want[64] = "", dir[512];
    const char *p = parent;
    int r;

    for (int c = 0; c < _SBX_CTL_MAX; c++) {
        if ((mask & (1u << c)) && c != SBX_CTL_FREEZER && c != SBX_CTL_DEVICES) {
            (void) snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s+%s",
                            want[0] ? " " : "", ctl_names[c]);
        }
    }
    if (!want[0])
        return 0;
    (void) snprintf(dir, sizeof(dir), "%s", host->v2);
    for (;;) {
        r = cg_write(cg, dir, "cgroup.subtree_control", want, err);
        if (r < 0)
            return r;
        if (!*p)
            break;
        const char *slash = strchrnul(p, '/');
        (void) snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "/%.*s", (int) (slash - p),
                        p);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            return rt_err_set(err, errno, "create cgroup '%s'", dir);
        p = *slash ? slash + 1 : slash;
    }
    return 0;
}

static const char *const default_devices[] = {
    "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
    "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm",
};

/* v2: (re)attaches the program allowing cg->dev_rules, replacing the previous one
 * atomically, so there is never a moment with no program (every device open). */
static int attach_dev_program(struct sbx_cgroup *cg, struct rt_err *err)
{
    _cleanup_close_ int dir_fd = -1;
    int fd;

    if (cg->fake)
        return 0;
    dir_fd = open(cg->dir[SBX_CTL_DEVICES], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
        return rt_err_set(err, errno, "open cgroup '%s'", cg->dir[SBX_CTL_DEVICES]);
    fd = rt_devcg_v2_attach(dir_fd, cg->dev_rules, cg->n_dev_rules, cg->devprog_fd, err);
    if (fd < 0)
        return rt_err_wrap(err, "device rules of cgroup '%s'", cg->dir[SBX_CTL_DEVICES]);
    (void) rt_close(cg->devprog_fd);
    cg->devprog_fd = fd;
    return 0;
}

static int add_dev_rule(struct sbx_cgroup *cg, char type, int major, int minor, unsigned access,
                        struct rt_err *err)
{
    if (cg->n_dev_rules == SBX_DEV_RULES_MAX)
        return rt_err_set(err, ENOSPC, "more than %d device rules", SBX_DEV_RULES_MAX);
    cg->dev_rules[cg->n_dev_rules++] =
        (struct rt_dev_rule){ .type = type, .major = major, .minor = minor, .access = access };
    return 0;
}

/* The v2 twin of default_devices (v1 strings below): what a minimal /dev holds. */
static int default_dev_rules(struct sbx_cgroup *cg, struct rt_err *err)
{
    static const int nodes[][2] = { { 1, 3 }, { 1, 5 }, { 1, 7 }, { 1, 8 },
                                    { 1, 9 }, { 5, 0 }, { 5, 2 }, { 136, -1 } };
    unsigned all = RT_DEV_READ | RT_DEV_WRITE | RT_DEV_MKNOD;
    int r = 0;

    for (size_t i = 0; i < ARRAY_SIZE(nodes) && r == 0; i++)
        r = add_dev_rule(cg, 'c', nodes[i][0], nodes[i][1], all, err);
    return r;
}

static int write_limits(struct sbx_cgroup *cg, const struct sbx_cgroup_limits *lim,
                        struct rt_err *err)
{
    char v[64];
    int r;

    if (cg->version[SBX_CTL_MEMORY] == 1) {
        const char *d = cg->dir[SBX_CTL_MEMORY];
        if (lim->memory_max) {
            (void) snprintf(v, sizeof(v), "%" PRIu64, lim->memory_max);
            if ((r = cg_write(cg, d, "memory.limit_in_bytes", v, err)) < 0)
                return r;
            /* v1's memsw is memory plus swap; absent when swap accounting is off */
            (void) snprintf(v, sizeof(v), "%" PRIu64, lim->memory_max + lim->swap_max);
            r = cg_write(cg, d, "memory.memsw.limit_in_bytes", v, err);
            if (r < 0 && r != -ENOENT)
                return r;
        }
    } else if (cg->version[SBX_CTL_MEMORY] == 2) {
        const char *d = cg->dir[SBX_CTL_MEMORY];
        if (lim->memory_max) {
            (void) snprintf(v, sizeof(v), "%" PRIu64, lim->memory_max);
            if ((r = cg_write(cg, d, "memory.max", v, err)) < 0)
                return r;
            (void) snprintf(v, sizeof(v), "%" PRIu64, lim->swap_max);
            r = cg_write(cg, d, "memory.swap.max", v, err);
            if (r < 0 && r != -ENOENT)
                return r;
        }
        /* kill the whole sandbox on OOM, not one random process of it */
        r = cg_write(cg, d, "memory.oom.group", "1", err);
        if (r < 0 && r != -ENOENT)
            return r;
    }
    if (cg->version[SBX_CTL_PIDS] && lim->pids_max) {
        (void) snprintf(v, sizeof(v), "%" PRIu64, lim->pids_max);
        if ((r = cg_write(cg, cg->dir[SBX_CTL_PIDS], "pids.max", v, err)) < 0)
            return r;
    }
    if (cg->version[SBX_CTL_CPU] == 1 && lim->cpu_milli) {
        if ((r = cg_write(cg, cg->dir[SBX_CTL_CPU], "cpu.cfs_period_us", "100000", err)) < 0)
            return r;
        (void) snprintf(v, sizeof(v), "%" PRIu64, (uint64_t) lim->cpu_milli * 100);
        if ((r = cg_write(cg, cg->dir[SBX_CTL_CPU], "cpu.cfs_quota_us", v, err)) < 0)
            return r;
    } else if (cg->version[SBX_CTL_CPU] == 2 && lim->cpu_milli) {
        (void) snprintf(v, sizeof(v), "%" PRIu64 " 100000", (uint64_t) lim->cpu_milli * 100);
        if ((r = cg_write(cg, cg->dir[SBX_CTL_CPU], "cpu.max", v, err)) < 0)
            return r;
    }
    if (cg->version[SBX_CTL_DEVICES] == 1) {
        /* default deny: only the nodes a minimal /dev holds (GPUs are added later) */
        if ((r = cg_write(cg, cg->dir[SBX_CTL_DEVICES], "devices.deny", "a", err)) < 0)
            return r;
        for (size_t i = 0; i < ARRAY_SIZE(default_devices); i++)
            if ((r = cg_write(cg, cg->dir[SBX_CTL_DEVICES], "devices.allow", default_devices[i],
                              err)) < 0)
                return r;
    } else if (cg->version[SBX_CTL_DEVICES] == 2) {
        if ((r = default_dev_rules(cg, err)) < 0 || (r = attach_dev_program(cg, err)) < 0)
            return r;
    }
    return 0;
}

int sbx_cgroup_create(const struct sbx_cgroup_host *host, const char *parent, const char *name,
                      const struct sbx_cgroup_limits *lim, struct sbx_cgroup **ret,
                      struct rt_err *err)
{
    struct sbx_cgroup *cg;
    unsigned v2_used = 0;
    int r;

    if (!parent || !name || !*name || strchr(name, '/') || strstr(parent, ".."))
        return rt_err_set(err, EINVAL, "bad cgroup name '%s/%s'", parent ? parent : "",
                          name ? name : "");
    cg = calloc(1, sizeof(*cg));
    if (!cg)
        return rt_err_set(err, ENOMEM, "allocate cgroup");
    cg->fake = host->fake;
    cg->devprog_fd = -1;
    for (int c = 0; c < _SBX_CTL_MAX; c++) {
        int v = sbx_cgroup_host_version(host, (enum sbx_ctl) c);
        const char *base = v == 1 ? host->v1[c] : host->v2;

        cg->version[c] = v;
        if (v == 0)
            continue;
        if (v == 2)
            v2_used |= 1u << c;
        (void) snprintf(cg->dir[c], sizeof(cg->dir[c]), "%s/%s/%s", base, parent, name);
    }
    if (v2_used && (r = v2_enable(host, cg, parent, v2_used, err)) < 0)
        goto fail;
    for (int c = 0; c < _SBX_CTL_MAX; c++) {
        if (!cg->dir[c][0] || seen_dir(cg, c, cg->dir[c]))
            continue;
        if ((r = mkdir_p(cg->dir[c], err)) < 0)
            goto fail;
        if (cg->version[c] == 1 && c == SBX_CTL_FREEZER && cg->fake)
            (void) cg_write(cg, cg->dir[c], "freezer.state", "THAWED", err);
    }
    if ((r = write_limits(cg, lim, err)) < 0)
        goto fail;
    *ret = cg;
    return 0;
fail:
    (void) sbx_cgroup_destroy(cg, NULL);
    return r;
}

int sbx_cgroup_allow_device(struct sbx_cgroup *cg, char type, unsigned major, unsigned minor,
                            struct rt_err *err)
{
    char v[64];
    int r;

    if (major > INT32_MAX || minor > INT32_MAX)
        return rt_err_set(err, EINVAL, "device %u:%u", major, minor);
    if (cg->version[SBX_CTL_DEVICES] == 2) {
        r = add_dev_rule(cg, type, (int) major, (int) minor, RT_DEV_READ | RT_DEV_WRITE, err);
        return r < 0 ? r : attach_dev_program(cg, err);
    }
    if (cg->version[SBX_CTL_DEVICES] != 1)
        return 0;
    (void) snprintf(v, sizeof(v), "%c %u:%u rw", type, major, minor);
    return cg_write(cg, cg->dir[SBX_CTL_DEVICES], "devices.allow", v, err);
}

int sbx_cgroup_allow_below(struct sbx_cgroup *cg, const dev_t *devs, size_t n, struct rt_err *err)
{
    const char *dir = cg->dir[SBX_CTL_DEVICES];
    size_t had = cg->n_dev_rules;
    char procs[32];
    int r;

    if (cg->version[SBX_CTL_DEVICES] != 2)
        return rt_err_set(err, EOPNOTSUPP, "devices below the group: cgroup v2 only");
    /* its own processes would get them too: only children, with programs of their own */
    if ((r = cg_read(dir, "cgroup.procs", procs, sizeof(procs), err)) < 0)
        return r;
    if (procs[0])
        return rt_err_set(err, EBUSY, "cgroup '%s' still holds processes of its own", dir);
    for (size_t i = 0; i < n; i++) {
        int maj = (int) major(devs[i]), min = (int) minor(devs[i]);
        bool seen = false;

        for (size_t j = 0; j < cg->n_dev_rules && !seen; j++)
            seen = cg->dev_rules[j].type == 'c' && cg->dev_rules[j].major == maj &&
                   cg->dev_rules[j].minor == min;
        if (!seen && (r = add_dev_rule(cg, 'c', maj, min, RT_DEV_READ | RT_DEV_WRITE, err)) < 0)
            goto undo;
    }
    if (cg->n_dev_rules == had || (r = attach_dev_program(cg, err)) == 0)
        return 0;
undo:
    cg->n_dev_rules = had; /* the attached program is still the one without them */
    return r;
}

int sbx_cgroup_add_pid(struct sbx_cgroup *cg, pid_t pid, struct rt_err *err)
{
    char v[32];
    int r;

    (void) snprintf(v, sizeof(v), "%d", (int) pid);
    for (int c = 0; c < _SBX_CTL_MAX; c++) {
        if (!cg->dir[c][0] || seen_dir(cg, c, cg->dir[c]))
            continue;
        if ((r = cg_write(cg, cg->dir[c], "cgroup.procs", v, err)) < 0)
            return r;
    }
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
    (void) nanosleep(&ts, NULL);
}

int sbx_cgroup_freeze(struct sbx_cgroup *cg, bool frozen, struct rt_err *err)
{
    const char *d = cg->dir[SBX_CTL_FREEZER];
    char buf[512];
    int r;

    if (cg->version[SBX_CTL_FREEZER] == 0)
        return rt_err_set(err, ENOTSUP, "no freezer controller on this host");
    if (cg->version[SBX_CTL_FREEZER] == 1) {
        if ((r = cg_write(cg, d, "freezer.state", frozen ? "FROZEN" : "THAWED", err)) < 0)
            return r;
        for (int i = 0; frozen && i < 200; i++) {
            if ((r = cg_read(d, "freezer.state", buf, sizeof(buf), err)) < 0)
                return r;
            if (strncmp(buf, "FROZEN", 6) == 0)
                return 0;
            sleep_ms(5);
        }
        return frozen ? rt_err_set(err, ETIMEDOUT, "freeze '%s'", d) : 0;
    }
    if ((r = cg_write(cg, d, "cgroup.freeze", frozen ? "1" : "0", err)) < 0)
        return r;
    for (int i = 0; frozen && !cg->fake && i < 200; i++) {
        uint64_t v;
        if ((r = cg_read_key(d, "cgroup.events", "frozen", &v, err)) < 0)
            return r;
        if (v == 1)
            return 0;
        sleep_ms(5);
    }
    return frozen && !cg->fake ? rt_err_set(err, ETIMEDOUT, "freeze '%s'", d) : 0;
}

int sbx_cgroup_read_limits(const struct sbx_cgroup *cg, struct sbx_cgroup_limits *ret,
                           struct rt_err *err)
{
    struct sbx_cgroup_limits lim = { 0 };
    char buf[128];
    uint64_t v;
    int r;

    if (cg->version[SBX_CTL_MEMORY] == 1) {
        const char *d = cg->dir[SBX_CTL_MEMORY];
        if ((r = cg_read_u64(d, "memory.limit_in_bytes", &lim.memory_max, err)) < 0)
            return r;
        if (lim.memory_max && cg_read_u64(d, "memory.memsw.limit_in_bytes", &v, NULL) == 0 &&
            v >= lim.memory_max)
            lim.swap_max = v - lim.memory_max;
    } else if (cg->version[SBX_CTL_MEMORY] == 2) {
        const char *d = cg->dir[SBX_CTL_MEMORY];
        if ((r = cg_read_u64(d, "memory.max", &lim.memory_max, err)) < 0)
            return r;
        if (cg_read_u64(d, "memory.swap.max", &v, NULL) == 0)
            lim.swap_max = v;
    }
    if (cg->version[SBX_CTL_PIDS] &&
        (r = cg_read_u64(cg->dir[SBX_CTL_PIDS], "pids.max", &lim.pids_max, err)) < 0)
        return r;
    if (cg->version[SBX_CTL_CPU] == 1) {
        uint64_t period;
        if ((r = cg_read(cg->dir[SBX_CTL_CPU], "cpu.cfs_quota_us", buf, sizeof(buf), err)) < 0)
            return r;
        if (buf[0] != '-' && cg_read_u64(cg->dir[SBX_CTL_CPU], "cpu.cfs_quota_us", &v, err) == 0 &&
            cg_read_u64(cg->dir[SBX_CTL_CPU], "cpu.cfs_period_us", &period, err) == 0 && period)
            lim.cpu_milli = (uint32_t) (v * 1000 / period);
    } else if (cg->version[SBX_CTL_CPU] == 2) {
        unsigned long long q, period;
        if ((r = cg_read(cg->dir[SBX_CTL_CPU], "cpu.max", buf, sizeof(buf), err)) < 0)
            return r;
        if (sscanf(buf, "%llu %llu", &q, &period) == 2 && period)
            lim.cpu_milli = (uint32_t) (q * 1000 / period);
    }
    *ret = lim;
    return 0;
}

int sbx_cgroup_oom_kills(const struct sbx_cgroup *cg, uint64_t *ret, struct rt_err *err)
{
    if (cg->version[SBX_CTL_MEMORY] == 1)
        return cg_read_key(cg->dir[SBX_CTL_MEMORY], "memory.oom_control", "oom_kill", ret, err);
    if (cg->version[SBX_CTL_MEMORY] == 2)
        return cg_read_key(cg->dir[SBX_CTL_MEMORY], "memory.events", "oom_kill", ret, err);
    *ret = 0;
    return 0;
}

const char *sbx_cgroup_path(const struct sbx_cgroup *cg, enum sbx_ctl ctl)
{
    if (!cg || ctl >= _SBX_CTL_MAX || !cg->dir[ctl][0])
        return NULL;
    return cg->dir[ctl];
}

/* Sends SIGKILL to every pid listed in @dir/cgroup.procs; returns how many were listed. */
static int kill_listed(const char *dir)
{
    char buf[8192], *save = NULL;
    int n = 0;

    if (cg_read(dir, "cgroup.procs", buf, sizeof(buf), NULL) < 0)
        return 0;
    for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        uint64_t pid;
        if (rt_parse_u64(l, &pid) == 0 && pid > 1 && pid < INT32_MAX) {
            (void) kill((pid_t) pid, SIGKILL);
            n++;
        }
    }
    return n;
}

int sbx_cgroup_destroy(struct sbx_cgroup *cg, struct rt_err *err)
{
    int ret = 0;

    if (!cg)
        return 0;
    for (int c = 0; c < _SBX_CTL_MAX; c++) {
        const char *d = cg->dir[c];

        if (!d[0] || seen_dir(cg, c, d))
            continue;
        if (cg->fake) {
            /* a fake cgroupfs is an ordinary directory: empty it first */
            _cleanup_(closedirp) DIR *dd = opendir(d);
            struct dirent *e;
            char p[700];
            while (dd && (e = readdir(dd))) {
                if (e->d_name[0] == '.')
                    continue;
                (void) snprintf(p, sizeof(p), "%s/%s", d, e->d_name);
                (void) unlink(p);
            }
        }
        for (int i = 0; i < 400; i++) {
            if (rmdir(d) == 0 || errno == ENOENT)
                break;
            if (errno != EBUSY) {
                if (!ret)
                    ret = rt_err_set(err, errno, "remove cgroup '%s'", d);
                break;
            }
            /* dying tasks keep a v1 group busy for a moment after their init is gone */
            if (i % 20 == 0 && cg->version[c] == 2 && access(d, F_OK) == 0)
                (void) cg_write(cg, d, "cgroup.kill", "1", NULL);
            if (i % 20 == 0)
                (void) kill_listed(d);
            sleep_ms(i < 20 ? 1 : 5);
            if (i == 399 && !ret)
                ret = rt_err_set(err, EBUSY, "remove cgroup '%s'", d);
        }
    }
    (void) rt_close(cg->devprog_fd);
    free(cg);
    return ret;
}
