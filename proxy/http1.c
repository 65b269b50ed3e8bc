/* HTTP/1.1 heads: llhttp callbacks that record where each header lies (no copies), and
 * the rewriting of request heads (to the Space) and response heads (to the visitor):
 * hop-by-hop headers out (RFC 9110 section 7.6.1), X-Forwarded-* and the signed visitor
 * identity in, Host, cookies and Sec-WebSocket-* untouched. */
#include "proxy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "banned.h"

static struct px_conn *conn_of(llhttp_t *p)
{
    return p->data;
}

/* The head being parsed lies in in->data (requests) or out->data (responses), both
 * starting at offset 0 of their buffer, so spans are plain offsets. */
static const char *base_of(llhttp_t *p)
{
    struct px_conn *c = conn_of(p);
    return p == &c->req ? c->in->data : c->out->data;
}

/* The head spans being filled, or NULL: trailers of chunked bodies also call the header
 * callbacks, and must not scribble over a head that is in use. */
static struct px_head *cap(llhttp_t *p)
{
    struct px_conn *c = conn_of(p);
    if (p == &c->req)
        return c->st == PX_C_HEAD ? c->hd : NULL;
    return c->resp_head_done ? NULL : c->hd;
}

static int on_message_begin(llhttp_t *p)
{
    struct px_conn *c = conn_of(p);
    if (cap(p)) {
        c->hd->n = 0;
        c->hd->url_l = c->hd->reason_l = 0;
        c->hd->in_value = false;
    }
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct px_head *h = cap(p);
    if (!h)
        return 0;
    if (h->url_l == 0)
        h->url_o = (uint16_t) (at - base_of(p));
    h->url_l = (uint16_t) (h->url_l + len);
    return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t len)
{
    struct px_head *h = cap(p);
    if (!h)
        return 0;
    if (h->reason_l == 0)
        h->reason_o = (uint16_t) (at - base_of(p));
    h->reason_l = (uint16_t) (h->reason_l + len);
    return 0;
}

/* in_value: false = the next field callback starts a new header. */
static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct px_head *h = cap(p);
    if (!h)
        return 0;
    if (h->n == 0 || h->in_value) {
        if (h->n >= PX_MAX_HEADERS) {
            llhttp_set_error_reason(p, "too many headers");
            return HPE_USER;
        }
        h->h[h->n++] = (struct px_hspan){ .no = (uint16_t) (at - base_of(p)) };
        h->in_value = false;
    }
    h->h[h->n - 1].nl = (uint16_t) (h->h[h->n - 1].nl + len);
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    struct px_head *h = cap(p);
    if (h)
        h->in_value = true;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct px_head *h = cap(p);
    if (!h || h->n == 0)
        return 0;
    struct px_hspan *s = &h->h[h->n - 1];
    if (s->vl == 0)
        s->vo = (uint16_t) (at - base_of(p));
    s->vl = (uint16_t) (s->vl + len);
    return 0;
}

static int on_req_headers_complete(llhttp_t *p)
{
    return HPE_PAUSED; /* conn.c routes the request before any body byte moves */
}

static int on_resp_headers_complete(llhttp_t *p)
{
    struct px_conn *c = conn_of(p);
    c->resp_head_done = true;
    c->head_pending = true;
    c->status = (uint16_t) p->status_code;
    if (c->is_head && p->status_code >= 200)
        return 1; /* a response to HEAD has no body, whatever its Content-Length says */
    /* Neither has a 204 or a 304 (RFC 9110 6.4.1): said now, the response is complete
     * at once, instead of when the upstream closes its idle connection. */
    if (p->status_code == 204 || p->status_code == 304)
        return 1;
    return HPE_PAUSED;
}

static int on_req_message_complete(llhttp_t *p)
{
    conn_of(p)->req_done = true;
    return HPE_PAUSED; /* bytes after it belong to the next request */
}

static int on_resp_message_complete(llhttp_t *p)
{
    struct px_conn *c = conn_of(p);
    if (p->status_code >= 100 && p->status_code < 200 && p->status_code != 101) {
        c->resp_head_done = false; /* an interim head; the real one follows */
        return 0;
    }
    c->resp_done = true;
    return HPE_PAUSED;
}

const llhttp_settings_t px_req_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_headers_complete = on_req_headers_complete,
    .on_message_complete = on_req_message_complete,
};

const llhttp_settings_t px_resp_settings = {
    .on_message_begin = on_message_begin,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_headers_complete = on_resp_headers_complete,
    .on_message_complete = on_resp_message_complete,
};

static bool name_is(const char *base, const struct px_hspan *s, const char *lower)
{
    size_t l = strlen(lower);
    return s->nl == l && strncasecmp(base + s->no, lower, l) == 0;
}

const char *px_header(const struct px_head *h, const char *base, const char *name, size_t *ret_len)
{
    for (unsigned i = 0; i < h->n; i++)
        if (name_is(base, &h->h[i], name)) {
            *ret_len = h->h[i].vl;
            return base + h->h[i].vo;
        }
    return NULL;
}

int px_header_count(const struct px_head *h, const char *base, const char *name)
{
    int n = 0;
    for (unsigned i = 0; i < h->n; i++)
        n += name_is(base, &h->h[i], name);
    return n;
}

/* Is @token one of the comma-separated, case-insensitive tokens in v[0..len)? */
bool px_token_in_list(const char *v, size_t len, const char *token)
{
    size_t tl = strlen(token), i = 0;

    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < len && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(v + s, token, tl) == 0)
            return true;
    }
    return false;
}

const char *px_cookie(const struct px_head *h, const char *base, const char *name, size_t *ret_len)
{
    size_t nl = strlen(name);

    for (unsigned i = 0; i < h->n; i++) {
        if (!name_is(base, &h->h[i], "cookie"))
            continue;
        const char *v = base + h->h[i].vo, *end = v + h->h[i].vl;
        while (v < end) {
            while (v < end && (*v == ' ' || *v == ';'))
                v++;
            const char *pair = v;
            while (v < end && *v != ';')
                v++;
            if ((size_t) (v - pair) > nl && strncmp(pair, name, nl) == 0 && pair[nl] == '=') {
                *ret_len = (size_t) (v - pair) - nl - 1;
                return pair + nl + 1;
            }
        }
    }
    return NULL;
}

/* Hop-by-hop, or ours to set: never forwarded as the client sent them. */
static bool drop_request_header(const char *base, const struct px_hspan *s, bool upgrade,
                                bool strip_auth)
{
    static const char *const always[] = {
        "connection",          "keep-alive",      "proxy-connection", "te",
        "proxy-authorization", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto",
        "x-forwarded-port",    "forwarded",       "x-real-ip",        "x-ip-token",
        "x-streamlit-user",
    };
    for (size_t i = 0; i < sizeof(always) / sizeof(always[0]); i++)
        if (name_is(base, s, always[i]))
            return true;
    if (!upgrade && name_is(base, s, "upgrade"))
        return true;
    if (strip_auth && (name_is(base, s, "authorization") || name_is(base, s, "x-hf-authorization")))
        return true;
    return false;
}

/* Headers that Connection names are hop-by-hop too, except the ones framing relies on. */
static bool named_by_connection(const struct px_head *h, const char *base, const struct px_hspan *s)
{
    if (name_is(base, s, "host") || name_is(base, s, "content-length") ||
        name_is(base, s, "transfer-encoding") || name_is(base, s, "upgrade"))
        return false;
    for (unsigned i = 0; i < h->n; i++) {
        if (!name_is(base, &h->h[i], "connection"))
            continue;
        const char *v = base + h->h[i].vo;
        size_t len = h->h[i].vl, j = 0;
        while (j < len) {
            while (j < len && (v[j] == ' ' || v[j] == ','))
                j++;
            size_t st = j;
            while (j < len && v[j] != ',' && v[j] != ' ')
                j++;
            if (j - st == s->nl && strncasecmp(v + st, base + s->no, s->nl) == 0)
                return true;
        }
    }
    return false;
}

struct out {
    char *p;
    size_t len, cap;
};

static void put(struct out *o, const void *s, size_t n)
{
    if (o->len + n <= o->cap)
        memcpy(o->p + o->len, s, n);
    o->len += n; /* an overflow is detected by the caller comparing len and cap */
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* Writes the Cookie header without our session cookie (the Space never sees it). */
static void put_cookie_filtered(struct out *o, const char *v, size_t len)
{
    size_t nl = strlen(PX_COOKIE_NAME), start = o->len;
    bool any = false;
    const char *end = v + len;

    puts_(o, "Cookie: ");
    while (v < end) {
        while (v < end && (*v == ' ' || *v == ';'))
            v++;
        const char *pair = v;
        while (v < end && *v != ';')
            v++;
        if (v == pair)
            continue;
        if ((size_t) (v - pair) > nl && strncmp(pair, PX_COOKIE_NAME, nl) == 0 && pair[nl] == '=')
            continue;
        if (any)
            puts_(o, "; ");
        put(o, pair, (size_t) (v - pair));
        any = true;
    }
    if (any)
        puts_(o, "\r\n");
    else
        o->len = start;
}

/* The last address of an X-Forwarded-For list (the one our trusted proxy saw), checked to
 * be an IP address.  False when it is not one. */
static bool last_address(const char *v, size_t len, char *out, size_t cap)
{
    size_t e = len, st;

    while (e > 0 && (v[e - 1] == ' ' || v[e - 1] == '\t'))
        e--;
    st = e;
    while (st > 0 && v[st - 1] != ',' && v[st - 1] != ' ')
        st--;
    char tmp[INET6_ADDRSTRLEN];
    unsigned char bin[16];

    if (e == st || e - st >= sizeof(tmp) || e - st >= cap)
        return false;
    memcpy(tmp, v + st, e - st);
    tmp[e - st] = '\0';
    if (inet_pton(AF_INET, tmp, bin) != 1 && inet_pton(AF_INET6, tmp, bin) != 1)
        return false;
    memcpy(out, tmp, e - st + 1);
    return true;
}

int px_build_request_head(struct px_conn *c)
{
    const struct px_head *h = c->hd;
    const char *base = c->in->data;
    struct out o;
    char tmp[640]; /* the X-IP-Token JWT: ~300 bytes with the longest address and user */
    size_t vlen;
    const char *host = px_header(h, base, "host", &vlen);

    o.cap = 2 * (size_t) c->head_end + 1536; /* X-Forwarded-Host repeats Host */
    o.len = 0;
    o.p = malloc(o.cap);
    if (!o.p)
        return -ENOMEM;
    puts_(&o, llhttp_method_name((llhttp_method_t) c->req.method));
    puts_(&o, " ");
    put(&o, base + h->url_o, h->url_l);
    puts_(&o, c->http10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
    for (unsigned i = 0; i < h->n; i++) {
        const struct px_hspan *s = &h->h[i];
        if (drop_request_header(base, s, c->upgrade, c->authed_bearer) ||
            named_by_connection(h, base, s))
            continue;
        if (name_is(base, s, "cookie")) {
            put_cookie_filtered(&o, base + s->vo, s->vl);
            continue;
        }
        put(&o, base + s->no, s->nl);
        puts_(&o, ": ");
        put(&o, base + s->vo, s->vl);
        puts_(&o, "\r\n");
    }
    if (c->upgrade)
        puts_(&o, "Connection: upgrade\r\n");
    else if (c->http10)
        puts_(&o, "Connection: close\r\n");
    /* Behind a TLS terminator we trust (trusted_proxy), its X-Forwarded-For and -Proto
     * name the visitor and the scheme; from anyone else they are claims, and dropped. */
    char visitor[INET6_ADDRSTRLEN];
    size_t xffl = 0, xfpl = 0;
    const char *xff = NULL, *xfp = NULL;
    const char *proto = "http";
    snprintf(visitor, sizeof(visitor), "%s", c->ip);
    if (px_g.cfg.trusted_proxy && strcmp(c->ip, px_g.cfg.trusted_proxy) == 0) {
        xff = px_header(h, base, "x-forwarded-for", &xffl);
        xfp = px_header(h, base, "x-forwarded-proto", &xfpl);
        if (xfp && xfpl == 5 && strncasecmp(xfp, "https", 5) == 0)
            proto = "https";
        if (xff && !last_address(xff, xffl, visitor, sizeof(visitor)))
            xff = NULL;
    }
    puts_(&o, "X-Forwarded-For: ");
    if (xff) {
        put(&o, xff, xffl);
        puts_(&o, ", ");
    }
    puts_(&o, c->ip);
    puts_(&o, "\r\nX-Real-IP: ");
    puts_(&o, visitor);
    puts_(&o, "\r\nX-Forwarded-Proto: ");
    puts_(&o, proto);
    puts_(&o, "\r\nX-Forwarded-Host: ");
    if (host)
        put(&o, host, vlen);
    puts_(&o, "\r\nX-IP-Token: ");
    size_t tl = px_auth_visitor(visitor, &c->who, (uint64_t) time(NULL), tmp, sizeof(tmp));
    put(&o, tmp, tl);
    puts_(&o, "\r\n\r\n");
    if (o.len >= o.cap) { /* cannot happen with the bound above; refuse rather than overflow */
        free(o.p);
        return -E2BIG;
    }
    o.p[o.len] = '\0'; /* not sent; lets tests and logs treat it as a string */
    c->uhead = o.p;
    c->uhead_len = (uint32_t) o.len;
    c->uhead_off = 0;
    return 0;
}

/* Is header @s one the route overrides (a custom header or the embedding policy)? */
static bool overridden(const struct px_route *r, const char *base, const struct px_hspan *s)
{
    if (!r || !r->extra_headers)
        return false;
    const char *p = r->extra_headers;
    while (*p) {
        const char *colon = strchr(p, ':');
        const char *eol = strstr(p, "\r\n");
        if (!colon || !eol)
            break;
        if ((size_t) (colon - p) == s->nl && strncasecmp(p, base + s->no, s->nl) == 0)
            return true;
        p = eol + 2;
    }
    return false;
}

/* A Set-Cookie whose Domain is wider than the Space's own host (say "localhost" for
 * "alice-demo.localhost") would reach every other Space: such cookies are dropped. */
static bool cookie_too_wide(const char *v, size_t len, const char *host)
{
    size_t i = 0, hl = strlen(host);

    while (i < len) {
        while (i < len && v[i] != ';')
            i++;
        while (i < len && (v[i] == ';' || v[i] == ' '))
            i++;
        if (len - i >= 7 && strncasecmp(v + i, "domain=", 7) == 0) {
            const char *d = v + i + 7;
            size_t dl = 0;
            while (i + 7 + dl < len && d[dl] != ';' && d[dl] != ' ')
                dl++;
            if (dl && d[0] == '.') {
                d++;
                dl--;
            }
            /* allowed: the host itself or a name under it */
            if (dl < hl)
                return true;
            if (strncasecmp(d + dl - hl, host, hl) != 0)
                return true;
            if (dl > hl && d[dl - hl - 1] != '.')
                return true;
        }
    }
    return false;
}

int px_build_response_head(struct px_conn *c, const char *raw, uint32_t raw_len)
{
    const struct px_head *h = c->hd;
    const char *base = c->out->data;
    const struct px_route *r = c->route;
    struct out o;
    char line[64];

    o.cap = raw_len + 256 + (r ? r->extra_len : 0);
    o.len = 0;
    o.p = malloc(o.cap);
    if (!o.p)
        return -ENOMEM;
    snprintf(line, sizeof(line), "HTTP/1.1 %03u ", (unsigned) c->status);
    puts_(&o, line);
    put(&o, base + h->reason_o, h->reason_l);
    puts_(&o, "\r\n");
    for (unsigned i = 0; i < h->n; i++) {
        const struct px_hspan *s = &h->h[i];
        if (name_is(base, s, "connection") || name_is(base, s, "keep-alive") ||
            name_is(base, s, "proxy-connection") || name_is(base, s, "te") ||
            name_is(base, s, "upgrade") || named_by_connection(h, base, s) ||
            (c->status >= 200 && overridden(r, base, s)))
            continue;
        if (c->host[0] && name_is(base, s, "set-cookie") &&
            cookie_too_wide(base + s->vo, s->vl, c->host))
            continue;
        put(&o, base + s->no, s->nl);
        puts_(&o, ": ");
        put(&o, base + s->vo, s->vl);
        puts_(&o, "\r\n");
    }
    if (c->status >= 200 && r && r->extra_headers)
        put(&o, r->extra_headers, r->extra_len);
    if (c->status >= 200 && c->close_after)
        puts_(&o, "Connection: close\r\n");
    puts_(&o, "\r\n");
    if (o.len >= o.cap) {
        free(o.p);
        return -E2BIG;
    }
    o.p[o.len] = '\0';
    (void) raw;
    free(c->chead);
    c->chead = o.p;
    c->chead_len = (uint32_t) o.len;
    c->chead_off = 0;
    return 0;
}
