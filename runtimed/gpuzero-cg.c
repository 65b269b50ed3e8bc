/* ZeroGPU device cgroups, v1 and v2 (gpuzero-cg.h). */
#include "gpuzero-cg.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "util.h"
#include "banned.h"

#define MOVE_PASSES 50 /* v2: moving a forking app into main */

/* What every sandbox may open (sandbox/cgroup.c's v1 list), the v2 programs' base. */
#define RWM (RT_DEV_READ | RT_DEV_WRITE | RT_DEV_MKNOD)
static const struct rt_dev_rule base_rules[] = {
    { 'c', 1, 3, RWM }, { 'c', 1, 5, RWM }, { 'c', 1, 7, RWM }, { 'c', 1, 8, RWM },
    { 'c', 1, 9, RWM }, { 'c', 5, 0, RWM }, { 'c', 5, 2, RWM }, { 'c', 136, -1, RWM },
};

void zcg_roots(char v1[ZCG_PATH], char v2[ZCG_PATH])
{
    _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[2048];

    v1[0] = v2[0] = '\0';
    while (f && fgets(line, sizeof(line), f)) {
        char mnt[ZCG_PATH], fstype[32], src[64], opts[512], *sep = strstr(line, " - ");
        char *save = NULL;

        if (!sep || sscanf(line, "%*s %*s %*s %*s %511s", mnt) != 1 ||
            sscanf(sep + 3, "%31s %63s %511s", fstype, src, opts) != 3)
            continue;
        if (strcmp(fstype, "cgroup2") == 0 && !v2[0])
            (void) snprintf(v2, ZCG_PATH, "%s", mnt);
        if (strcmp(fstype, "cgroup") != 0)
            continue;
        for (char *tok = strtok_r(opts, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
            if (strcmp(tok, "devices") == 0)
                (void) snprintf(v1, ZCG_PATH, "%s", mnt);
    }
}

int zcg_of_pid(const char *v1root, const char *v2root, pid_t pid, struct zcg *ret,
               struct rt_err *err)
{
    char path[64], line[1024];
    _cleanup_fclose_ FILE *f = NULL;

    if (!v1root[0] && !v2root[0])
        return rt_err_set(err, ENOTSUP, "no devices cgroup (v1) or cgroup2 mount here");
    (void) snprintf(path, sizeof(path), "/proc/%d/cgroup", (int) pid);
    f = fopen(path, "re");
    if (!f)
        return rt_err_set(err, errno, "read '%s'", path);
    while (fgets(line, sizeof(line), f)) {
        char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
        bool v1;

        if (!b)
            continue;
        *a = *b = '\0'; /* "ID\0CONTROLLERS\0PATH" */
        b[1 + strcspn(b + 1, "\n")] = '\0';
        /* v1 when devices has a hierarchy of its own; else the unified one ("0::") */
        v1 = v1root[0] && strcmp(a + 1, "devices") == 0;
        if (!v1 && (v1root[0] || strcmp(line, "0") != 0 || a[1]))
            continue;
        if (strcmp(b + 1, "/") == 0 ||
            (size_t) snprintf(ret->dir, sizeof(ret->dir), "%s%s", v1 ? v1root : v2root, b + 1) >=
                sizeof(ret->dir))
            break;
        ret->ver = v1 ? 1 : 2;
        return 0;
    }
    return rt_err_set(err, ENOENT, "pid %d has no device cgroup of its own", (int) pid);
}

static int write_file(const char *dir, const char *file, const char *text)
{
    char path[ZCG_PATH + 32];
    _cleanup_close_ int fd = -1;

    (void) snprintf(path, sizeof(path), "%s/%s", dir, file);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || rt_write_all(fd, text, strlen(text)) < 0)
        return -errno;
    return 0;
}

/* Calls @fn for each pid in @dir/cgroup.procs; stops at a nonzero return.  Returns the
 * number of pids seen. */
static size_t each_pid(const char *dir, int (*fn)(pid_t, void *), void *ud)
{
    char path[ZCG_PATH + 32], line[32];
    _cleanup_fclose_ FILE *f = NULL;
    size_t n = 0;

    (void) snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    f = fopen(path, "re");
    while (f && fgets(line, sizeof(line), f)) {
        uint64_t v;

        line[strcspn(line, "\n")] = '\0';
        if (rt_parse_u64(line, &v) < 0 || v == 0 || v > INT32_MAX)
            continue;
        n++;
        if (fn && fn((pid_t) v, ud))
            break;
    }
    return n;
}

static void remove_group(const char *dir)
{
    /* a SIGKILLed worker leaves its group a moment after the signal */
    for (int i = 0; i < 100; i++) {
        if (rmdir(dir) == 0 || errno != EBUSY)
            return;
        (void) nanosleep(&(struct timespec){ .tv_nsec = 2000000L }, NULL);
    }
}

static int move_to(pid_t pid, void *dir)
{
    char v[32];

    (void) snprintf(v, sizeof(v), "%d", (int) pid);
    (void) write_file(dir, "cgroup.procs", v); /* a process that just exited: fine */
    return 0;
}

/* v2: every process of @from into @to, again until none is left (the app forks). */
static int move_all(const char *from, const char *to)
{
    for (int i = 0; i < MOVE_PASSES; i++)
        if (each_pid(from, move_to, (void *) to) == 0)
            return 0;
    return -EAGAIN;
}

static int v2_attach(const char *dir, const struct gpu_node *nodes, size_t n_nodes,
                     struct rt_err *err)
{
    struct rt_dev_rule rules[ARRAY_SIZE(base_rules) + GPU_NODES_MAX];
    size_t n = ARRAY_SIZE(base_rules);
    _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int prog;

    memcpy(rules, base_rules, sizeof(base_rules));
    if (nodes && gpu_dev_rules_from_nodes(nodes, n_nodes, rules, &n, ARRAY_SIZE(rules)) < 0)
        return rt_err_set(err, ENOSPC, "too many device rules for '%s'", dir);
    if (fd < 0)
        return rt_err_set(err, errno, "open cgroup '%s'", dir);
    /* The attachment holds the program; its fd is not needed afterwards. */
    prog = rt_devcg_v2_attach(fd, rules, n, -1, err);
    if (prog < 0)
        return prog;
    (void) close(prog);
    return 0;
}

int zcg_isolate(const struct zcg *cg, const struct gpu_node *nodes, size_t n, struct rt_err *err)
{
    char main_dir[ZCG_PATH + 8];
    int r;

    if (cg->ver == 1)
        return gpu_devcg_v1_deny(cg->dir, nodes, n, true, err);
    (void) snprintf(main_dir, sizeof(main_dir), "%s/main", cg->dir);
    if (mkdir(main_dir, 0755) == 0) {
        r = v2_attach(main_dir, NULL, 0, err);
        if (r < 0) {
            (void) rmdir(main_dir);
            return r;
        }
    } else if (errno != EEXIST) { /* EEXIST: a reattach; main is set up already */
        return rt_err_set(err, errno, "create cgroup '%s'", main_dir);
    }
    if (move_all(cg->dir, main_dir) < 0)
        return rt_err_set(err, EAGAIN, "the app of '%s' forks faster than it can be moved",
                          cg->dir);
    return 0;
}

void zcg_worker_dir(const struct zcg *cg, unsigned index, char *buf, size_t len)
{
    (void) snprintf(buf, len, cg->ver == 1 ? "%s.gpu-%u" : "%s/gpu-%u", cg->dir, index);
}

/* v1: a child starts with its parent's rules, and the parent of the sibling is the
 * sandboxes' common group: deny all, then allow what the sandbox allows, then the unit. */
static int v1_worker_group(const struct zcg *cg, const char *dir, const struct gpu_unit *u,
                           struct rt_err *err)
{
    char path[ZCG_PATH + 32], line[128];
    _cleanup_fclose_ FILE *f = NULL;
    int r;

    if ((r = write_file(dir, "devices.deny", "a")) < 0)
        return rt_err_set(err, -r, "deny devices in '%s'", dir);
    (void) snprintf(path, sizeof(path), "%s/devices.list", cg->dir);
    f = fopen(path, "re");
    if (!f)
        return rt_err_set(err, errno, "read '%s'", path);
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] && (r = write_file(dir, "devices.allow", line)) < 0)
            return rt_err_set(err, -r, "allow '%s' in '%s'", line, dir);
    }
    return gpu_devcg_v1_allow(dir, u->nodes, u->n_nodes, err);
}

int zcg_worker_add(const struct zcg *cg, const struct gpu_unit *u, pid_t pid, struct rt_err *err)
{
    char dir[ZCG_PATH + 32], v[32];
    bool made;
    int r;

    zcg_worker_dir(cg, u->index, dir, sizeof(dir));
    made = mkdir(dir, 0755) == 0;
    if (!made && errno != EEXIST)
        return rt_err_set(err, errno, "create cgroup '%s'", dir);
    /* v2: the program goes once, with the group (an idle worker's group is reused) */
    r = cg->ver == 1 ? v1_worker_group(cg, dir, u, err)
        : made       ? v2_attach(dir, u->nodes, u->n_nodes, err)
                     : 0;
    if (r < 0)
        return r;
    (void) snprintf(v, sizeof(v), "%d", (int) pid);
    if ((r = write_file(dir, "cgroup.procs", v)) < 0)
        return rt_err_set(err, -r, "move pid %d into '%s'", (int) pid, dir);
    return 0;
}

static int kill_pid(pid_t pid, void *ud)
{
    (void) ud;
    if (pid > 1)
        (void) kill(pid, SIGKILL);
    return 0;
}

void zcg_worker_end(const struct zcg *cg, const struct gpu_unit *u, bool kill)
{
    char dir[ZCG_PATH + 32];

    zcg_worker_dir(cg, u->index, dir, sizeof(dir));
    if (access(dir, F_OK) < 0)
        return;
    /* v1: whatever is left cannot open the unit again.  The GPU fds a process holds
     * outlive any deny, so with @kill everything in the group dies too: a worker's
     * children had the GPU as much as the worker. */
    if (cg->ver == 1)
        (void) gpu_devcg_v1_deny(dir, u->nodes, u->n_nodes, true, NULL);
    if (kill && !(cg->ver == 2 && write_file(dir, "cgroup.kill", "1") == 0)) {
        /* v1 (or a kernel before 5.14): no atomic kill; a child forked between two
         * passes is caught by the next one */
        for (int i = 0; i < 50 && each_pid(dir, kill_pid, NULL) > 0; i++)
            (void) nanosleep(&(struct timespec){ .tv_nsec = 2000000L }, NULL);
    }
    remove_group(dir);
}

struct find {
    pid_t inner, host;
};

/* The last NSpid of host pid @p is the pid it has in its own (the sandbox's) namespace. */
static int match_inner(pid_t p, void *ud)
{
    struct find *f = ud;
    char path[64], line[512];
    _cleanup_fclose_ FILE *s = NULL;
    pid_t last = 0;

    (void) snprintf(path, sizeof(path), "/proc/%d/status", (int) p);
    s = fopen(path, "re");
    while (s && fgets(line, sizeof(line), s)) {
        char *save = NULL;
        uint64_t v;

        if (strncmp(line, "NSpid:", 6) != 0)
            continue;
        for (char *tok = strtok_r(line + 6, " \t\n", &save); tok;
             tok = strtok_r(NULL, " \t\n", &save))
            last = rt_parse_u64(tok, &v) == 0 && v <= INT32_MAX ? (pid_t) v : 0;
        break;
    }
    if (last != f->inner)
        return 0;
    f->host = p;
    return 1;
}

pid_t zcg_host_pid(const struct zcg *cg, const struct gpu_unit *const *units, size_t n, pid_t pid)
{
    struct find f = { .inner = pid };
    char dir[ZCG_PATH + 32];

    (void) each_pid(cg->dir, match_inner, &f);
    if (!f.host && cg->ver == 2) {
        (void) snprintf(dir, sizeof(dir), "%s/main", cg->dir);
        (void) each_pid(dir, match_inner, &f);
    }
    for (size_t i = 0; i < n && !f.host; i++) {
        zcg_worker_dir(cg, units[i]->index, dir, sizeof(dir));
        (void) each_pid(dir, match_inner, &f);
    }
    return f.host;
}

void zcg_release(const struct zcg *cg, const struct gpu_unit *const *units, size_t n)
{
    char dir[ZCG_PATH + 32];

    /* v2: the sandbox group's own program allows the pool (the shim's allow-gpus),
     * and what moves back up runs on until the shim kills it.  A base-only program on
     * the group too (both must allow) keeps the pool denied to it meanwhile. */
    if (cg->ver == 2)
        (void) v2_attach(cg->dir, NULL, 0, NULL);
    for (size_t i = 0; i < n; i++) {
        zcg_worker_dir(cg, units[i]->index, dir, sizeof(dir));
        if (cg->ver == 2)
            (void) move_all(dir, cg->dir); /* an idle worker kept for reuse */
        if (access(dir, F_OK) == 0)
            remove_group(dir);
    }
    if (cg->ver != 2)
        return;
    /* The app goes back where the shim put it, so the shim can remove its group. */
    (void) snprintf(dir, sizeof(dir), "%s/main", cg->dir);
    (void) move_all(dir, cg->dir);
    remove_group(dir);
}
