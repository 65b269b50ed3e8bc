/* Errors: a negative errno as the return value plus a message the caller owns.
 *
 * The error lives on the caller's stack, so no error path can leak and running out
 * of memory cannot lose the message.  Messages are lowercase, action first, user
 * strings in single quotes; the errno text is added once, when printed. */
#ifndef SP_COMMON_ERROR_H
#define SP_COMMON_ERROR_H

#include <stddef.h>

#define RT_ERR_MSG_MAX 512

struct rt_err {
    int code;                 /* positive errno, 0 when unset */
    char msg[RT_ERR_MSG_MAX]; /* what failed, without the errno text */
};

/* Records @code and the formatted message.  Returns -@code (or -EIO when @code is 0),
 * so a caller can write "return rt_err_set(err, errno, ...);". */
int rt_err_set(struct rt_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message with context ("start app 'x': " + old message).  Keeps the code.
 * Returns -code. */
int rt_err_wrap(struct rt_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Formats "msg: strerror(code)" into @buf (or just msg when code is 0).  Returns @buf. */
const char *rt_err_str(const struct rt_err *err, char *buf, size_t len);

/* Clears @err for reuse. */
void rt_err_clear(struct rt_err *err);

#endif
