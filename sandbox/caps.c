/* Dropping privileges in the child, in the order the anchors found safe: securebits
 * locked, bounding and ambient sets emptied, groups and ids switched, every remaining
 * capability cleared, no_new_privs, and seccomp last.  System calls only (no libcap
 * allocation): this runs between clone() and execve(). */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "internal.h"
#include "banned.h"

int sbx__lock_down(const struct sock_fprog *prog, struct sbx__report *rep)
{
    /* uid 0 inside must never regain capabilities through execve or setuid */
    if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED |
                                     SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED) < 0) {
        sbx__report_set(rep, SBX_STEP_CAPS, errno, "set securebits");
        return -1;
    }
    for (int cap = 0; cap < 64; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
            if (errno == EINVAL)
                break; /* past the kernel's last capability */
            sbx__report_set(rep, SBX_STEP_CAPS, errno, "drop capability %d from the bounding set",
                            cap);
            return -1;
        }
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
        sbx__report_set(rep, SBX_STEP_CAPS, errno, "clear ambient capabilities");
        return -1;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        sbx__report_set(rep, SBX_STEP_NO_NEW_PRIVS, errno, "set no_new_privs");
        return -1;
    }
    if (prog && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog) < 0) {
        sbx__report_set(rep, SBX_STEP_SECCOMP, errno, "load seccomp filter");
        return -1;
    }
    return 0;
}

int sbx__drop_privs(uid_t uid, gid_t gid, bool keep_kill, struct sbx__report *rep)
{
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];

    if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0) {
        sbx__report_set(rep, SBX_STEP_SETUID, errno, "set gid %u", (unsigned) gid);
        return -1;
    }
    if (setresuid(uid, uid, uid) < 0) {
        sbx__report_set(rep, SBX_STEP_SETUID, errno, "set uid %u", (unsigned) uid);
        return -1;
    }
    memset(data, 0, sizeof(data));
    if (keep_kill)
        data[0].effective = data[0].permitted = 1u << CAP_KILL;
    if (syscall(SYS_capset, &hdr, data) < 0) {
        sbx__report_set(rep, SBX_STEP_CAPS, errno, "clear capabilities");
        return -1;
    }
    return 0;
}

int sbx__loopback_up(struct sbx__report *rep)
{
    _cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;

    if (s < 0) {
        sbx__report_set(rep, SBX_STEP_LOOPBACK, errno, "socket");
        return -1;
    }
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, "lo", 3);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
        sbx__report_set(rep, SBX_STEP_LOOPBACK, errno, "read flags of lo");
        return -1;
    }
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
        sbx__report_set(rep, SBX_STEP_LOOPBACK, errno, "bring lo up");
        return -1;
    }
    return 0;
}
