/* Server-Sent Events parsing for spacectl's log streams.  Follows the WHATWG
 * "interpreting an event stream" steps, keeping only the data field. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "spacectl-sse.h"
#include "banned.h"

void sc_sse_init(struct sc_sse *s, void (*on_event)(const char *data, size_t len, void *userdata),
                 void *userdata)
{
    memset(s, 0, sizeof(*s));
    s->on_event = on_event;
    s->userdata = userdata;
}

void sc_sse_done(struct sc_sse *s)
{
    free(s->line);
    free(s->data);
    s->line = s->data = NULL;
    s->line_len = s->line_cap = s->data_len = s->data_cap = 0;
}

/* Grows *@buf to hold @need bytes plus a NUL, up to SC_SSE_MAX. */
static int reserve(char **buf, size_t *cap, size_t need)
{
    size_t ncap;
    char *n;

    if (need > SC_SSE_MAX)
        return -E2BIG;
    if (need + 1 <= *cap)
        return 0;
    ncap = *cap ? *cap : 256;
    while (ncap < need + 1)
        ncap *= 2;
    n = realloc(*buf, ncap);
    if (!n)
        return -ENOMEM;
    *buf = n;
    *cap = ncap;
    return 0;
}

static void dispatch(struct sc_sse *s)
{
    if (!s->has_data)
        return; /* a blank line after only comments or other fields */
    s->has_data = false;
    /* the data buffer ends with the '\n' of its last line: not part of the data */
    if (s->data_len > 0)
        s->data_len--;
    s->data[s->data_len] = '\0';
    s->on_event(s->data, s->data_len, s->userdata);
    s->data_len = 0;
}

/* Handles one complete line (without its end-of-line). */
static int process_line(struct sc_sse *s, const char *line, size_t len)
{
    const char *colon, *val;
    size_t name_len, vlen;
    int r;

    if (len == 0) {
        dispatch(s);
        return 0;
    }
    if (line[0] == ':')
        return 0; /* a comment, often a keep-alive */
    colon = memchr(line, ':', len);
    name_len = colon ? (size_t) (colon - line) : len;
    if (name_len != 4 || memcmp(line, "data", 4) != 0)
        return 0; /* event, id, retry and unknown fields do not matter here */
    val = colon ? colon + 1 : line + len;
    vlen = (size_t) (line + len - val);
    if (vlen > 0 && val[0] == ' ') {
        val++;
        vlen--;
    }
    r = reserve(&s->data, &s->data_cap, s->data_len + vlen + 1);
    if (r < 0)
        return r;
    memcpy(s->data + s->data_len, val, vlen);
    s->data_len += vlen;
    s->data[s->data_len++] = '\n';
    s->has_data = true;
    return 0;
}

int sc_sse_feed(struct sc_sse *s, const char *buf, size_t len)
{
    int r;

    for (size_t i = 0; i < len; i++) {
        char c = buf[i];

        if (c == '\n' && s->after_cr) {
            s->after_cr = false; /* the second half of "\r\n" */
            continue;
        }
        s->after_cr = c == '\r';
        if (c == '\r' || c == '\n') {
            r = process_line(s, s->line ? s->line : "", s->line_len);
            s->line_len = 0;
            if (r < 0)
                return r;
            continue;
        }
        r = reserve(&s->line, &s->line_cap, s->line_len + 1);
        if (r < 0)
            return r;
        s->line[s->line_len++] = c;
    }
    return 0;
}
