/* Unit tests for common/: errors, size parsing, whole-buffer I/O, logging. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "../tap.h"
#include "cleanup.h"
#include "error.h"
#include "log.h"
#include "util.h"

static void test_errors(void)
{
    struct rt_err err = { 0 };
    char buf[600];

    is_int(rt_err_set(&err, ENOENT, "open '%s'", "x"), -ENOENT, "set returns -code");
    is_str(err.msg, "open 'x'", "set formats the message");
    is_int(rt_err_wrap(&err, "start app '%s'", "demo"), -ENOENT, "wrap keeps the code");
    is_str(err.msg, "start app 'demo': open 'x'", "wrap prefixes context");
    is_str(rt_err_str(&err, buf, sizeof(buf)),
           "start app 'demo': open 'x': No such file or directory",
           "errno text added once, at print time");
    is_int(rt_err_set(&err, 0, "no code"), -EIO, "code 0 becomes EIO");
    is_int(rt_err_set(&err, -EPERM, "neg"), -EPERM, "negative code accepted");
    rt_err_clear(&err);
    is_int(err.code, 0, "clear resets the code");
}

static void test_sizes(void)
{
    static const struct {
        const char *in;
        int r;
        uint64_t want;
    } cases[] = {
        { "0", 0, 0 },
        { "512", 0, 512 },
        { "64k", 0, 64ULL << 10 },
        { "512M", 0, 512ULL << 20 },
        { "2G", 0, 2ULL << 30 },
        { "2GiB", 0, 2ULL << 30 },
        { "1.5G", 0, 3ULL << 29 },
        { "1T", 0, 1ULL << 40 },
        { "", -EINVAL, 0 },
        { "-1", -EINVAL, 0 },
        { "12Q", -EINVAL, 0 },
        { "0.5", -EINVAL, 0 },
        { "99999999999T", -ERANGE, 0 },
    };
    char buf[32];

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        uint64_t v = 7;
        int r = rt_parse_size(cases[i].in, &v);
        is_int(r, cases[i].r, cases[i].in);
        if (r == 0)
            is_int(v, cases[i].want, "size value");
        else
            is_int(v, 7, "output untouched on failure");
    }
    is_str(rt_format_size(512ULL << 20, buf, sizeof(buf)), "512M", "format 512M");
    is_str(rt_format_size(1000, buf, sizeof(buf)), "1000", "format bytes");
}

static void test_u64(void)
{
    uint64_t v = 3;

    is_int(rt_parse_u64("18446744073709551615", &v), 0, "u64 max parses");
    ok(v == UINT64_MAX, "u64 max value");
    is_int(rt_parse_u64("18446744073709551616", &v), -ERANGE, "u64 overflow");
    is_int(rt_parse_u64("12x", &v), -EINVAL, "trailing junk");
    is_int(rt_parse_u64(" 1", &v), -EINVAL, "leading space");
    is_int(rt_parse_u64("+1", &v), -EINVAL, "sign");
}

static void test_io(void)
{
    int p[2];
    char buf[16] = { 0 };

    ok(pipe2(p, O_CLOEXEC) == 0, "pipe2");
    is_int(rt_write_all(p[1], "hello", 5), 0, "write_all");
    p[1] = rt_close(p[1]);
    is_int(p[1], -1, "rt_close stores -1");
    is_int(rt_read_all(p[0], buf, sizeof(buf)), 5, "read_all reads to EOF");
    is_str(buf, "hello", "read_all content");
    {
        _cleanup_close_ int fd = p[0];
        ok(fd >= 0, "cleanup closes at end of scope");
    }
}

static void test_log_level(void)
{
    is_int(rt_log_level_from_name("debug"), RT_LOG_DEBUG, "debug level");
    is_int(rt_log_level_from_name("loud"), -1, "unknown level");
}

int main(void)
{
    tap_start();
    test_errors();
    test_sizes();
    test_u64();
    test_io();
    test_log_level();
    return tap_done();
}
