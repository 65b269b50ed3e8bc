/* Private to feed.c and feed-routes.c: the calls to runtimed shared by the jobs thread
 * (wakes, token checks, activity) and the routes thread (the route table). */
#ifndef SP_PROXY_FEED_INTERNAL_H
#define SP_PROXY_FEED_INTERNAL_H

#include <curl/curl.h>
#include <stddef.h>

/* How long runtimed may hold a route long-poll (?wait=); it caps it at 30. */
#define PX_ROUTES_WAIT_S 20
/* Retries while runtimed is unreachable: the first after MIN, doubling up to MAX. */
#define PX_ROUTES_BACKOFF_MIN_MS 250
#define PX_ROUTES_BACKOFF_MAX_MS 4000

struct px_answer {
    char *buf;
    size_t len;
};

/* Sets @h up for one call to runtimed (reset first); the answer goes to @a.  Returns the
 * header list, to free with curl_slist_free_all after the call. */
struct curl_slist *px__feed_setup(CURL *h, const char *method, const char *path, const char *body,
                                  struct px_answer *a, long timeout_ms);
/* One blocking call.  Returns the HTTP status, or -1 when runtimed could not be reached. */
long px__feed_call(CURL *h, const char *method, const char *path, const char *body,
                   struct px_answer *a);
/* Reads runtimed's proxy token file again (it may appear after we start, or rotate). */
void px__feed_read_token(void);

/* Reports activity now rather than at the next activity_interval. */
void px__feed_report_now(void);

/* feed-routes.c: the routes thread. */
int px__routes_start(struct rt_err *err);
void px__routes_stop(void);
/* Cuts a pause between plain polls short (after a wake, when runtimed cannot hold a
 * long-poll): the Space's new stage shows up quickly. */
void px__routes_poll_now(void);
/* A wake answer with an upstream: the Space answers now.  Updates its feed entry and
 * the table at once, ahead of the route feed. */
void px__routes_wake_answer(const char *id, const char *stage, const char *upstream);

#endif
