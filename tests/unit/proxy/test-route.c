/* Unit tests for proxy/route.c and proxy/config.c: tables built from config and feed,
 * lookups, stats carried across tables, header rendering that refuses injection, and
 * config parsing with its errors. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tap.h"
#include "proxy/proxy.h"

static struct px_config cfg_with(const char *yaml)
{
    struct px_config cfg;
    struct rt_err err = { 0 };
    char path[] = "/tmp/px-test-XXXXXX";
    int fd = mkstemp(path);

    px_config_defaults(&cfg);
    if (fd >= 0) {
        (void) !write(fd, yaml, strlen(yaml));
        close(fd);
        if (px_config_load(&cfg, path, &err) < 0)
            printf("# config error: %s\n", err.msg);
        unlink(path);
    }
    return cfg;
}

static void test_config(void)
{
    struct px_config cfg = cfg_with("listen: 127.0.0.1:9\nworkers: 3\nidle_timeout: 2h\n"
                                    "max_header_size: 8k\nroutes:\n"
                                    "  - {host: B.Example, upstream: 127.0.0.1:81}\n"
                                    "  - host: a.example\n    upstream: 127.0.0.1:80\n"
                                    "    disable_embedding: true\n"
                                    "    custom_headers: {X-A: one}\n");
    struct rt_err err = { 0 };
    char path[] = "/tmp/px-test-XXXXXX";

    is_str(cfg.listen, "127.0.0.1:9", "listen read");
    is_int(cfg.workers, 3, "workers read");
    is_int(cfg.idle_timeout_ms, 2 * 3600 * 1000, "durations take units");
    is_int(cfg.max_header_size, 8192, "sizes take units");
    is_int(cfg.nroutes, 2, "two routes");
    is_str(cfg.routes[0].host, "b.example", "hosts are lowercased");
    is_str(cfg.routes[1].custom_headers, "X-A: one\r\n", "custom headers rendered");
    px_config_done(&cfg);

    static const char *const bad[] = {
        "nope: 1\n",
        "workers: many\n",
        "idle_timeout: 5 parsecs\n",
        "max_header_size: 1\n",
        "routes:\n  - {host: a.example}\n",
        "routes:\n  - {host: a.example, upstream: 'not an address'}\n",
        "routes:\n  - {host: 'a b', upstream: 127.0.0.1:1}\n",
        "routes:\n  - {host: a.example, upstream: 127.0.0.1:1, custom_headers: {'X-A': "
        "\"a\\r\\nX-B: b\"}}\n",
        "[1, 2]\n",
        "listen: [\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct px_config c;
        int fd;
        snprintf(path, sizeof(path), "/tmp/px-test-XXXXXX");
        fd = mkstemp(path);
        (void) !write(fd, bad[i], strlen(bad[i]));
        close(fd);
        px_config_defaults(&c);
        rt_err_clear(&err);
        int r = px_config_load(&c, path, &err);
        ok(r < 0 && err.msg[0], "bad config %zu refused: %s", i, err.msg);
        px_config_done(&c);
        unlink(path);
    }
}

static void test_example_config(void)
{
    struct px_config cfg;
    struct rt_err err = { 0 };

    px_config_defaults(&cfg);
    is_int(px_config_load(&cfg, "proxy/spaceproxy.yaml.example", &err), 0,
           "the documented example config loads");
    is_int(cfg.idle_timeout_ms, 6 * 3600 * 1000, "with the documented idle timeout");
    px_config_done(&cfg);
}

static void test_addr_and_duration(void)
{
    struct sockaddr_storage ss;
    socklen_t len;
    unsigned ms;

    is_int(px_parse_addr("127.0.0.1:8000", &ss, &len), 0, "ipv4");
    is_int(px_parse_addr("[::1]:8000", &ss, &len), 0, "ipv6");
    is_int(px_parse_addr("8000", &ss, &len), 0, "port alone");
    is_int(px_parse_addr("127.0.0.1:0", &ss, &len), -EINVAL, "port 0 refused");
    is_int(px_parse_addr("127.0.0.1:70000", &ss, &len), -EINVAL, "port too big");
    is_int(px_parse_addr("example.com:80", &ss, &len), -EINVAL, "names refused (no DNS here)");
    is_int(px_parse_duration_ms("250ms", &ms), 0, "ms");
    is_int(ms, 250, "250ms");
    is_int(px_parse_duration_ms("1.5s", &ms), 0, "fractional s");
    is_int(ms, 1500, "1.5s");
    is_int(px_parse_duration_ms("-1s", &ms), -EINVAL, "negative refused");
}

static void test_render_header(void)
{
    char *buf = NULL;

    is_int(px_render_header(&buf, "X-Ok", "fine value"), 0, "plain header");
    is_int(px_render_header(&buf, "X-Bad", "a\r\nSet-Cookie: x=1"), -EINVAL, "CRLF in value");
    is_int(px_render_header(&buf, "X Bad", "v"), -EINVAL, "space in name");
    is_int(px_render_header(&buf, "X-Bad:", "v"), -EINVAL, "colon in name");
    is_str(buf, "X-Ok: fine value\r\n", "only the good one rendered");
    free(buf);
}

static void test_table(void)
{
    struct px_config cfg = cfg_with("domain: spaces.test\nroutes:\n"
                                    "  - {host: ops.spaces.test, upstream: 127.0.0.1:9000}\n"
                                    "  - {host: clash-x.spaces.test, upstream: 127.0.0.1:9001}\n");
    static char id0[] = "Alice/Demo", l0[] = "alice-demo", u0[] = "10.77.0.2:7860",
                h0[] = "X-C: 1\r\n", id1[] = "bob/secret", l1[] = "bob-secret", id2[] = "clash/x",
                l2[] = "clash-x", u2[] = "10.0.0.1:1";
    struct px_feed_space feed[3] = {
        { .id = id0,
          .host_label = l0,
          .stage = PX_STAGE_RUNNING,
          .upstream = u0,
          .custom_headers = h0 },
        { .id = id1, .host_label = l1, .stage = PX_STAGE_SLEEPING, .private_ = true },
        { .id = id2, .host_label = l2, .stage = PX_STAGE_RUNNING, .upstream = u2 },
    };
    struct rt_err err = { 0 };
    const struct px_route *r;

    free(cfg.domain);
    cfg.domain = strdup("spaces.test");
    struct px_table *t = px_table_build(&cfg, feed, 3, 7, NULL, &err);
    ok(t != NULL, "table built");
    is_int(t->n, 4, "config route wins over a feed route with the same host");
    r = px_table_find(t, "alice-demo.spaces.test", strlen("alice-demo.spaces.test"));
    ok(r && r->has_upstream && strcmp(r->id, "Alice/Demo") == 0, "feed route found");
    ok(r && r->extra_headers && strcmp(r->extra_headers, "X-C: 1\r\n") == 0, "custom headers");
    r = px_table_find(t, "bob-secret.spaces.test", strlen("bob-secret.spaces.test"));
    ok(r && r->private_ && !r->has_upstream && r->stage == PX_STAGE_SLEEPING, "sleeping private");
    r = px_table_find(t, "clash-x.spaces.test", strlen("clash-x.spaces.test"));
    ok(r && !r->id, "clash resolved to the config route");
    ok(!px_table_find(t, "alice-demo.spaces.tes", strlen("alice-demo.spaces.tes")),
       "no prefix match");
    ok(!px_table_find(t, "nobody.spaces.test", strlen("nobody.spaces.test")), "unknown host");

    r = px_table_find(t, "alice-demo.spaces.test", strlen("alice-demo.spaces.test"));
    atomic_fetch_add(&r->stats->active, 3);
    struct px_table *t2 = px_table_build(&cfg, feed, 1, 8, t, &err);
    const struct px_route *r2 = px_table_find(t2, "alice-demo.spaces.test", 22);
    ok(r2 && r2->stats == r->stats, "stats follow the Space into the next table");
    is_int(atomic_load(&r2->stats->active), 3, "active count kept");
    px_table_unref(t);
    is_int(atomic_load(&r2->stats->active), 3, "still alive after the old table goes");
    px_table_unref(t2);
    px_config_done(&cfg);
}

int main(void)
{
    tap_start();
    test_config();
    test_example_config();
    test_addr_and_duration();
    test_render_header();
    test_table();
    return tap_done();
}
