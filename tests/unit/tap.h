/* A tiny TAP producer for unit tests run by prove.  Checks print both values with
 * file and line; tap_done() also asserts that no fd leaked during the test. */
#ifndef SP_TESTS_TAP_H
#define SP_TESTS_TAP_H

#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed, tap_fds_at_start = -1;

static inline int tap_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;

    if (!d)
        return -1;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own fd */
}

static inline void tap_start(void)
{
    tap_fds_at_start = tap_count_fds();
    setvbuf(stdout, NULL, _IOLBF, 0);
}

static inline int tap_ok_(int cond, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline int tap_ok_(int cond, const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    tap_n++;
    printf("%s %d - ", cond ? "ok" : "not ok", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!cond) {
        tap_failed++;
        printf("#   failed at %s:%d\n", file, line);
    }
    return cond;
}

#define ok(cond, ...) tap_ok_(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#define is_int(got, want, name)                                                                    \
    do {                                                                                           \
        long long g_ = (long long) (got), w_ = (long long) (want);                                 \
        if (!ok(g_ == w_, "%s", name))                                                             \
            printf("#   got: %lld\n#   expected: %lld\n", g_, w_);                                 \
    } while (0)

#define is_str(got, want, name)                                                                    \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        if (!ok(g_ && w_ && strcmp(g_, w_) == 0, "%s", name))                                      \
            printf("#   got: '%s'\n#   expected: '%s'\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
    } while (0)

static inline int tap_done(void)
{
    int fds = tap_count_fds();

    if (tap_fds_at_start >= 0)
        is_int(fds, tap_fds_at_start, "no fd leaked");
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#endif
