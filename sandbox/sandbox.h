/* libsandbox: a spec in, an isolated, supervised process out.
 *
 * The caller (runtimed's shim, spacebox) must be root on the host: it writes uid maps
 * for an unprivileged host uid range and creates cgroups.  Everything the child needs
 * is prepared in the parent; the child only runs syscalls, so spawning is safe from a
 * multi-threaded process.
 *
 *   struct sbx_spec spec;
 *   sbx_spec_init(&spec);
 *   spec.argv = argv;  spec.memory_max = 512 << 20;
 *   struct sbx *box;
 *   if (sbx_spawn(&spec, &box, &err) < 0) ... err.msg, sbx_err_step(&err) ...
 *   struct sbx_exit ex;  sbx_wait(box, -1, &ex, &err);  sbx_destroy(box);
 */
#ifndef SP_SANDBOX_H
#define SP_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#define SBX_MAX_MOUNTS 64
#define SBX_MAX_LAYERS 16
#define SBX_MAX_ENV 128
#define SBX_MAX_GPUS 16

/* The setup step that failed; errors from sbx_spawn() name it in err->msg. */
enum sbx_step {
    SBX_STEP_NONE = 0,
    SBX_STEP_SPEC,
    SBX_STEP_UIDRANGE,
    SBX_STEP_CGROUP,
    SBX_STEP_SECCOMP_BUILD,
    SBX_STEP_CLONE,
    SBX_STEP_UIDMAP,
    SBX_STEP_NETNS,
    SBX_STEP_SYNC,
    SBX_STEP_IDS,
    SBX_STEP_MOUNT_PRIVATE,
    SBX_STEP_ROOTFS,
    SBX_STEP_BIND,
    SBX_STEP_PROC,
    SBX_STEP_DEV,
    SBX_STEP_TMPFS,
    SBX_STEP_PIVOT,
    SBX_STEP_HOSTNAME,
    SBX_STEP_LOOPBACK,
    SBX_STEP_RLIMIT,
    SBX_STEP_INIT,
    SBX_STEP_STDIO,
    SBX_STEP_CHDIR,
    SBX_STEP_CAPS,
    SBX_STEP_SETUID,
    SBX_STEP_NO_NEW_PRIVS,
    SBX_STEP_SECCOMP,
    SBX_STEP_EXEC,
    _SBX_STEP_MAX,
};

/* "mount /proc", "exec", ... */
const char *sbx_step_name(enum sbx_step step);

enum sbx_net {
    SBX_NET_NONE = 0, /* a fresh network namespace with only loopback, up */
    SBX_NET_HOST,     /* the host's network namespace (no isolation) */
    SBX_NET_VETH,     /* a fresh netns that spec->on_netns wires (sbxnet) */
};

enum sbx_mount_kind {
    SBX_MOUNT_BIND = 0, /* host SRC read-write at DST (recursive) */
    SBX_MOUNT_RO_BIND,  /* host SRC read-only at DST (recursive) */
    SBX_MOUNT_TMPFS,    /* a fresh tmpfs at DST, size-limited */
};

struct sbx_mount {
    enum sbx_mount_kind kind;
    const char *src; /* host path; NULL for tmpfs */
    const char *dst; /* absolute path inside */
    uint64_t size;   /* tmpfs only; 0: spec->tmpfs_size */
};

struct sbx_spec {
    const char *const *argv; /* NULL-terminated; argv[0] searched in PATH inside */
    const char *rootfs;      /* NULL: the host's /usr, /bin, /lib*, /sbin, minimal /etc */
    const char *layers[SBX_MAX_LAYERS]; /* extra read-only lowers above rootfs, top first */
    size_t n_layers;
    struct sbx_mount mounts[SBX_MAX_MOUNTS]; /* applied in order, after the base layout */
    size_t n_mounts;
    const char *env[SBX_MAX_ENV]; /* "K=V"; PATH and HOME get defaults when absent */
    size_t n_env;
    const char *chdir;      /* inside; default "/" */
    const char *hostname;   /* default "sandbox" */
    uid_t uid;              /* inside; default 1000 */
    gid_t gid;              /* inside; default = uid */
    uint32_t host_uid_base; /* first host uid of the 65536 mapped; 0: pick a free slot */

    /* Resources.  0 means "no limit" (and no cgroup at all when every one is 0 and
     * want_cgroup is false). */
    uint64_t memory_max; /* bytes */
    uint64_t swap_max;   /* bytes of swap on top of memory_max; default 0 (none) */
    uint64_t pids_max;
    uint32_t cpu_milli;        /* 1000 = one CPU */
    bool want_cgroup;          /* create a cgroup even without limits (to freeze later) */
    const char *cgroup_parent; /* below each hierarchy's root; default "spaceport" */
    const char *name;          /* cgroup leaf name; default "sbx-PID-N" */

    uint64_t upper_size; /* bound on the writable layer (overlay upper or /tmp) */
    uint64_t tmpfs_size; /* default size of --tmpfs mounts and /dev/shm */
    uint64_t nofile;     /* RLIMIT_NOFILE; default 4096 */

    enum sbx_net net;
    /* Called in the parent after clone, before the child runs anything, with the pid of
     * the sandbox init (whose netns is fresh).  Required for SBX_NET_VETH. */
    int (*on_netns)(pid_t pid, void *data, struct rt_err *err);
    void *netns_data;

    const char *gpus[SBX_MAX_GPUS]; /* host device nodes bound in at the same path */
    size_t n_gpus;
    /* Bind the gpus but leave them out of the device cgroup (still created) until
     * sbx_allow_deferred_gpus(): a ZeroGPU sandbox, whose app must never hold one, while
     * only its workers' groups may open them.  Allowed at spawn, the app could open one
     * before runtimed isolates it, and an open fd outlives any later deny. */
    bool gpus_deferred;

    /* A read-only /sys of the sandbox's own network namespace (firmware, powercap masked).
     * Off by default (it costs a quarter of the start time); on whenever a device is
     * given, since GPU drivers read it.  Never with SBX_NET_HOST (sysfs belongs to the
     * owner of the network namespace). */
    bool sysfs;

    bool die_with_parent; /* SIGKILL the sandbox when the caller dies; default true */
    int stdio[3];         /* fds the command gets as 0-2; -1: inherit the caller's */
};

/* Fills in the defaults documented above. */
void sbx_spec_init(struct sbx_spec *spec);

/* Parses "SRC:DST" (or "PATH" for both) into a mount of @kind appended to @spec.  The
 * strings are copied into storage that @spec does not own: keep @arg alive.  Returns 0
 * or -EINVAL / -E2BIG with @err set. */
int sbx_spec_add_mount(struct sbx_spec *spec, enum sbx_mount_kind kind, char *arg,
                       struct rt_err *err);

/* Appends "K=V" to the environment, replacing an earlier K.  -EINVAL / -E2BIG. */
int sbx_spec_add_env(struct sbx_spec *spec, const char *kv, struct rt_err *err);

/* Checks a spec: absolute in-sandbox paths without "..", sane ids and sizes. */
int sbx_spec_validate(const struct sbx_spec *spec, struct rt_err *err);

/* --- cgroups: each controller driven on whichever hierarchy holds it ------------------ */

enum sbx_ctl {
    SBX_CTL_CPU = 0,
    SBX_CTL_MEMORY,
    SBX_CTL_PIDS,
    SBX_CTL_FREEZER,
    SBX_CTL_DEVICES,
    _SBX_CTL_MAX,
};

/* Where each controller lives.  sbx_cgroup_host_detect() reads mountinfo; tests fill it
 * by hand to point at a fake cgroupfs. */
struct sbx_cgroup_host {
    char v1[_SBX_CTL_MAX][256]; /* v1 mount point per controller, "" when not on v1 */
    char v2[256];               /* the cgroup2 mount point, "" when none */
    unsigned v2_mask;           /* 1u << SBX_CTL_* enabled in v2's cgroup.controllers */
    bool fake;                  /* tests: create control files that the kernel would */
};

struct sbx_cgroup_limits {
    uint64_t memory_max; /* 0: unlimited */
    uint64_t swap_max;
    uint64_t pids_max;
    uint32_t cpu_milli;
};

struct sbx_cgroup; /* opaque */

/* Reads @mountinfo (NULL: /proc/self/mountinfo) and the v2 cgroup.controllers. */
int sbx_cgroup_host_detect(const char *mountinfo, struct sbx_cgroup_host *ret, struct rt_err *err);

/* Which hierarchy drives @ctl: 1, 2, or 0 when the controller is unavailable. */
int sbx_cgroup_host_version(const struct sbx_cgroup_host *host, enum sbx_ctl ctl);

/* Creates PARENT/NAME in every hierarchy that holds a controller and writes @lim (v1:
 * memory, memsw, pids, cfs quota, devices deny-all plus the standard nodes; v2: enables
 * the controllers in the parents, then memory.max, memory.swap.max, memory.oom.group,
 * pids.max, cpu.max).  Half-built groups are removed on failure. */
int sbx_cgroup_create(const struct sbx_cgroup_host *host, const char *parent, const char *name,
                      const struct sbx_cgroup_limits *lim, struct sbx_cgroup **ret,
                      struct rt_err *err);

/* Allows a character/block device node (v1 devices cgroup; a no-op on v2). */
int sbx_cgroup_allow_device(struct sbx_cgroup *cg, char type, unsigned major, unsigned minor,
                            struct rt_err *err);

/* cgroup v2 only: allows the char devices @devs (read, write) in the group's own program
 * for its child groups' sake (with BPF_F_ALLOW_MULTI every program on the path must
 * allow).  Refused (-EBUSY) while the group holds processes of its own: they would get
 * the devices too, so the caller first moves them into a child whose program denies
 * them.  Devices already allowed are skipped (idempotent).  -EOPNOTSUPP on v1, where a
 * group's rules are its own tasks' and a sibling group is the way to allow more. */
int sbx_cgroup_allow_below(struct sbx_cgroup *cg, const dev_t *devs, size_t n, struct rt_err *err);

/* Moves @pid into every group. */
int sbx_cgroup_add_pid(struct sbx_cgroup *cg, pid_t pid, struct rt_err *err);

/* Freezes or thaws every task (v1 freezer.state, v2 cgroup.freeze).  Waits until the
 * kernel reports FROZEN (at most ~1 s) when freezing. */
int sbx_cgroup_freeze(struct sbx_cgroup *cg, bool frozen, struct rt_err *err);

/* Reads the limits back from the kernel's files. */
int sbx_cgroup_read_limits(const struct sbx_cgroup *cg, struct sbx_cgroup_limits *ret,
                           struct rt_err *err);

/* Number of OOM kills inside the group so far. */
int sbx_cgroup_oom_kills(const struct sbx_cgroup *cg, uint64_t *ret, struct rt_err *err);

/* The group's directory for @ctl, or NULL when that controller is not used. */
const char *sbx_cgroup_path(const struct sbx_cgroup *cg, enum sbx_ctl ctl);

/* Kills every task left, removes the directories (retrying while the kernel still
 * holds dying tasks) and frees @cg.  Accepts NULL.  Returns 0 or the first error. */
int sbx_cgroup_destroy(struct sbx_cgroup *cg, struct rt_err *err);

/* --- the sandbox ----------------------------------------------------------------------- */

enum sbx_exit_reason {
    SBX_EXIT_EXITED = 0, /* the command exited; code = its status */
    SBX_EXIT_SIGNALED,   /* the command was killed by signal; code = 128 + signal */
    SBX_EXIT_OOM,        /* killed by the OOM killer inside the memory limit */
    SBX_EXIT_KILLED,     /* the sandbox was killed from outside (sbx_kill, timeout) */
};

struct sbx_exit {
    enum sbx_exit_reason reason;
    int code;   /* shell-style: status, or 128 + signal */
    int signal; /* the signal for SIGNALED/OOM/KILLED, else 0 */
};

struct sbx; /* opaque: a running sandbox */

/* Builds and starts the sandbox described by @spec.  Returns 0 once the command has
 * been exec'd and stores the handle in *ret_box.  On failure returns -errno with @err
 * naming the step ("exec 'foo': ..." for a missing command: sbx_err_step() says
 * SBX_STEP_EXEC and err->code ENOENT or EACCES) and leaves nothing behind. */
int sbx_spawn(const struct sbx_spec *spec, struct sbx **ret_box, struct rt_err *err);

/* The step recorded by the last failed sbx_spawn() in this thread. */
enum sbx_step sbx_last_step(void);

pid_t sbx_pid(const struct sbx *box); /* the sandbox init, as seen from the host */
int sbx_pidfd(const struct sbx *box); /* pollable; readable once the init has exited */
/* Pollable; readable as soon as the command's exit is known (the init reports it just
 * before it exits, ahead of the namespaces' teardown), or when the init died. */
int sbx_exit_fd(const struct sbx *box);
struct sbx_cgroup *sbx_cgroup(struct sbx *box); /* NULL when no cgroup was created */
/* The spec's gpus_deferred nodes become allowed in the sandbox's device cgroup, for its
 * child groups only (sbx_cgroup_allow_below: v2, no process left in the group itself).
 * Idempotent; 0 when nothing was deferred. */
int sbx_allow_deferred_gpus(struct sbx *box, struct rt_err *err);
uint32_t sbx_host_uid_base(const struct sbx *box);

/* Waits at most @timeout_ms (-1: forever) for the command to end.  Returns 0 with
 * *ret filled, or -ETIMEDOUT.  The OOM reason comes from the cgroup's counters.  The
 * init may still be tearing down; sbx_destroy() reaps it. */
int sbx_wait(struct sbx *box, int timeout_ms, struct sbx_exit *ret, struct rt_err *err);

/* Sends @sig to the init, which forwards it to the command (SIGKILL ends everything). */
int sbx_kill(struct sbx *box, int sig, struct rt_err *err);

/* Kills and reaps whatever still runs, removes the cgroups, frees @box.  The mount,
 * pid and network namespaces die with their last process.  Accepts NULL. */
void sbx_destroy(struct sbx *box);

#endif
