/* HTTP/1.1 requests for the device API, parsed by llhttp (strict mode: no lenient
 * flags), and the query string the client puts every parameter in.  Only the
 * method and the target matter; headers are counted against the limit and bodies
 * are read and dropped. */
#include <errno.h>
#include <string.h>

#include "devapi-internal.h"

#include "banned.h"

static struct gpu__conn *conn_of(llhttp_t *p)
{
    return p->data;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct gpu__conn *c = conn_of(p);

    if (c->url_len + len > GPU__URL_MAX) {
        c->status = 414;
        return -1;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = '\0';
    return 0;
}

/* Header names and values are counted as llhttp hands them over (it keeps no copy),
 * so a long or endless header costs nothing but this count before the 431. */
static int on_header_bytes(llhttp_t *p, const char *at, size_t len)
{
    struct gpu__conn *c = conn_of(p);

    c->head_bytes += len;
    if (c->head_bytes > c->max_header) {
        c->status = 431;
        return -1;
    }
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    conn_of(p)->head_done = true;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct gpu__conn *c = conn_of(p);

    c->body_bytes += len;
    if (c->body_bytes > c->max_body) {
        c->status = 413;
        return -1;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    conn_of(p)->done = true;
    return HPE_PAUSED; /* one request at a time: the rest waits in c->pending */
}

static const llhttp_settings_t settings = {
    .on_url = on_url,
    .on_header_field = on_header_bytes,
    .on_header_value = on_header_bytes,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void gpu__http_init(struct gpu__conn *c)
{
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    gpu__http_next(c);
}

void gpu__http_next(struct gpu__conn *c)
{
    if (llhttp_get_errno(&c->parser) == HPE_PAUSED)
        llhttp_resume(&c->parser);
    c->head_bytes = c->body_bytes = 0;
    c->head_done = c->done = false;
    c->status = 0;
    c->url_len = 0;
    c->url[0] = '\0';
}

size_t gpu__http_feed(struct gpu_api *api, struct gpu__conn *c, const char *buf, size_t len)
{
    enum llhttp_errno e;

    c->max_header = api->cfg.max_header;
    c->max_body = api->cfg.max_body;
    e = llhttp_execute(&c->parser, buf, len);
    if (e == HPE_PAUSED)
        return (size_t) (llhttp_get_error_pos(&c->parser) - buf);
    if (e != HPE_OK && !c->status)
        c->status = 400;
    return e == HPE_OK ? len : 0;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* In place; '+' is a space (form encoding, as httpx writes spaces). */
static int pct_decode(char *s)
{
    char *o = s;

    for (char *i = s; *i; i++) {
        if (*i == '%') {
            int h = hexval(i[1]), l = h < 0 ? -1 : hexval(i[2]);

            if (h < 0 || l < 0 || (h == 0 && l == 0))
                return -EINVAL;
            *o++ = (char) (h * 16 + l);
            i += 2;
        } else {
            *o++ = *i == '+' ? ' ' : *i;
        }
    }
    *o = '\0';
    return 0;
}

int gpu__query_parse(char *query, struct gpu__param *out, size_t cap)
{
    size_t n = 0;
    char *save = NULL;

    if (!query || !*query)
        return 0;
    for (char *tok = strtok_r(query, "&", &save); tok; tok = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(tok, '=');

        if (n == cap)
            return -EINVAL;
        out[n].key = tok;
        out[n].val = eq ? eq + 1 : tok + strlen(tok);
        if (eq)
            *eq = '\0';
        if (pct_decode(out[n].key) < 0 || pct_decode(out[n].val) < 0 || !*out[n].key)
            return -EINVAL;
        for (size_t i = 0; i < n; i++)
            if (strcmp(out[i].key, out[n].key) == 0)
                return -EINVAL; /* which one would count?  refuse rather than guess */
        n++;
    }
    return (int) n;
}

const char *gpu__param(const struct gpu__param *p, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(p[i].key, key) == 0)
            return p[i].val;
    return NULL;
}

int gpu__parse_bool(const char *s, bool *ret)
{
    if (strcmp(s, "true") == 0)
        *ret = true;
    else if (strcmp(s, "false") == 0)
        *ret = false;
    else
        return -EINVAL;
    return 0;
}
