/* Unit tests for the device API's request parsing (gpu-sched/devapi-http.c): query
 * strings (escapes, duplicates, NULs, limits), bools, and llhttp fed whole, byte
 * by byte, pipelined, and with oversized parts. */
#include <errno.h>
#include <string.h>

#include "../tap.h"
#include "cleanup.h"
#include "gpu-sched/devapi-http.c"

static void test_query(void)
{
    struct gpu__param p[GPU__PARAMS_MAX];
    char q[256];
    bool b;
    int n;

    snprintf(q, sizeof(q), "cgroupPath=%%2Fspaces%%2Fa+b&taskId=12&flag&empty=");
    n = gpu__query_parse(q, p, GPU__PARAMS_MAX);
    is_int(n, 4, "four parameters");
    is_str(gpu__param(p, 4, "cgroupPath"), "/spaces/a b", "percent and plus decoded");
    is_str(gpu__param(p, 4, "taskId"), "12", "plain value");
    is_str(gpu__param(p, 4, "flag"), "", "a key alone has an empty value");
    is_str(gpu__param(p, 4, "empty"), "", "empty value");
    ok(gpu__param(p, 4, "nope") == NULL, "absent key: NULL");
    is_int(gpu__query_parse(NULL, p, GPU__PARAMS_MAX), 0, "no query");
    snprintf(q, sizeof(q), "a=1&&b=2&");
    is_int(gpu__query_parse(q, p, GPU__PARAMS_MAX), 2, "empty pieces skipped");
    snprintf(q, sizeof(q), "a=1&a=2");
    is_int(gpu__query_parse(q, p, GPU__PARAMS_MAX), -EINVAL, "duplicate refused");
    snprintf(q, sizeof(q), "a=%%zz");
    is_int(gpu__query_parse(q, p, GPU__PARAMS_MAX), -EINVAL, "bad escape refused");
    snprintf(q, sizeof(q), "a=%%0");
    is_int(gpu__query_parse(q, p, GPU__PARAMS_MAX), -EINVAL, "short escape refused");
    snprintf(q, sizeof(q), "a=x%%00y");
    is_int(gpu__query_parse(q, p, GPU__PARAMS_MAX), -EINVAL, "NUL refused");
    snprintf(q, sizeof(q), "=1");
    is_int(gpu__query_parse(q, p, GPU__PARAMS_MAX), -EINVAL, "empty key refused");
    snprintf(q, sizeof(q), "a=1&b=2&c=3");
    is_int(gpu__query_parse(q, p, 2), -EINVAL, "too many refused");

    ok(gpu__parse_bool("true", &b) == 0 && b, "true");
    ok(gpu__parse_bool("false", &b) == 0 && !b, "false");
    is_int(gpu__parse_bool("True", &b), -EINVAL, "only the client's spelling");
    is_int(gpu__parse_bool("1", &b), -EINVAL, "no numbers");
}

static struct gpu_api api = { .cfg = { .max_header = 256, .max_body = 16 } };

static void test_parse(void)
{
    static struct gpu__conn c;
    const char *two = "POST /schedule?a=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /queue-size HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t used, len = strlen(two);

    gpu__http_init(&c);
    used = gpu__http_feed(&api, &c, two, len);
    ok(c.done && !c.status, "first request parsed");
    is_str(c.url, "/schedule?a=1", "its target");
    is_int(llhttp_get_method(&c.parser), HTTP_POST, "its method");
    ok(used < len, "stopped after it");
    gpu__http_next(&c);
    gpu__http_feed(&api, &c, two + used, len - used);
    ok(c.done && !c.status, "pipelined second parsed");
    is_str(c.url, "/queue-size", "second target");

    gpu__http_init(&c);
    for (size_t i = 0; i < len && !c.done; i++)
        gpu__http_feed(&api, &c, two + i, 1);
    ok(c.done && strcmp(c.url, "/schedule?a=1") == 0, "byte by byte");

    gpu__http_init(&c);
    gpu__http_feed(&api, &c, "NOPE\r\n\r\n", 8);
    is_int(c.status, 400, "garbage: 400");

    gpu__http_init(&c);
    {
        char big[600];
        int n = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nX: %0400d\r\n\r\n", 0);
        gpu__http_feed(&api, &c, big, (size_t) n);
    }
    is_int(c.status, 431, "header over the limit: 431");

    gpu__http_init(&c);
    {
        const char *b = "POST / HTTP/1.1\r\nContent-Length: 17\r\n\r\n01234567890123456";
        gpu__http_feed(&api, &c, b, strlen(b));
    }
    is_int(c.status, 413, "body over the limit: 413");

    gpu__http_init(&c);
    {
        const char *b = "POST / HTTP/1.1\r\nContent-Length: 16\r\n\r\n0123456789012345";
        gpu__http_feed(&api, &c, b, strlen(b));
    }
    ok(c.done && !c.status, "body at the limit: fine");

    gpu__http_init(&c);
    {
        static char url[GPU__URL_MAX + 64];
        int n = snprintf(url, sizeof(url), "GET /%0*d HTTP/1.1\r\n\r\n", GPU__URL_MAX, 0);
        api.cfg.max_header = 1 << 20;
        gpu__http_feed(&api, &c, url, (size_t) n);
    }
    is_int(c.status, 414, "target over the limit: 414");
}

/* Mutations of valid requests, fed in random pieces: the parser and the query
 * splitter must end each one parsed or refused, never crash (ASan runs this too). */
static void test_mutations(void)
{
    static const char *seeds[] = {
        "POST /schedule?cgroupPath=%2Fa&taskId=1&enableQueue=true&durationSeconds=60&token=x.y.z "
        "HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "POST /allow?allowToken=0123456789abcdef0123456789abcdef&pid=1234 HTTP/1.1\r\n"
        "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "GET /queue-size HTTP/1.0\r\n\r\n",
    };
    static struct gpu__conn c;
    unsigned seed = 12345, done = 0, refused = 0;
    struct gpu_api fa = { .cfg = { .max_header = 8192, .max_body = 4096 } };

    for (int i = 0; i < 20000; i++) {
        char buf[512];
        const char *s = seeds[i % ARRAY_SIZE(seeds)];
        size_t len = strlen(s), off = 0;

        memcpy(buf, s, len);
        for (int k = rand_r(&seed) % 4; k >= 0; k--) {
            size_t at = (size_t) rand_r(&seed) % len;

            switch (rand_r(&seed) % 3) {
            case 0:
                buf[at] = (char) rand_r(&seed);
                break;
            case 1:
                len = at ? at : 1;
                break;
            default:
                buf[at] = "&=%?\r\n :"[rand_r(&seed) % 9];
                break;
            }
        }
        gpu__http_init(&c);
        while (off < len && !c.done && !c.status) {
            size_t piece = 1 + (size_t) rand_r(&seed) % 64;

            if (piece > len - off)
                piece = len - off;
            off += gpu__http_feed(&fa, &c, buf + off, piece) ? piece : len;
        }
        if (c.done) {
            struct gpu__param p[GPU__PARAMS_MAX];
            char *q = strchr(c.url, '?');

            done++;
            if (q)
                (void) gpu__query_parse(q + 1, p, GPU__PARAMS_MAX);
        } else if (c.status) {
            refused++;
        }
    }
    ok(done > 1000 && refused > 1000, "20000 mutations: %u parsed, %u refused, no crash", done,
       refused);
}

int main(void)
{
    tap_start();
    test_query();
    test_parse();
    test_mutations();
    return tap_done();
}
