/* Scope-bound cleanup (GNU cleanup attribute) and explicit hand-off of ownership.
 * TAKE_FD()/TAKE_PTR() return the value and empty the variable, so the cleanup
 * that runs at the end of scope does nothing. */
#ifndef SP_COMMON_CLEANUP_H
#define SP_COMMON_CLEANUP_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void rt__freep(void *p)
{
    free(*(void **) p);
}

/* Closes while keeping errno; Linux frees the fd even when close() fails, so the
 * caller always stores the -1 this returns. */
static inline int rt_close(int fd)
{
    if (fd >= 0) {
        int saved = errno;
        (void) close(fd);
        errno = saved;
    }
    return -1;
}

static inline void rt__closep(int *fd)
{
    *fd = rt_close(*fd);
}

static inline void rt__fclosep(FILE **f)
{
    if (*f) {
        (void) fclose(*f);
        *f = NULL;
    }
}

#define _cleanup_free_ _cleanup_(rt__freep)
#define _cleanup_close_ _cleanup_(rt__closep)
#define _cleanup_fclose_ _cleanup_(rt__fclosep)

#define TAKE_FD(fd)                                                                                \
    ({                                                                                             \
        int take_fd_ = (fd);                                                                       \
        (fd) = -1;                                                                                 \
        take_fd_;                                                                                  \
    })

#define TAKE_PTR(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) take_ptr_ = (p);                                                             \
        (p) = NULL;                                                                                \
        take_ptr_;                                                                                 \
    })

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
