/* Logging: one logfmt line per event on stderr, readable by journald and people:
 *   2026-05-04T10:00:01.123Z err app=demo action="starting sandbox" msg="create cgroup ..."
 * The level is checked before any argument is evaluated.  Only daemons log above debug;
 * libraries return errors instead. */
#ifndef SP_COMMON_LOG_H
#define SP_COMMON_LOG_H

enum rt_log_level {
    RT_LOG_ERR = 0,
    RT_LOG_WARN,
    RT_LOG_INFO,
    RT_LOG_DEBUG,
    _RT_LOG_MAX,
};

struct rt_log_ctx {
    const char *app;    /* the Space or component the line is about, or NULL */
    const char *action; /* what was being done, or NULL */
};

extern int rt_log_level;
extern int rt_log_json; /* 1: one JSON object per line instead of logfmt */

#define rt_log(lvl, ctx, ...)                                                                      \
    do {                                                                                           \
        if ((int) (lvl) <= rt_log_level)                                                           \
            rt_log_emit((lvl), (ctx), __VA_ARGS__);                                                \
    } while (0)

void rt_log_emit(enum rt_log_level lvl, const struct rt_log_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parses "err", "warn", "info" or "debug".  Returns the level or -1. */
int rt_log_level_from_name(const char *name);

#endif
