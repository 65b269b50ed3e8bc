/* The health check of a running app: an HTTP GET of the template's path at the Space's
 * upstream, as the proxy would send it. */
#ifndef SP_RUNTIMED_HEALTH_H
#define SP_RUNTIMED_HEALTH_H

#include <stdint.h>

/* Returns the HTTP status the app answered with (any status: the app is up), or
 * -errno: -ECONNREFUSED nothing listens, -ETIMEDOUT no answer within @timeout_ms,
 * -EPROTO an answer that is not HTTP. */
int rt_health_probe(const char *upstream, const char *path, uint64_t timeout_ms);

#endif
