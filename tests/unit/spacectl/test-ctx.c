/* Unit tests for where spacectl finds its server and token (runtimed/spacectl-ctx.c),
 * and for the client's answers when there is no server (runtimed/spacectl-http.c). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "../tap.h"
#include "runtimed/spacectl.h"
#include "cleanup.h"
#include "util.h"

static char tmpdir[64];

static void write_file(const char *path, const char *text, mode_t mode)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

    ok(fd >= 0 && rt_write_all(fd, text, strlen(text)) == 0, "write %s", path);
}

static void test_url(void)
{
    struct sc_inv inv = { 0 };
    struct sc_ctx ctx = { 0 };
    struct rt_err err = { 0 };

    unsetenv("SPACEPORT_URL");
    is_int(sc_ctx_init(&ctx, &inv, NULL, &err), 0, "defaults");
    is_str(ctx.url, SC_DEFAULT_URL, "default URL");
    ok(ctx.out == stdout && ctx.errf == stderr, "stdout and stderr by default");

    setenv("SPACEPORT_URL", "http://10.0.0.1:9000/", 1);
    is_int(sc_ctx_init(&ctx, &inv, NULL, &err), 0, "from the environment");
    is_str(ctx.url, "http://10.0.0.1:9000", "SPACEPORT_URL, trailing slash dropped");

    inv.url = "https://spaces.example.org//";
    is_int(sc_ctx_init(&ctx, &inv, NULL, &err), 0, "from the flag");
    is_str(ctx.url, "https://spaces.example.org", "--url wins over the environment");

    inv.url = "127.0.0.1:8080";
    is_int(sc_ctx_init(&ctx, &inv, NULL, &err), -EINVAL, "no scheme");
    ok(strstr(err.msg, "'127.0.0.1:8080'") && strstr(err.msg, "http://"),
       "the message names the URL and the fix: %s", err.msg);
    unsetenv("SPACEPORT_URL");
}

static void test_token(void)
{
    struct sc_inv inv = { 0 };
    struct sc_ctx ctx = { 0 };
    struct rt_err err = { 0 };
    char path[128], none[128];

    (void) snprintf(path, sizeof(path), "%s/admin.token", tmpdir);
    (void) snprintf(none, sizeof(none), "%s/missing.token", tmpdir);
    write_file(path, "  sp_admin_abc123 \nsecond line\n", 0600);

    unsetenv("SPACEPORT_TOKEN");
    is_int(sc_ctx_init(&ctx, &inv, path, &err), 0, "token file fallback");
    is_str(ctx.token, "sp_admin_abc123", "first line of the file, blanks trimmed");
    ok(strstr(ctx.token_source, SC_ADMIN_TOKEN_PATH) != NULL, "source says the file");

    is_int(sc_ctx_init(&ctx, &inv, none, &err), 0, "no file: no token, no error");
    is_str(ctx.token, "", "empty token");

    setenv("SPACEPORT_TOKEN", "from-env", 1);
    is_int(sc_ctx_init(&ctx, &inv, path, &err), 0, "environment");
    is_str(ctx.token, "from-env", "SPACEPORT_TOKEN wins over the file");
    ok(strstr(ctx.token_source, "SPACEPORT_TOKEN") != NULL, "source says the environment");

    inv.token = "from-flag";
    is_int(sc_ctx_init(&ctx, &inv, path, &err), 0, "flag");
    is_str(ctx.token, "from-flag", "--token wins over everything");

    inv.token = "bad\r\nX-Injected: 1";
    is_int(sc_ctx_init(&ctx, &inv, path, &err), -EINVAL, "a line break cannot reach a header");
    unsetenv("SPACEPORT_TOKEN");
    (void) unlink(path);
}

/* A loopback port with nothing listening: bound, never listened on, then closed. */
static int dead_port(void)
{
    _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);

    if (fd < 0 || bind(fd, (struct sockaddr *) &a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *) &a, &len) < 0)
        return -1;
    return ntohs(a.sin_port);
}

static void test_unreachable(void)
{
    struct sc_ctx ctx = { 0 };
    _cleanup_free_ char *text = NULL;
    json_t *j = (json_t *) &ctx; /* must stay untouched on failure */
    size_t len = 0;
    int port = dead_port();

    ok(port > 0, "found a free port");
    (void) snprintf(ctx.url, sizeof(ctx.url), "http://127.0.0.1:%d", port);
    ctx.out = stdout;
    ctx.errf = open_memstream(&text, &len);
    ctx.token_source = "(none given)";
    is_int(sc_api(&ctx, "GET", "/api/spaces", NULL, &j), SC_EXIT_UNREACHABLE, "exit status 3");
    fclose(ctx.errf);
    ok(j == (json_t *) &ctx, "no result written on failure");
    ok(strstr(text, "cannot reach runtimed at http://127.0.0.1:") != NULL,
       "the message names the URL: %s", text);
    ok(strstr(text, "SPACEPORT_URL") != NULL, "and says how to point elsewhere");
    free(TAKE_PTR(text));

    ctx.errf = open_memstream(&text, &len);
    is_int(sc_api_stream(&ctx, "/api/spaces/a/b/logs/run", false, 100, NULL, NULL),
           SC_EXIT_UNREACHABLE, "streams: exit status 3 too");
    fclose(ctx.errf);
    ok(strstr(text, "cannot reach runtimed") != NULL, "stream message: %s", text);
    free(TAKE_PTR(text));

    (void) snprintf(ctx.url, sizeof(ctx.url), "gopher://127.0.0.1:%d", port);
    ctx.errf = open_memstream(&text, &len);
    is_int(sc_api(&ctx, "GET", "/api/spaces", NULL, &j), SC_EXIT_USAGE, "bad scheme: usage");
    fclose(ctx.errf);
    ok(strstr(text, "invalid server URL") != NULL, "says the URL is invalid: %s", text);
}

static void test_escape(void)
{
    _cleanup_free_ char *a = sc_escape("a b/c?d");
    _cleanup_free_ char *b = sc_escape("cpu-basic");

    is_str(a, "a%20b%2Fc%3Fd", "escapes a path segment");
    is_str(b, "cpu-basic", "leaves safe names alone");
}

/* The next link as seen by a client whose base URL is not the one the server wrote. */
static int next_of(const char *link, char *buf, size_t len)
{
    return sc_link_next(link, "http://elsewhere:1", buf, len);
}

static void test_link_next(void)
{
    char buf[128];

    is_int(next_of("<http://h:8080/api/spaces?limit=2&cursor=7>; rel=\"next\"", buf, sizeof(buf)),
           0, "absolute next link");
    is_str(buf, "/api/spaces?limit=2&cursor=7", "keeps path and query, drops the host");
    is_int(next_of("<https://x/a?p=1>; rel=\"prev\", <https://x/a?p=3>; rel=\"next\"", buf,
                   sizeof(buf)),
           0, "next among several links");
    is_str(buf, "/a?p=3", "the next one, not the first");
    is_int(next_of("</api/spaces?cursor=9>; rel=next", buf, sizeof(buf)), 0, "relative");
    is_str(buf, "/api/spaces?cursor=9", "relative path kept");
    is_int(next_of("<http://x/a>; rel=\"prev\"", buf, sizeof(buf)), -ENOENT, "no next");
    is_int(next_of("garbage", buf, sizeof(buf)), -ENOENT, "not a link");
    is_int(next_of("<ftp:x>; rel=\"next\"", buf, sizeof(buf)), -EINVAL, "not a path");
    is_int(next_of("<http://x/aaaaaaaaaaaaaaaaaaaa>; rel=\"next\"", buf, 8), -ENAMETOOLONG,
           "too long for the buffer");
    is_int(sc_link_next("<https://h/prefix/api/spaces?c=1>; rel=\"next\"", "https://h/prefix", buf,
                        sizeof(buf)),
           0, "a base with a path prefix");
    is_str(buf, "/api/spaces?c=1", "the prefix is ours: not repeated");
    is_int(
        sc_link_next("<https://h/prefixed/x>; rel=\"next\"", "https://h/prefix", buf, sizeof(buf)),
        0, "a URL that merely starts like the base");
    is_str(buf, "/prefixed/x", "is taken as a path, not cut mid-segment");
}

int main(void)
{
    tap_start();
    (void) snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-spacectl-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        printf("1..0 # SKIP cannot make a temporary directory\n");
        return 77;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_url();
    test_token();
    test_unreachable();
    test_escape();
    test_link_next();
    curl_global_cleanup();
    (void) rmdir(tmpdir);
    return tap_done();
}
