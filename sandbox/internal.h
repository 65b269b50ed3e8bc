/* libsandbox internals shared by its files; not for callers. */
#ifndef SP_SANDBOX_INTERNAL_H
#define SP_SANDBOX_INTERNAL_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox.h"

#define SBX_UID_RANGE 65536u
#define SBX_UID_FIRST_BASE (1u << 28) /* far above any distribution's users and subuids */
#define SBX_UID_SLOTS 4096u
#define SBX_UID_SLOT_DIR "/run/spaceport/uid-slots"

/* --- seccomp.c -------------------------------------------------------------------------- */

/* Compiles the default-deny profile (EPERM for the listed calls, ENOSYS for clone3,
 * SIGSYS kill for other architectures) into @ret; free ret->filter. */
int sbx__seccomp_build(struct sock_fprog *ret, struct rt_err *err);

/* The calls the profile refuses outright, NULL-terminated (for tests and docs). */
extern const char *const sbx__seccomp_denied[];

/* --- uidrange.c ------------------------------------------------------------------------- */

/* Takes a free slot of SBX_UID_RANGE host uids (an flock held on a file under @dir
 * while the sandbox lives).  Returns the lock fd and stores the base uid. */
int sbx__uid_slot_acquire(const char *dir, uint32_t *ret_base, struct rt_err *err);

/* --- mounts.c: the child's filesystem plan, computed in the parent ------------------------ */

enum sbx__op_kind {
    SBX_OP_BIND = 0, /* clone of host src (pre-opened) at dst */
    SBX_OP_SYMLINK,  /* dst -> src */
    SBX_OP_FILE,     /* dst holds data */
    SBX_OP_TMPFS,    /* fresh tmpfs at dst */
    SBX_OP_DIR,      /* an empty directory */
    SBX_OP_PROC,     /* fresh procfs with masked and read-only paths */
    SBX_OP_DEV,      /* minimal /dev */
    SBX_OP_SYS,      /* read-only sysfs with masked paths */
};

struct sbx__op {
    enum sbx__op_kind kind;
    const char *src; /* static, the spec's, or the plan's pool: alive while spawning */
    const char *dst;
    const char *data; /* SBX_OP_FILE: the plan's own buffers */
    size_t data_len;
    uint64_t size; /* tmpfs */
    bool ro, recursive, dev, noexec, is_dir;
    enum sbx_step step; /* reported on failure */
    int tree;           /* child: the pre-opened clone; -1 before */
};

#define SBX_MAX_OPS (SBX_MAX_MOUNTS + SBX_MAX_GPUS + 48)

struct sbx__plan {
    struct sbx__op ops[SBX_MAX_OPS];
    size_t n;
    char pool[4096]; /* symlink targets read from the host */
    size_t pool_used;
    char passwd[512];
    char group[256];
    char hosts[256];
};

/* Everything the child needs, precomputed so the child makes no allocation. */
struct sbx__child {
    const struct sbx_spec *spec;
    struct sbx__plan plan;
    struct sock_fprog seccomp; /* parent: compiled after the clone, sent to the child */
    struct sock_filter filter_in[BPF_MAXINSNS]; /* child: the program as received */
    bool overlay;       /* rootfs given: overlay of lower_fds under a tmpfs upper */
    uint64_t base_size; /* size of the tmpfs that holds the root (or the upper) */
    char *envp[SBX_MAX_ENV + 4];
    char env_path[300];
    char env_home[64];
    char overlay_opts[4096];
    int lower_fds[SBX_MAX_LAYERS + 1];
    int n_lower;
    int mask_src; /* child: a read-only tmpfs with an empty file and dir to mask with */
    char cmd_stack[64 * 1024] __attribute__((aligned(16))); /* the command until it execs */
    int sync_fd;   /* read: the parent's go (uid maps, cgroups, netns), then the filter */
    int err_fd;    /* write: struct sbx__report on failure; EOF once exec succeeded */
    int status_fd; /* write (init only): the command's wait status */
    int stdio[3];
    pid_t parent_pid;
};

struct sbx__report {
    int step;
    int err;
    char msg[240];
};

int sbx__plan_build(const struct sbx_spec *spec, struct sbx__plan *plan, struct rt_err *err);

/* In the child, still with the caller's host ids (so bind sources under root-only
 * directories resolve as for the caller): makes "/" private and clones every host source
 * of the plan. */
int sbx__child_preopen(struct sbx__child *c, struct sbx__report *rep);

/* In the child, after sbx__child_preopen() and the switch to the mapped ids: assembles the new root, pivots into it.  On failure
 * fills @rep and returns -1.  Only system calls: safe after clone(). */
int sbx__child_mounts(struct sbx__child *c, struct sbx__report *rep);

/* In the child: a fresh netns' loopback up. */
int sbx__loopback_up(struct sbx__report *rep);

/* In the child, once before the init forks the command (both inherit all of it): locks
 * the securebits so uid 0 gains nothing from execve or setuid, empties the bounding and
 * ambient sets so no execve inside can ever gain a capability, sets no_new_privs and loads
 * @prog.  Nothing that follows (fork, id switches, capset, chdir, execve) is refused by
 * the filter, so one filter serves both processes. */
int sbx__lock_down(const struct sock_fprog *prog, struct sbx__report *rep);

/* In the child, after sbx__lock_down(): switches to @uid/@gid with no supplementary
 * groups and clears every capability (but CAP_KILL when @keep_kill: the init must signal
 * a command that runs under another uid). */
int sbx__drop_privs(uid_t uid, gid_t gid, bool keep_kill, struct sbx__report *rep);

/* Fills @rep: step, errno, message. */
void sbx__report_set(struct sbx__report *rep, enum sbx_step step, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
