#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "banned.h"

int rt_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t) n;
    }
    return 0;
}

ssize_t rt_read_all(int fd, void *buf, size_t cap)
{
    char *p = buf;
    size_t got = 0;

    while (got < cap) {
        ssize_t n = read(fd, p + got, cap - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        got += (size_t) n;
    }
    return (ssize_t) got;
}

int rt_parse_u64(const char *s, uint64_t *ret)
{
    unsigned long long v;
    char *end;

    if (!s || !isdigit((unsigned char) s[0]))
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return -ERANGE;
    if (*end != '\0')
        return -EINVAL;
    *ret = (uint64_t) v;
    return 0;
}

int rt_parse_size(const char *s, uint64_t *ret)
{
    long double v;
    uint64_t mult = 1;
    char *end;

    if (!s || !isdigit((unsigned char) s[0]))
        return -EINVAL;
    errno = 0;
    v = strtold(s, &end);
    if (errno == ERANGE)
        return -ERANGE;
    switch (toupper((unsigned char) *end)) {
    case 'K':
        mult = 1ULL << 10;
        end++;
        break;
    case 'M':
        mult = 1ULL << 20;
        end++;
        break;
    case 'G':
        mult = 1ULL << 30;
        end++;
        break;
    case 'T':
        mult = 1ULL << 40;
        end++;
        break;
    default:
        break;
    }
    if (mult > 1 && (strcasecmp(end, "iB") == 0 || strcasecmp(end, "B") == 0))
        end += strlen(end);
    else if (mult == 1 && strcasecmp(end, "B") == 0)
        end++;
    if (*end != '\0')
        return -EINVAL;
    v *= (long double) mult;
    if (v >= 18446744073709551615.0L)
        return -ERANGE;
    if (v != floorl(v))
        return -EINVAL; /* a fraction of a byte is a typo, not a size */
    *ret = (uint64_t) v;
    return 0;
}

const char *rt_format_size(uint64_t bytes, char *buf, size_t len)
{
    static const char units[] = "KMGT";
    int u = -1;

    while (bytes >= 1024 && bytes % 1024 == 0 && u < 3) {
        bytes /= 1024;
        u++;
    }
    if (u < 0)
        (void) snprintf(buf, len, "%llu", (unsigned long long) bytes);
    else
        (void) snprintf(buf, len, "%llu%c", (unsigned long long) bytes, units[u]);
    return buf;
}

uint64_t rt_now_ns(void)
{
    struct timespec ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

bool rt_is_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}
