/* Unit tests for spacectl's Server-Sent Events parser (runtimed/spacectl-sse.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "runtimed/spacectl-sse.h"

struct got {
    int n;
    char ev[8][256];
    size_t len[8];
};

static void on_event(const char *data, size_t len, void *userdata)
{
    struct got *g = userdata;

    if (g->n < 8) {
        (void) snprintf(g->ev[g->n], sizeof(g->ev[0]), "%s", data);
        g->len[g->n] = len;
    }
    g->n++;
}

/* Feeds @text whole, then again one byte at a time, and checks both see the same. */
static void check(const char *name, const char *text, int n, const char *const *want)
{
    for (int pass = 0; pass < 2; pass++) {
        struct got g = { 0 };
        struct sc_sse s;
        int r = 0;

        sc_sse_init(&s, on_event, &g);
        if (pass == 0)
            r = sc_sse_feed(&s, text, strlen(text));
        else
            for (size_t i = 0; text[i] && r == 0; i++)
                r = sc_sse_feed(&s, text + i, 1);
        sc_sse_done(&s);
        is_int(r, 0, name);
        is_int(g.n, n, pass ? "event count, fed bytewise" : "event count, fed whole");
        for (int i = 0; i < n && i < g.n && i < 8; i++) {
            is_str(g.ev[i], want[i], "event data");
            is_int(g.len[i], strlen(want[i]), "event length");
        }
    }
}

static void test_events(void)
{
    check("one Hub log event",
          "data: {\"data\": \"hello\\n\", \"timestamp\": \"2026-01-01T00:00:00Z\"}\n\n", 1,
          (const char *[]){ "{\"data\": \"hello\\n\", \"timestamp\": \"2026-01-01T00:00:00Z\"}" });
    check("two events", "data: a\n\ndata: b\n\n", 2, (const char *[]){ "a", "b" });
    check("CRLF line ends", "data: a\r\n\r\ndata: b\r\n\r\n", 2, (const char *[]){ "a", "b" });
    check("CR line ends", "data: a\r\rdata: b\r\r", 2, (const char *[]){ "a", "b" });
    check("data lines join with newlines", "data: one\ndata: two\ndata:three\n\n", 1,
          (const char *[]){ "one\ntwo\nthree" });
    check("only one leading space is dropped", "data:  two spaces\n\n", 1,
          (const char *[]){ " two spaces" });
    check("comments and other fields are skipped",
          ": keep-alive\nevent: log\nid: 7\nretry: 100\ndata: x\n\n", 1, (const char *[]){ "x" });
    check("a keep-alive data line is an empty event", "data:\n\ndata: x\n\n", 2,
          (const char *[]){ "", "x" });
    check("a field name alone means an empty value", "data\n\n", 1, (const char *[]){ "" });
    check("blank lines without data dispatch nothing", "\n\n: c\n\n", 0, (const char *[]){ NULL });
    check("an event not ended by a blank line is dropped", "data: a\n\ndata: partial\n", 1,
          (const char *[]){ "a" });
    check("colons inside the value stay", "data: {\"a\": \"b:c\"}\n\n", 1,
          (const char *[]){ "{\"a\": \"b:c\"}" });
    check("datax is not data", "datax: no\ndata: yes\n\n", 1, (const char *[]){ "yes" });
}

static void test_limits(void)
{
    size_t big = SC_SSE_MAX + 10;
    char *line = malloc(big);
    struct got g = { 0 };
    struct sc_sse s;

    ok(line != NULL, "allocate");
    if (!line)
        return;
    memset(line, 'x', big);
    memcpy(line, "data: ", 6);
    sc_sse_init(&s, on_event, &g);
    is_int(sc_sse_feed(&s, line, big), -E2BIG, "an oversized line is refused");
    sc_sse_done(&s);
    is_int(g.n, 0, "nothing dispatched");

    /* many small lines that add up past the limit in one event */
    sc_sse_init(&s, on_event, &g);
    int r = 0;
    for (size_t i = 0; i < SC_SSE_MAX / 900 && r == 0; i++) {
        memset(line, 'y', 1000);
        memcpy(line, "data: ", 6);
        line[999] = '\n';
        r = sc_sse_feed(&s, line, 1000);
    }
    is_int(r, -E2BIG, "an oversized event is refused");
    sc_sse_done(&s);
    free(line);
}

int main(void)
{
    tap_start();
    test_events();
    test_limits();
    return tap_done();
}
