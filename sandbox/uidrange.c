/* Host uid ranges: each sandbox maps its 65536 ids onto its own unprivileged host range,
 * so two sandboxes never share a uid and no host id (root above all) appears inside.
 * A slot is held by an flock on a root-only file; the kernel drops it when the holder
 * dies, so a crashed supervisor cannot leak ranges. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "internal.h"
#include "banned.h"

static int mkdir_parents(const char *dir)
{
    char buf[256];
    size_t len = strlen(dir);

    if (len >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, dir, len + 1);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0700) < 0 && errno != EEXIST)
                return -errno;
            *p = c;
            if (!c)
                break;
        }
    }
    return 0;
}

int sbx__uid_slot_acquire(const char *dir, uint32_t *ret_base, struct rt_err *err)
{
    unsigned start = (unsigned) getpid() % SBX_UID_SLOTS;
    struct stat st;
    int r;

    if ((r = mkdir_parents(dir)) < 0)
        return rt_err_set(err, -r, "create '%s'", dir);
    /* someone else's directory could hand out slots in use: insist on our own */
    if (lstat(dir, &st) < 0)
        return rt_err_set(err, errno, "stat '%s'", dir);
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 0022))
        return rt_err_set(err, EPERM,
                          "'%s' must be a directory owned by us, not group/world-writable", dir);
    for (unsigned i = 0; i < SBX_UID_SLOTS; i++) {
        unsigned slot = (start + i) % SBX_UID_SLOTS;
        _cleanup_close_ int fd = -1;
        char path[320];

        (void) snprintf(path, sizeof(path), "%s/%u", dir, slot);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return rt_err_set(err, errno, "open '%s'", path);
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            *ret_base = SBX_UID_FIRST_BASE + slot * SBX_UID_RANGE;
            return TAKE_FD(fd);
        }
        if (errno != EWOULDBLOCK)
            return rt_err_set(err, errno, "lock '%s'", path);
    }
    return rt_err_set(err, EAGAIN, "every host uid range is in use (%u sandboxes)", SBX_UID_SLOTS);
}
