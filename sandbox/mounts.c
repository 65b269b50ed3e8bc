/* The sandbox's filesystem: planned in the parent (sbx__plan_build), carried out in the
 * child (sbx__child_mounts) with only system calls.
 *
 * The child makes "/" private first, so nothing it mounts propagates to the host.  Every
 * host source is cloned with open_tree() before the staging tmpfs covers /tmp, then
 * placed with move_mount() onto a target opened inside the new root with
 * RESOLVE_IN_ROOT: a symlink planted in an image (/dev -> /, etc -> /etc) resolves inside
 * the root and can never point a mount or a file write at the host (CVE-2021-30465,
 * CVE-2026-41579 classes).  Fresh filesystems are made with fsopen()/fsmount(), so no
 * path of ours is ever handed to mount(2) twice. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "internal.h"
#include "util.h"
#include "banned.h"

void sbx__report_set(struct sbx__report *rep, enum sbx_step step, int err, const char *fmt, ...)
{
    va_list ap;

    rep->step = (int) step;
    rep->err = err;
    va_start(ap, fmt);
    (void) vsnprintf(rep->msg, sizeof(rep->msg), fmt, ap);
    va_end(ap);
}

/* --- plan (parent) ----------------------------------------------------------------------- */

static struct sbx__op *plan_add(struct sbx__plan *plan, enum sbx__op_kind kind, const char *src,
                                const char *dst, enum sbx_step step)
{
    struct sbx__op *op;

    if (plan->n >= SBX_MAX_OPS)
        return NULL;
    op = &plan->ops[plan->n++];
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    op->step = step;
    op->tree = -1;
    op->src = src ? src : "";
    op->dst = dst ? dst : "";
    return op;
}

/* A host path as it is: a symlink stays a symlink, a directory or file becomes a
 * read-only bind.  Absent paths are skipped. */
static int plan_mirror(struct sbx__plan *plan, const char *path, struct rt_err *err)
{
    struct sbx__op *op;
    struct stat st;
    char target[1024];
    ssize_t n;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : rt_err_set(err, errno, "stat '%s'", path);
    if (S_ISLNK(st.st_mode)) {
        n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
            return rt_err_set(err, errno, "readlink '%s'", path);
        target[n] = '\0';
        if ((size_t) n + 1 > sizeof(plan->pool) - plan->pool_used)
            return rt_err_set(err, E2BIG, "too many symlinks");
        memcpy(plan->pool + plan->pool_used, target, (size_t) n + 1);
        op = plan_add(plan, SBX_OP_SYMLINK, plan->pool + plan->pool_used, path, SBX_STEP_ROOTFS);
        plan->pool_used += (size_t) n + 1;
    } else if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
        op = plan_add(plan, SBX_OP_BIND, path, path, SBX_STEP_ROOTFS);
        if (op) {
            op->ro = op->recursive = true;
            op->is_dir = S_ISDIR(st.st_mode);
        }
    } else {
        return 0;
    }
    return op ? 0 : rt_err_set(err, E2BIG, "too many mounts");
}

/* What of the host's /etc a program needs to start, resolve names and verify TLS; never
 * passwd, shadow or anything with secrets (those are generated below). */
static const char *const etc_keep[] = {
    "/etc/ld.so.cache",    "/etc/ld.so.conf", "/etc/ld.so.conf.d",    "/etc/nsswitch.conf",
    "/etc/resolv.conf",    "/etc/host.conf",  "/etc/gai.conf",        "/etc/localtime",
    "/etc/timezone",       "/etc/ssl",        "/etc/ca-certificates", "/etc/alternatives",
    "/etc/mime.types",     "/etc/protocols",  "/etc/services",        "/etc/os-release",
    "/etc/debian_version", "/etc/python3",    "/etc/python3.11",      "/etc/terminfo",
};

/* True when the caller mounts something of its own at @path: it replaces our default. */
static bool spec_mounts_at(const struct sbx_spec *spec, const char *path)
{
    for (size_t i = 0; i < spec->n_mounts; i++)
        if (strcmp(spec->mounts[i].dst, path) == 0)
            return true;
    return false;
}

static const char *const root_dirs[] = { "/usr",   "/bin",   "/sbin",  "/lib",
                                         "/lib32", "/lib64", "/libx32" };

int sbx__plan_build(const struct sbx_spec *spec, struct sbx__plan *plan, struct rt_err *err)
{
    struct sbx__op *op;
    int r;

    plan->n = 0;
    plan->pool_used = 0;
    if (!spec->rootfs) {
        for (size_t i = 0; i < ARRAY_SIZE(root_dirs); i++)
            if ((r = plan_mirror(plan, root_dirs[i], err)) < 0)
                return r;
        if (!plan_add(plan, SBX_OP_DIR, NULL, "/etc", SBX_STEP_ROOTFS))
            return rt_err_set(err, E2BIG, "too many mounts");
        for (size_t i = 0; i < ARRAY_SIZE(etc_keep); i++)
            if (!spec_mounts_at(spec, etc_keep[i]) && (r = plan_mirror(plan, etc_keep[i], err)) < 0)
                return r;
        {
            bool own_user = spec->uid != 0 && spec->uid != 65534;
            bool own_group = spec->gid != 0 && spec->gid != 5 && spec->gid != 65534;
            char user[96] = "", group[64] = "";

            if (own_user)
                (void) snprintf(user, sizeof(user), "user:x:%u:%u:user:/tmp:/bin/sh\n",
                                (unsigned) spec->uid, (unsigned) spec->gid);
            if (own_group)
                (void) snprintf(group, sizeof(group), "user:x:%u:\n", (unsigned) spec->gid);
            (void) snprintf(plan->passwd, sizeof(plan->passwd),
                            "root:x:0:0:root:/root:/bin/sh\n%s"
                            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                            user);
            (void) snprintf(plan->group, sizeof(plan->group),
                            "root:x:0:\ntty:x:5:\n%snogroup:x:65534:\n", group);
        }
        (void) snprintf(plan->hosts, sizeof(plan->hosts),
                        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                        "127.0.1.1\t%s\n",
                        spec->hostname ? spec->hostname : "sandbox");
        if (!(op = plan_add(plan, SBX_OP_FILE, NULL, "/etc/passwd", SBX_STEP_ROOTFS)))
            return rt_err_set(err, E2BIG, "too many mounts");
        op->data = plan->passwd;
        op->data_len = strlen(plan->passwd);
        if (!(op = plan_add(plan, SBX_OP_FILE, NULL, "/etc/group", SBX_STEP_ROOTFS)))
            return rt_err_set(err, E2BIG, "too many mounts");
        op->data = plan->group;
        op->data_len = strlen(plan->group);
        if (!spec_mounts_at(spec, "/etc/hosts")) {
            if (!(op = plan_add(plan, SBX_OP_FILE, NULL, "/etc/hosts", SBX_STEP_ROOTFS)))
                return rt_err_set(err, E2BIG, "too many mounts");
            op->data = plan->hosts;
            op->data_len = strlen(plan->hosts);
        }
        /* the writable layer of the default root: a bounded /tmp */
        if (!(op = plan_add(plan, SBX_OP_TMPFS, NULL, "/tmp", SBX_STEP_TMPFS)))
            return rt_err_set(err, E2BIG, "too many mounts");
        op->size = spec->upper_size;
        op->is_dir = true; /* mode 1777 */
    }
    if (!plan_add(plan, SBX_OP_PROC, NULL, "/proc", SBX_STEP_PROC) ||
        !plan_add(plan, SBX_OP_DEV, NULL, "/dev", SBX_STEP_DEV))
        return rt_err_set(err, E2BIG, "too many mounts");
    /* sysfs may only be mounted by the owner of the network namespace */
    if ((spec->sysfs || spec->n_gpus) && spec->net != SBX_NET_HOST &&
        !plan_add(plan, SBX_OP_SYS, NULL, "/sys", SBX_STEP_ROOTFS))
        return rt_err_set(err, E2BIG, "too many mounts");
    for (size_t i = 0; i < spec->n_gpus; i++) {
        struct stat st;

        if (stat(spec->gpus[i], &st) < 0)
            return rt_err_set(err, errno, "device '%s'", spec->gpus[i]);
        if (!S_ISCHR(st.st_mode))
            return rt_err_set(err, ENODEV, "device '%s' is not a character device", spec->gpus[i]);
        if (!(op = plan_add(plan, SBX_OP_BIND, spec->gpus[i], spec->gpus[i], SBX_STEP_DEV)))
            return rt_err_set(err, E2BIG, "too many mounts");
        op->dev = true;
        op->noexec = true;
    }
    for (size_t i = 0; i < spec->n_mounts; i++) {
        const struct sbx_mount *m = &spec->mounts[i];
        struct stat st;

        if (m->kind == SBX_MOUNT_TMPFS) {
            if (!(op = plan_add(plan, SBX_OP_TMPFS, NULL, m->dst, SBX_STEP_TMPFS)))
                return rt_err_set(err, E2BIG, "too many mounts");
            op->size = m->size ? m->size : spec->tmpfs_size;
            continue;
        }
        if (stat(m->src, &st) < 0)
            return rt_err_set(err, errno, "bind source '%s'", m->src);
        if (!(op = plan_add(plan, SBX_OP_BIND, m->src, m->dst, SBX_STEP_BIND)))
            return rt_err_set(err, E2BIG, "too many mounts");
        op->ro = m->kind == SBX_MOUNT_RO_BIND;
        op->recursive = true;
        op->is_dir = S_ISDIR(st.st_mode);
    }
    return 0;
}

/* --- child ------------------------------------------------------------------------------- */

#define FAIL(rep, step, e, ...)                                                                    \
    do {                                                                                           \
        sbx__report_set((rep), (step), (e), __VA_ARGS__);                                          \
        return -1;                                                                                 \
    } while (0)

static int openat2_in_root(int rootfd, const char *path, int flags)
{
    struct open_how how = {
        .flags = (uint64_t) flags | O_CLOEXEC,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    const char *rel = path;

    while (*rel == '/')
        rel++;
    if (!*rel)
        rel = ".";
    return (int) syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
}

static int open_parent_in_root(int rootfd, const char *path, const char **ret_name);

/* Opens @path inside @rootfd as an O_PATH fd, creating missing parents as directories and,
 * when @create is 'd' or 'f', the last component as a directory or an empty file.  The
 * parent is resolved inside the root; the last name is created and opened under it
 * without following a link, and must then be of the kind asked for. */
static int open_in_root(int rootfd, const char *path, char create)
{
    _cleanup_close_ int parent = -1;
    const char *name;
    struct stat st;
    int fd;

    fd = openat2_in_root(rootfd, path, O_PATH);
    if (fd >= 0 || errno != ENOENT || !create)
        return fd;
    parent = open_parent_in_root(rootfd, path, &name);
    if (parent < 0)
        return -1;
    if (create == 'd') {
        if (mkdirat(parent, name, 0755) < 0 && errno != EEXIST)
            return -1;
        fd = openat(parent, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    } else {
        fd = openat(parent, name, O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0)
            return fd; /* a fresh empty file: a mount target as good as an O_PATH fd */
        if (errno != EEXIST)
            return -1;
        fd = openat(parent, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    }
    /* what is there already (a dangling link, say) is not ours to mount on */
    if (fd >= 0 &&
        (fstat(fd, &st) < 0 || (create == 'd' ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)))) {
        fd = rt_close(fd);
        errno = ELOOP;
        return -1;
    }
    return fd;
}

/* Opens the parent directory of @path inside the root; stores the last name's offset. */
static int open_parent_in_root(int rootfd, const char *path, const char **ret_name)
{
    char buf[1024];
    const char *slash = strrchr(path, '/');
    size_t len;

    if (!slash || !slash[1]) {
        errno = EINVAL;
        return -1;
    }
    len = (size_t) (slash - path);
    if (len >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, len);
    buf[len] = '\0';
    *ret_name = slash + 1;
    return open_in_root(rootfd, len ? buf : "/", 'd');
}

static int move_onto(int tree, int target)
{
    return move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

/* A fresh filesystem as a detached mount: @opts are "key=value" or bare flags. */
static int new_fs(const char *type, const char *const *opts, unsigned attrs)
{
    _cleanup_close_ int fs = fsopen(type, FSOPEN_CLOEXEC);

    if (fs < 0)
        return -1;
    for (; opts && *opts; opts++) {
        char key[64];
        const char *eq = strchr(*opts, '=');

        if (!eq) {
            if (fsconfig(fs, FSCONFIG_SET_FLAG, *opts, NULL, 0) < 0)
                return -1;
            continue;
        }
        (void) snprintf(key, sizeof(key), "%.*s", (int) (eq - *opts), *opts);
        if (fsconfig(fs, FSCONFIG_SET_STRING, key, eq + 1, 0) < 0)
            return -1;
    }
    if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        return -1;
    return fsmount(fs, FSMOUNT_CLOEXEC, attrs);
}

static int mount_new_at(int rootfd, const char *dst, const char *type, const char *const *opts,
                        unsigned attrs)
{
    _cleanup_close_ int target = open_in_root(rootfd, dst, 'd');
    _cleanup_close_ int m = -1;

    if (target < 0)
        return -1;
    m = new_fs(type, opts, attrs);
    if (m < 0)
        return -1;
    return move_onto(m, target);
}

static int set_attrs(int tree, unsigned attrs, bool recursive)
{
    struct mount_attr a = { .attr_set = attrs };

    return mount_setattr(tree, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &a, sizeof(a));
}

/* Files of /proc that leak host state or let a process poke the kernel: covered by a
 * clone of /dev/null (runc, crun and Docker mask the same set). */
static const char *const proc_masked_files[] = {
    "kcore",         "keys", "timer_list", "timer_stats", "sched_debug", "latency_stats",
    "sysrq-trigger", "kmsg", "interrupts", "kallsyms",    "kpagecount",  "kpageflags",
};
static const char *const proc_masked_dirs[] = { "acpi", "scsi", "asound", "firmware" };
static const char *const proc_ro_dirs[] = { "sys", "irq", "bus", "fs" };
static const char *const sys_masked_dirs[] = { "firmware", "devices/virtual/powercap",
                                               "kernel/security", "kernel/debug" };

/* One tiny read-only tmpfs holding an empty file and an empty directory, the source of
 * every mask (a clone of it costs less than a new superblock per mask): reads return
 * nothing, writes fail with EROFS, and no host device node is involved (runc's /dev/null
 * masks were swappable, CVE-2025-31133). */
static int mask_source(struct sbx__child *c)
{
    static const char *const opts[] = { "size=4k", "nr_inodes=4", "mode=0555", NULL };
    _cleanup_close_ int m = -1;
    int f;

    if (c->mask_src >= 0)
        return c->mask_src;
    m = new_fs("tmpfs", opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    if (m < 0)
        return -1;
    f = openat(m, "empty", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
    if (f < 0)
        return -1;
    (void) rt_close(f);
    if (mkdirat(m, "dir", 0555) < 0)
        return -1;
    if (set_attrs(m, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                  false) < 0)
        return -1;
    c->mask_src = TAKE_FD(m);
    return c->mask_src;
}

/* Covers @name under @dirfd with the empty file or directory; absent names are skipped. */
static int mask(struct sbx__child *c, int dirfd, const char *name, bool dir)
{
    _cleanup_close_ int target = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_close_ int tree = -1;
    int src;

    if (target < 0)
        return errno == ENOENT ? 0 : -1;
    src = mask_source(c);
    if (src < 0)
        return -1;
    tree = open_tree(src, dir ? "dir" : "empty", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (tree < 0)
        return -1;
    return move_onto(tree, target);
}

static int do_proc(struct sbx__child *c, int rootfd, struct sbx__report *rep)
{
    _cleanup_close_ int proc = -1;

    if (mount_new_at(rootfd, "/proc", "proc", NULL,
                     MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC) < 0)
        FAIL(rep, SBX_STEP_PROC, errno, "mount /proc");
    proc = openat2_in_root(rootfd, "/proc", O_PATH | O_DIRECTORY);
    if (proc < 0)
        FAIL(rep, SBX_STEP_PROC, errno, "open /proc");
    for (size_t i = 0; i < ARRAY_SIZE(proc_masked_files); i++)
        if (mask(c, proc, proc_masked_files[i], false) < 0)
            FAIL(rep, SBX_STEP_PROC, errno, "mask /proc/%s", proc_masked_files[i]);
    for (size_t i = 0; i < ARRAY_SIZE(proc_masked_dirs); i++)
        if (mask(c, proc, proc_masked_dirs[i], true) < 0)
            FAIL(rep, SBX_STEP_PROC, errno, "mask /proc/%s", proc_masked_dirs[i]);
    for (size_t i = 0; i < ARRAY_SIZE(proc_ro_dirs); i++) {
        _cleanup_close_ int target = openat(proc, proc_ro_dirs[i], O_PATH | O_NOFOLLOW | O_CLOEXEC);
        _cleanup_close_ int tree = -1;

        if (target < 0) {
            if (errno == ENOENT)
                continue;
            FAIL(rep, SBX_STEP_PROC, errno, "open /proc/%s", proc_ro_dirs[i]);
        }
        tree = open_tree(proc, proc_ro_dirs[i], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
        if (tree < 0 ||
            set_attrs(tree,
                      MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                      true) < 0 ||
            move_onto(tree, target) < 0)
            FAIL(rep, SBX_STEP_PROC, errno, "make /proc/%s read-only", proc_ro_dirs[i]);
    }
    return 0;
}

static const char *const dev_nodes[] = { "null", "zero", "full", "random", "urandom", "tty" };
static const char *const dev_links[][2] = {
    { "ptmx", "pts/ptmx" },          { "fd", "/proc/self/fd" },
    { "stdin", "/proc/self/fd/0" },  { "stdout", "/proc/self/fd/1" },
    { "stderr", "/proc/self/fd/2" },
};

static int do_dev(struct sbx__child *c, int rootfd, int *ret_devmnt, struct sbx__report *rep)
{
    static const char *const dev_opts[] = { "size=64k", "mode=0755", "nr_inodes=64", NULL };
    static const char *const pts_opts[] = { "newinstance", "ptmxmode=0666", "mode=0620", NULL };
    _cleanup_close_ int target = open_in_root(rootfd, "/dev", 'd');
    _cleanup_close_ int dev = -1, m = -1, pts = -1, shm = -1;
    char shm_size[48];
    const char *shm_opts[] = { shm_size, "mode=1777", NULL };

    if (target < 0)
        FAIL(rep, SBX_STEP_DEV, errno, "create /dev");
    m = new_fs("tmpfs", dev_opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
    if (m < 0 || move_onto(m, target) < 0)
        FAIL(rep, SBX_STEP_DEV, errno, "mount tmpfs on /dev");
    dev = openat2_in_root(rootfd, "/dev", O_PATH | O_DIRECTORY);
    if (dev < 0)
        FAIL(rep, SBX_STEP_DEV, errno, "open /dev");
    for (size_t i = 0; i < ARRAY_SIZE(dev_nodes); i++) {
        char host[64];
        _cleanup_close_ int node = -1, tree = -1;
        struct stat st;

        (void) snprintf(host, sizeof(host), "/dev/%s", dev_nodes[i]);
        tree = open_tree(AT_FDCWD, host, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (tree < 0) {
            if (errno == ENOENT)
                continue;
            FAIL(rep, SBX_STEP_DEV, errno, "clone %s", host);
        }
        if (fstat(tree, &st) < 0 || !S_ISCHR(st.st_mode))
            FAIL(rep, SBX_STEP_DEV, ENODEV, "%s is not a character device", host);
        node =
            openat(dev, dev_nodes[i], O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (node < 0)
            FAIL(rep, SBX_STEP_DEV, errno, "create /dev/%s", dev_nodes[i]);
        node = rt_close(node);
        node = openat(dev, dev_nodes[i], O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (node < 0 || set_attrs(tree, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, false) < 0 ||
            move_onto(tree, node) < 0)
            FAIL(rep, SBX_STEP_DEV, errno, "bind /dev/%s", dev_nodes[i]);
    }
    for (size_t i = 0; i < ARRAY_SIZE(dev_links); i++)
        if (symlinkat(dev_links[i][1], dev, dev_links[i][0]) < 0)
            FAIL(rep, SBX_STEP_DEV, errno, "link /dev/%s", dev_links[i][0]);
    if (mkdirat(dev, "pts", 0755) < 0 || mkdirat(dev, "shm", 01777) < 0)
        FAIL(rep, SBX_STEP_DEV, errno, "create /dev/pts, /dev/shm");
    if ((pts = openat(dev, "pts", O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
        (m = rt_close(m), m = new_fs("devpts", pts_opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC)) <
            0 ||
        move_onto(m, pts) < 0)
        FAIL(rep, SBX_STEP_DEV, errno, "mount /dev/pts");
    (void) snprintf(shm_size, sizeof(shm_size), "size=%llu",
                    (unsigned long long) c->spec->tmpfs_size);
    if ((shm = openat(dev, "shm", O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
        (m = rt_close(m),
         m = new_fs("tmpfs", shm_opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)) <
            0 ||
        move_onto(m, shm) < 0)
        FAIL(rep, SBX_STEP_DEV, errno, "mount /dev/shm");
    *ret_devmnt = openat2_in_root(rootfd, "/dev", O_PATH | O_DIRECTORY);
    if (*ret_devmnt < 0)
        FAIL(rep, SBX_STEP_DEV, errno, "open /dev");
    return 0;
}

static int do_sys(struct sbx__child *c, int rootfd, struct sbx__report *rep)
{
    _cleanup_close_ int sys = -1;

    if (mount_new_at(rootfd, "/sys", "sysfs", NULL,
                     MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC) <
        0)
        FAIL(rep, SBX_STEP_ROOTFS, errno, "mount /sys");
    sys = openat2_in_root(rootfd, "/sys", O_PATH | O_DIRECTORY);
    if (sys < 0)
        FAIL(rep, SBX_STEP_ROOTFS, errno, "open /sys");
    for (size_t i = 0; i < ARRAY_SIZE(sys_masked_dirs); i++)
        if (mask(c, sys, sys_masked_dirs[i], true) < 0)
            FAIL(rep, SBX_STEP_ROOTFS, errno, "mask /sys/%s", sys_masked_dirs[i]);
    return 0;
}

static int do_op(struct sbx__child *c, struct sbx__op *op, int rootfd, int *devmnt,
                 struct sbx__report *rep)
{
    _cleanup_close_ int target = -1, parent = -1, m = -1;
    const char *name;

    switch (op->kind) {
    case SBX_OP_BIND:
        /* A device node may sit in a directory of our own /dev tmpfs (nvidia-caps/ for
         * MIG, a test's fake nodes): create the directories on the way. */
        for (const char *sl = op->dev ? strchr(op->dst + 5, '/') : NULL; sl;
             sl = strchr(sl + 1, '/')) {
            char dir[256];
            _cleanup_close_ int d = -1;

            (void) snprintf(dir, sizeof(dir), "%.*s", (int) (sl - op->dst), op->dst);
            if ((d = open_in_root(rootfd, dir, 'd')) < 0)
                FAIL(rep, op->step, errno, "create directory '%s'", dir);
        }
        target = open_in_root(rootfd, op->dst, op->is_dir ? 'd' : 'f');
        if (target < 0)
            FAIL(rep, op->step, errno, "create mount point '%s'", op->dst);
        if (move_onto(op->tree, target) < 0)
            FAIL(rep, op->step, errno, "bind '%s' on '%s'", op->src, op->dst);
        op->tree = rt_close(op->tree);
        return 0;
    case SBX_OP_SYMLINK:
        parent = open_parent_in_root(rootfd, op->dst, &name);
        if (parent < 0 || symlinkat(op->src, parent, name) < 0)
            FAIL(rep, op->step, errno, "symlink '%s' -> '%s'", op->dst, op->src);
        return 0;
    case SBX_OP_FILE:
        parent = open_parent_in_root(rootfd, op->dst, &name);
        if (parent >= 0) {
            /* O_PATH parents cannot create files: reopen as a directory */
            int d = openat(parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            parent = rt_close(parent);
            parent = d;
        }
        if (parent < 0)
            FAIL(rep, op->step, errno, "open parent of '%s'", op->dst);
        m = openat(parent, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (m < 0 || rt_write_all(m, op->data, op->data_len) < 0)
            FAIL(rep, op->step, errno, "write '%s'", op->dst);
        return 0;
    case SBX_OP_DIR:
        target = open_in_root(rootfd, op->dst, 'd');
        if (target < 0)
            FAIL(rep, op->step, errno, "create '%s'", op->dst);
        return 0;
    case SBX_OP_TMPFS: {
        char size[48], owner[48];
        const char *opts[] = { size, op->is_dir ? "mode=1777" : "mode=0755", owner, NULL };

        (void) snprintf(size, sizeof(size), "size=%llu", (unsigned long long) op->size);
        /* a user's tmpfs belongs to the user (ids as seen inside) */
        (void) snprintf(owner, sizeof(owner), "uid=%u", (unsigned) c->spec->uid);
        if (op->is_dir)
            opts[2] = NULL;
        target = open_in_root(rootfd, op->dst, 'd');
        if (target < 0)
            FAIL(rep, op->step, errno, "create '%s'", op->dst);
        m = new_fs("tmpfs", opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
        if (m < 0 || move_onto(m, target) < 0)
            FAIL(rep, op->step, errno, "mount tmpfs on '%s'", op->dst);
        return 0;
    }
    case SBX_OP_PROC:
        return do_proc(c, rootfd, rep);
    case SBX_OP_DEV:
        return do_dev(c, rootfd, devmnt, rep);
    case SBX_OP_SYS:
        return do_sys(c, rootfd, rep);
    }
    FAIL(rep, op->step, EINVAL, "unknown mount operation");
}

/* Clones every host source while the host tree is still in view. */
static int preopen(struct sbx__child *c, struct sbx__report *rep)
{
    for (size_t i = 0; i < c->plan.n; i++) {
        struct sbx__op *op = &c->plan.ops[i];
        unsigned attrs = MOUNT_ATTR_NOSUID;

        if (op->kind != SBX_OP_BIND)
            continue;
        op->tree =
            open_tree(AT_FDCWD, op->src,
                      OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (op->recursive ? AT_RECURSIVE : 0));
        if (op->tree < 0)
            FAIL(rep, op->step, errno, "clone '%s'", op->src);
        if (op->ro)
            attrs |= MOUNT_ATTR_RDONLY;
        if (!op->dev)
            attrs |= MOUNT_ATTR_NODEV;
        if (op->noexec)
            attrs |= MOUNT_ATTR_NOEXEC;
        if (set_attrs(op->tree, attrs, op->recursive) < 0)
            FAIL(rep, op->step, errno, "set flags on '%s'", op->src);
    }
    return 0;
}

int sbx__child_preopen(struct sbx__child *c, struct sbx__report *rep)
{
    /* before anything else: nothing we mount may propagate back to the host */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        FAIL(rep, SBX_STEP_MOUNT_PRIVATE, errno, "make / private");
    return preopen(c, rep);
}

int sbx__child_mounts(struct sbx__child *c, struct sbx__report *rep)
{
    _cleanup_close_ int rootfd = -1, devmnt = -1;
    char size[64];
    const char *root = "/tmp";

    /* staging: a tmpfs over /tmp, visible only in this mount namespace */
    (void) snprintf(size, sizeof(size), "size=%llu,mode=0755",
                    (unsigned long long) (c->overlay ? c->base_size : 4ULL << 20));
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, size) < 0)
        FAIL(rep, SBX_STEP_ROOTFS, errno, "mount staging tmpfs");
    if (c->overlay) {
        size_t off = (size_t) snprintf(c->overlay_opts, sizeof(c->overlay_opts), "lowerdir=");

        if (mkdir("/tmp/upper", 0755) < 0 || mkdir("/tmp/work", 0755) < 0 ||
            mkdir("/tmp/root", 0755) < 0)
            FAIL(rep, SBX_STEP_ROOTFS, errno, "create overlay directories");
        /* attach the parent's (idmapped) clones of the lowers inside our namespace, where
         * overlayfs may take them as layers */
        for (int i = 0; i < c->n_lower; i++) {
            char dir[32];

            (void) snprintf(dir, sizeof(dir), "/tmp/lower%d", i);
            if (mkdir(dir, 0755) < 0 ||
                move_mount(c->lower_fds[i], "", AT_FDCWD, dir, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                FAIL(rep, SBX_STEP_ROOTFS, errno, "attach layer %d", i);
            c->lower_fds[i] = rt_close(c->lower_fds[i]);
            off += (size_t) snprintf(c->overlay_opts + off, sizeof(c->overlay_opts) - off, "%s%s",
                                     i ? ":" : "", dir);
        }
        /* userxattr: an overlay mounted in a user namespace keeps its metadata in user.* */
        (void) snprintf(c->overlay_opts + off, sizeof(c->overlay_opts) - off,
                        ",upperdir=/tmp/upper,workdir=/tmp/work,userxattr");
        if (mount("overlay", "/tmp/root", "overlay", MS_NOSUID | MS_NODEV, c->overlay_opts) < 0)
            FAIL(rep, SBX_STEP_ROOTFS, errno, "mount overlay of rootfs '%s'", c->spec->rootfs);
        root = "/tmp/root";
    }
    rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        FAIL(rep, SBX_STEP_ROOTFS, errno, "open new root");
    for (size_t i = 0; i < c->plan.n; i++)
        if (do_op(c, &c->plan.ops[i], rootfd, &devmnt, rep) < 0)
            return -1;
    if (devmnt >= 0 &&
        set_attrs(devmnt, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, false) < 0)
        FAIL(rep, SBX_STEP_DEV, errno, "make /dev read-only");
    /* the default root is a skeleton: read-only once built (/tmp stays writable) */
    if (!c->overlay &&
        set_attrs(rootfd, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, false) < 0)
        FAIL(rep, SBX_STEP_ROOTFS, errno, "make / read-only");
    /* pivot_root(".", ".") stacks the old root under the new one; detaching it leaves
     * no path back to the host */
    if (fchdir(rootfd) < 0)
        FAIL(rep, SBX_STEP_PIVOT, errno, "enter new root");
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        FAIL(rep, SBX_STEP_PIVOT, errno, "pivot_root");
    if (umount2(".", MNT_DETACH) < 0)
        FAIL(rep, SBX_STEP_PIVOT, errno, "detach old root");
    if (chdir("/") < 0)
        FAIL(rep, SBX_STEP_PIVOT, errno, "chdir /");
    return 0;
}
