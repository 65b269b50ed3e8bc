#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "banned.h"

int rt_log_level = RT_LOG_INFO;
int rt_log_json = 0;

static const char *const level_names[_RT_LOG_MAX] = { "err", "warn", "info", "debug" };

int rt_log_level_from_name(const char *name)
{
    for (int i = 0; i < _RT_LOG_MAX; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

/* Appends @s quoted for logfmt or JSON (both accept \" \\ \n \t escapes). */
static size_t put_quoted(char *buf, size_t pos, size_t cap, const char *s)
{
    if (pos + 1 < cap)
        buf[pos++] = '"';
    for (; *s && pos + 3 < cap; s++) {
        unsigned char c = (unsigned char) *s;
        if (c == '"' || c == '\\') {
            buf[pos++] = '\\';
            buf[pos++] = (char) c;
        } else if (c == '\n') {
            buf[pos++] = '\\';
            buf[pos++] = 'n';
        } else if (c == '\t') {
            buf[pos++] = '\\';
            buf[pos++] = 't';
        } else if (c < 0x20) {
            buf[pos++] = '?';
        } else {
            buf[pos++] = (char) c;
        }
    }
    if (pos + 1 < cap)
        buf[pos++] = '"';
    return pos;
}

static size_t put_str(char *buf, size_t pos, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (pos + n >= cap)
        n = cap - pos - 1;
    memcpy(buf + pos, s, n);
    return pos + n;
}

void rt_log_emit(enum rt_log_level lvl, const struct rt_log_ctx *ctx, const char *fmt, ...)
{
    char msg[2048];
    char line[4096];
    char ts[40];
    struct timeval tv;
    struct tm tm;
    size_t pos = 0;
    va_list ap;

    va_start(ap, fmt);
    (void) vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    (void) gettimeofday(&tv, NULL);
    (void) gmtime_r(&tv.tv_sec, &tm);
    (void) snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                    (long) (tv.tv_usec / 1000));
    if (lvl < 0 || lvl >= _RT_LOG_MAX)
        lvl = RT_LOG_ERR;

    if (rt_log_json) {
        pos = put_str(line, pos, sizeof(line), "{\"ts\":");
        pos = put_quoted(line, pos, sizeof(line), ts);
        pos = put_str(line, pos, sizeof(line), ",\"level\":");
        pos = put_quoted(line, pos, sizeof(line), level_names[lvl]);
        if (ctx && ctx->app) {
            pos = put_str(line, pos, sizeof(line), ",\"app\":");
            pos = put_quoted(line, pos, sizeof(line), ctx->app);
        }
        if (ctx && ctx->action) {
            pos = put_str(line, pos, sizeof(line), ",\"action\":");
            pos = put_quoted(line, pos, sizeof(line), ctx->action);
        }
        pos = put_str(line, pos, sizeof(line), ",\"msg\":");
        pos = put_quoted(line, pos, sizeof(line), msg);
        pos = put_str(line, pos, sizeof(line), "}\n");
    } else {
        pos = put_str(line, pos, sizeof(line), ts);
        pos = put_str(line, pos, sizeof(line), " ");
        pos = put_str(line, pos, sizeof(line), level_names[lvl]);
        if (ctx && ctx->app) {
            pos = put_str(line, pos, sizeof(line), " app=");
            pos = put_quoted(line, pos, sizeof(line), ctx->app);
        }
        if (ctx && ctx->action) {
            pos = put_str(line, pos, sizeof(line), " action=");
            pos = put_quoted(line, pos, sizeof(line), ctx->action);
        }
        pos = put_str(line, pos, sizeof(line), " msg=");
        pos = put_quoted(line, pos, sizeof(line), msg);
        pos = put_str(line, pos, sizeof(line), "\n");
    }
    /* One write(2) per line so lines from several processes never interleave. */
    (void) !write(STDERR_FILENO, line, pos);
}
