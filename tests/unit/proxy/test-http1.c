/* Unit tests for proxy/http1.c and proxy/auth.c: heads parsed by llhttp into spans, the
 * upstream request head (hop-by-hop out, X-Forwarded-* and the signed visitor header
 * in, our cookie removed), the response head (hop-by-hop out, Space policy in), and the
 * host-scoped sign-in cookie. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "proxy/proxy.h"

static struct px_loop loop;

static void conn_init(struct px_conn *c, const char *req)
{
    memset(c, 0, sizeof(*c));
    c->loop = &loop;
    c->in = px_buf_get(&loop);
    c->hd = px_head_get(&loop);
    c->st = PX_C_HEAD;
    llhttp_init(&c->req, HTTP_REQUEST, &px_req_settings);
    c->req.data = c;
    c->in->end = (uint32_t) strlen(req);
    memcpy(c->in->data, req, c->in->end);
    snprintf(c->ip, sizeof(c->ip), "192.0.2.7");
}

static void conn_done(struct px_conn *c)
{
    px_buf_put(&loop, &c->in);
    px_buf_put(&loop, &c->out);
    px_head_put(&loop, &c->hd);
    free(c->uhead);
    free(c->chead);
}

static int parse_head(struct px_conn *c)
{
    llhttp_errno_t e = llhttp_execute(&c->req, c->in->data, c->in->end);
    if (e == HPE_PAUSED) {
        c->head_end = (uint32_t) (llhttp_get_error_pos(&c->req) - c->in->data);
        c->upgrade = c->req.upgrade;
        c->http10 = c->req.http_minor == 0;
    }
    return e;
}

static bool has(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

static void test_request_head(void)
{
    struct px_conn c;
    size_t len;

    conn_init(&c, "POST /a?b=1 HTTP/1.1\r\nHost: alice-demo.localhost:8000\r\n"
                  "Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 300\r\nTE: trailers\r\n"
                  "X-Forwarded-For: 6.6.6.6\r\nX-IP-Token: forged\r\nProxy-Authorization: x\r\n"
                  "Cookie: a=1; " PX_COOKIE_NAME "=secret; b=2\r\nContent-Length: 3\r\n"
                  "Upgrade: h2c\r\n\r\nabc");
    is_int(parse_head(&c), HPE_PAUSED, "paused after the head");
    is_int(c.in->data[c.head_end], 'a', "body starts after the head");
    is_int(c.hd->n, 11, "eleven headers recorded");
    const char *host = px_header(c.hd, c.in->data, "host", &len);
    ok(host && len == 25 && strncmp(host, "alice-demo.localhost:8000", 25) == 0, "host span");
    is_int(px_build_request_head(&c), 0, "head built");
    const char *u = c.uhead;
    ok(strncmp(u, "POST /a?b=1 HTTP/1.1\r\n", 22) == 0, "request line kept");
    ok(has(u, "\r\nHost: alice-demo.localhost:8000\r\n"), "Host untouched");
    ok(has(u, "\r\nX-Forwarded-Host: alice-demo.localhost:8000\r\n"),
       "X-Forwarded-Host has the port");
    ok(has(u, "\r\nX-Forwarded-For: 192.0.2.7\r\n") && !has(u, "6.6.6.6"),
       "X-Forwarded-For is ours");
    ok(has(u, "\r\nX-Forwarded-Proto: http\r\n"), "X-Forwarded-Proto");
    ok(has(u, "\r\nX-IP-Token: eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.") && !has(u, "forged"),
       "visitor header is ours (a JWT; tests/unit/proxy/test-visitor checks its contents)");
    ok(has(u, "\r\nCookie: a=1; b=2\r\n") && !has(u, "secret"), "our cookie removed, theirs kept");
    ok(!has(u, "X-Hop") && !has(u, "Keep-Alive") && !has(u, "TE:") && !has(u, "Proxy-Auth"),
       "hop-by-hop headers dropped");
    ok(!has(u, "Upgrade") && !has(u, "Connection:"), "no upgrade on a plain request");
    ok(has(u, "\r\nContent-Length: 3\r\n"), "framing kept");
    ok(strcmp(u + c.uhead_len - 4, "\r\n\r\n") == 0, "ends with a blank line");
    conn_done(&c);

    conn_init(&c,
              "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
              "Sec-WebSocket-Protocol: streamlit, tok, sess\r\nAuthorization: Bearer t\r\n\r\n");
    is_int(parse_head(&c), HPE_PAUSED, "upgrade head parsed");
    ok(c.upgrade, "llhttp saw the upgrade");
    c.authed_bearer = true;
    is_int(px_build_request_head(&c), 0, "upgrade head built");
    ok(has(c.uhead, "\r\nUpgrade: websocket\r\n") && has(c.uhead, "\r\nConnection: upgrade\r\n"),
       "Upgrade and Connection sent on");
    ok(has(c.uhead, "\r\nSec-WebSocket-Protocol: streamlit, tok, sess\r\n"),
       "subprotocols untouched");
    ok(!has(c.uhead, "Authorization"), "our bearer token is not the Space's");
    conn_done(&c);

    conn_init(
        &c, "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
    ok(parse_head(&c) != HPE_PAUSED, "CL with TE refused by the parser");
    conn_done(&c);
    conn_init(&c, "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    ok(parse_head(&c) != HPE_PAUSED, "two Content-Lengths refused by the parser");
    conn_done(&c);
}

static void test_response_head(void)
{
    struct px_conn c;
    struct px_route r = { 0 };
    static const char resp[] =
        "HTTP/1.1 200 Fine\r\nContent-Type: text/plain\r\nConnection: X-A\r\n"
        "X-A: hop\r\nKeep-Alive: 5\r\nX-Frame-Options: SAMEORIGIN\r\n"
        "Set-Cookie: own=1; Path=/\r\n"
        "Set-Cookie: same=1; Domain=.Alice-Demo.localhost\r\n"
        "Set-Cookie: wide=1; Path=/; Domain=localhost\r\n"
        "Set-Cookie: sibling=1; domain=bob-alice-demo.localhost\r\n"
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";

    conn_init(&c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    parse_head(&c);
    px_head_put(&loop, &c.hd);
    c.hd = px_head_get(&loop);
    c.out = px_buf_get(&loop);
    memcpy(c.out->data, resp, sizeof(resp) - 1);
    c.out->end = sizeof(resp) - 1;
    llhttp_init(&c.resp, HTTP_RESPONSE, &px_resp_settings);
    c.resp.data = &c;
    c.st = PX_C_PROXY;
    is_int(llhttp_execute(&c.resp, c.out->data, c.out->end), HPE_PAUSED, "response head parsed");
    ok(c.head_pending && c.status == 200, "status recorded");
    uint32_t pos = (uint32_t) (llhttp_get_error_pos(&c.resp) - c.out->data);
    (void) px_render_header(&r.extra_headers, "X-Frame-Options", "DENY");
    (void) px_render_header(&r.extra_headers, "X-Custom", "1");
    r.extra_len = strlen(r.extra_headers);
    c.route = &r;
    snprintf(c.host, sizeof(c.host), "alice-demo.localhost");
    is_int(px_build_response_head(&c, c.out->data, pos), 0, "response head built");
    ok(strncmp(c.chead, "HTTP/1.1 200 Fine\r\n", 19) == 0, "status line");
    ok(!has(c.chead, "X-A") && !has(c.chead, "Keep-Alive") && !has(c.chead, "Connection"),
       "hop-by-hop dropped");
    ok(has(c.chead, "X-Frame-Options: DENY") && !has(c.chead, "SAMEORIGIN"), "policy overrides");
    ok(has(c.chead, "X-Custom: 1\r\n"), "custom header added");
    ok(has(c.chead, "own=1") && has(c.chead, "same=1"), "the Space's own cookies kept");
    ok(!has(c.chead, "wide=1"), "a cookie for the parent domain dropped");
    ok(!has(c.chead, "sibling=1"), "a cookie for another host dropped");
    ok(has(c.chead, "Transfer-Encoding: chunked"), "framing kept for raw relay");
    c.close_after = true;
    is_int(px_build_response_head(&c, c.out->data, pos), 0, "built again");
    ok(has(c.chead, "Connection: close\r\n"), "close announced");
    free(r.extra_headers);
    conn_done(&c);
}

static void test_helpers(void)
{
    ok(px_token_in_list("keep-alive, Upgrade", 19, "upgrade"), "token found, any case");
    ok(!px_token_in_list("keep-alive, Upgraded", 20, "upgrade"), "no partial token");
}

static void test_cookie(void)
{
    char v[200];
    size_t n = px_auth_cookie_make("alice-secret.localhost", NULL, 1000, v, sizeof(v));

    ok(n > 64, "cookie made");
    ok(px_auth_cookie_check("alice-secret.localhost", v, n, 1000, NULL), "accepted on its host");
    ok(!px_auth_cookie_check("alice-secret2.localhost", v, n, 1000, NULL),
       "refused on another host");
    ok(!px_auth_cookie_check("alice-secret.localhost", v, n, 1000 + PX_COOKIE_TTL_S + 1, NULL),
       "refused once expired");
    v[n - 1] = v[n - 1] == 'a' ? 'b' : 'a';
    ok(!px_auth_cookie_check("alice-secret.localhost", v, n, 1000, NULL), "refused when tampered");
    ok(!px_auth_cookie_check("alice-secret.localhost", "99999999999.abc", 15, 1000, NULL),
       "short mac");
    px_auth_token_store("a/b", "tok", true, NULL, PX_CLASS_ANON);
    is_int(px_auth_token("a/b", "tok", 3, NULL), PX_TOKEN_OK, "cached yes");
    px_auth_token_store("a/b", "bad", false, NULL, PX_CLASS_ANON);
    is_int(px_auth_token("a/b", "bad", 3, NULL), PX_TOKEN_DENIED, "cached no");
    is_int(px_auth_token("a/c", "tok", 3, NULL), PX_TOKEN_UNKNOWN, "a token is per Space");
}

int main(void)
{
    tap_start();
    px_config_defaults(&px_g.cfg);
    px_auth_init("a proxy token");
    test_request_head();
    test_response_head();
    test_helpers();
    test_cookie();
    px_auth_done();
    px_config_done(&px_g.cfg);
    while (loop.free_bufs) {
        struct px_buf *b = loop.free_bufs;
        loop.free_bufs = b->next_free;
        free(b);
    }
    while (loop.free_heads) {
        struct px_head *h = loop.free_heads;
        loop.free_heads = h->next_free;
        free(h);
    }
    return tap_done();
}
