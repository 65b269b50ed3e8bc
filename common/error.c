#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int rt_err_set(struct rt_err *err, int code, const char *fmt, ...)
{
    va_list ap;

    if (code < 0)
        code = -code;
    if (code == 0)
        code = EIO;
    if (err) {
        err->code = code;
        va_start(ap, fmt);
        (void) vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return -code;
}

int rt_err_wrap(struct rt_err *err, const char *fmt, ...)
{
    char prefix[RT_ERR_MSG_MAX];
    char old[RT_ERR_MSG_MAX];
    va_list ap;

    if (!err)
        return -EIO;
    if (err->code == 0)
        err->code = EIO;
    va_start(ap, fmt);
    (void) vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    (void) snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
    return -err->code;
}

const char *rt_err_str(const struct rt_err *err, char *buf, size_t len)
{
    if (!err->code)
        (void) snprintf(buf, len, "%s", err->msg);
    else
        (void) snprintf(buf, len, "%s: %s", err->msg, strerror(err->code));
    return buf;
}

void rt_err_clear(struct rt_err *err)
{
    err->code = 0;
    err->msg[0] = '\0';
}
