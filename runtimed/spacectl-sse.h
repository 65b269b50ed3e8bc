/* A Server-Sent Events parser (the WHATWG "event stream" format), fed in pieces as
 * bytes arrive.  spacectl uses it for log streams:
 *   data: {"data": "<line>", "timestamp": "..."}
 * Only the data field matters here; event, id, retry and comments are skipped. */
#ifndef SP_RUNTIMED_SPACECTL_SSE_H
#define SP_RUNTIMED_SPACECTL_SSE_H

#include <stdbool.h>
#include <stddef.h>

/* An event's data larger than this is refused: a log line is not a megabyte. */
#define SC_SSE_MAX (1u << 20)

struct sc_sse {
    char *line; /* the line being received */
    size_t line_len, line_cap;
    char *data; /* the event being received: data lines joined by '\n' */
    size_t data_len, data_cap;
    bool has_data; /* a data field was seen since the last dispatch */
    bool after_cr; /* the last byte was '\r': a following '\n' belongs to it */
    void (*on_event)(const char *data, size_t len, void *userdata);
    void *userdata;
};

void sc_sse_init(struct sc_sse *s, void (*on_event)(const char *data, size_t len, void *userdata),
                 void *userdata);

/* Consumes @len bytes and calls on_event for each event completed by them, with its
 * data NUL-terminated.  Returns 0, -ENOMEM, or -E2BIG for an oversized line or event
 * (the parser is then unusable). */
int sc_sse_feed(struct sc_sse *s, const char *buf, size_t len);

/* Frees the buffers.  An event not ended by a blank line is dropped, as the format says. */
void sc_sse_done(struct sc_sse *s);

#endif
