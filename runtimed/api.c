/* The HTTP server: civetweb with a bounded worker pool, one handler for /api that
 * authenticates and routes, and JSON 404s for everything else. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api-internal.h"
#include "api-repo.h"
#include "cleanup.h"
#include "log.h"
#include "banned.h"

/* Splits the decoded path after "/api/" into segments.  Empty segments ("//") and
 * anything that does not fit are refused by the caller as 404. */
static bool split_path(struct rt_req *r)
{
    char *p, *save = NULL;

    if (!r->ri->local_uri || strlen(r->ri->local_uri) >= sizeof(r->path))
        return false;
    (void) snprintf(r->path, sizeof(r->path), "%s", r->ri->local_uri);
    if (strncmp(r->path, "/api/", 5) != 0)
        return false;
    if (strstr(r->path, "//"))
        return false;
    for (p = strtok_r(r->path + 5, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
        if (r->nseg == RT_MAX_SEGS)
            return false;
        r->seg[r->nseg++] = p;
    }
    return r->nseg > 0;
}

static void log_request(struct rt_req *r)
{
    struct rt_log_ctx ctx = { .action = "api" };
    const char *who = r->who.anonymous            ? "-"
                      : rt_auth_is_proxy(&r->who) ? "(proxy)"
                                                  : r->who.token.user;

    enum rt_log_level lvl = RT_LOG_INFO;

    /* Successful reads (the proxy polls routes every second) only at debug level. */
    if (r->status >= 500)
        lvl = RT_LOG_ERR;
    else if (r->status < 400 && (rt__is(r, "GET") || rt__is(r, "HEAD")))
        lvl = RT_LOG_DEBUG;
    /* Path only: bodies and query strings are never logged (they may carry secrets). */
    rt_log(lvl, &ctx, "%s %s %d user=%s", r->method, r->ri->local_uri ? r->ri->local_uri : "?",
           r->status, who);
}

static int route(struct rt_req *r)
{
    const char *top = r->seg[0];

    if (strcmp(top, "proxy") == 0)
        return rt__api_proxy(r);
    if (rt_auth_is_proxy(&r->who))
        return rt__reply_error(r, 403, "the proxy token may call only /api/proxy/");
    if (strcmp(top, "whoami-v2") == 0 && r->nseg == 1)
        return rt__api_whoami(r);
    if (strcmp(top, "repos") == 0)
        return rt__api_repos(r);
    if (rt__api_repo_owns(r)) /* preupload, commit, tree, paths-info, LFS: api-repo.c */
        return rt__api_repo(r);
    if (strcmp(top, "validate-yaml") == 0 && r->nseg == 1)
        return rt__api_validate_yaml(r);
    if (strcmp(top, "spaces") == 0 && r->nseg == 3 && strcmp(r->seg[1], "zero-gpu") == 0 &&
        strcmp(r->seg[2], "quota") == 0)
        return rt__api_gpu_quota(r); /* api-gpu.c */
    if (strcmp(top, "spaces") == 0)
        return rt__api_spaces(r);
    if (strcmp(top, "admin") == 0 && r->nseg == 2 && strcmp(r->seg[1], "gpu-leases") == 0)
        return rt__api_gpu_leases(r);
    if (strcmp(top, "admin") == 0 && r->nseg == 2 && strcmp(r->seg[1], "backup") == 0)
        return rt__api_backup(r); /* runtimed/backup-api.c */
    if (strcmp(top, "admin") == 0)
        return rt__api_admin(r);
    return rt__reply_error(r, 404, "no such endpoint");
}

static int on_api(struct mg_connection *conn, void *cbdata)
{
    struct rt_api *api = cbdata;
    struct rt_req r = { 0 };
    struct rt_err err = { 0 };
    int rc = rt__req_start(&r, conn, api, &err);

    if (!split_path(&r)) {
        rt__reply_error(&r, 404, "no such endpoint");
        goto out;
    }
    if (rc < 0) {
        if (rc == -EACCES)
            rt__reply_error(&r, 401, "%s", err.msg);
        else
            rt__reply_err(&r, rc, &err);
        goto out;
    }
    route(&r);
out:
    if (!r.status)
        rt__reply_error(&r, 500, "internal error: no answer");
    rt__flush(&r);
    log_request(&r);
    rt_principal_done(&r.who);
    free(r.out);
    return r.status;
}

static int on_other(struct mg_connection *conn, void *cbdata)
{
    struct rt_req r = { .conn = conn, .ri = mg_get_request_info(conn), .api = cbdata };

    r.method = r.ri->request_method ? r.ri->request_method : "";
    rt__reply_error(&r, 404, "no such endpoint");
    rt__flush(&r);
    return r.status;
}

static int on_log_message(const struct mg_connection *conn, const char *message)
{
    struct rt_log_ctx ctx = { .action = "http" };

    rt_log(RT_LOG_WARN, &ctx, "%s", message);
    return 1;
}

/* /spaces/OWNER/NAME/...: the Hub's resolve and LFS paths (api-lfs.c), else git smart
 * HTTP (api-git.c). */
static int on_spaces(struct mg_connection *conn, void *cbdata)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);

    if (ri->local_uri && rt__repo_web_owns(ri->local_uri))
        return rt__repo_web_handler(conn, cbdata);
    return rt__git_handler(conn, cbdata);
}

int rt_api_start(struct rt_api *api, struct rt_err *err)
{
    char threads[16], err_text[256] = "";
    unsigned err_code = 0;
    struct mg_callbacks cb = { .log_message = on_log_message };
    const char *opts[] = {
        "listening_ports",
        api->cfg->listen,
        "num_threads",
        threads,
        "request_timeout_ms",
        "10000",
        "enable_keep_alive",
        "yes",
        "keep_alive_timeout_ms",
        "5000",
        "max_request_size",
        "16384", /* request line and headers; bodies are limited apart */
        "decode_url",
        "yes",
        NULL,
        NULL,
    };
    struct mg_init_data init = { .callbacks = &cb,
                                 .user_data = api,
                                 .configuration_options = opts };
    struct mg_error_data mgerr = { .code = &err_code,
                                   .text = err_text,
                                   .text_buffer_size = sizeof(err_text) };

    (void) snprintf(threads, sizeof(threads), "%lld", (long long) api->cfg->api_threads);
    atomic_store(&api->stopping, false);
    atomic_store(&api->log_streams, 0);
    (void) mg_init_library(0);
    api->ctx = mg_start2(&init, &mgerr);
    if (!api->ctx) {
        mg_exit_library();
        return rt_err_set(err, EADDRINUSE, "listen on '%s': %s", api->cfg->listen,
                          err_text[0] ? err_text : "civetweb failed to start");
    }
    mg_set_request_handler(api->ctx, "/api", on_api, api);
    mg_set_request_handler(api->ctx, "/spaces", on_spaces, api);
    mg_set_request_handler(api->ctx, "**", on_other, api);
    return 0;
}

struct waker {
    int port;
    bool ipv6;
    atomic_bool done;
};

/* civetweb's accept loop polls with a 2 s timeout before it sees the stop flag; a
 * connection wakes it at once, so runtimed stops in milliseconds. */
static void *wake_accept_loop(void *p)
{
    struct waker *w = p;

    for (int i = 0; i < 100 && !atomic_load(&w->done); i++) {
        struct timespec ts = { .tv_nsec = 20 * 1000000L };
        int fd = socket(w->ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        (void) nanosleep(&ts, NULL);
        if (fd < 0)
            continue;
        if (w->ipv6) {
            struct sockaddr_in6 a = { .sin6_family = AF_INET6,
                                      .sin6_port = htons(w->port),
                                      .sin6_addr = IN6ADDR_LOOPBACK_INIT };
            (void) connect(fd, (struct sockaddr *) &a, sizeof(a));
        } else {
            struct sockaddr_in a = { .sin_family = AF_INET,
                                     .sin_port = htons(w->port),
                                     .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
            (void) connect(fd, (struct sockaddr *) &a, sizeof(a));
        }
        (void) close(fd);
    }
    return NULL;
}

void rt_api_stop(struct rt_api *api)
{
    struct mg_server_port port = { 0 };
    struct waker w = { 0 };
    pthread_t t;
    bool waking = false;

    if (!api->ctx)
        return;
    atomic_store(&api->stopping, true);
    if (mg_get_server_ports(api->ctx, 1, &port) == 1) {
        w.port = port.port;
        w.ipv6 = port.protocol == 2;
        waking = pthread_create(&t, NULL, wake_accept_loop, &w) == 0;
    }
    mg_stop(api->ctx);
    if (waking) {
        atomic_store(&w.done, true);
        (void) pthread_join(t, NULL);
    }
    api->ctx = NULL;
    mg_exit_library();
}
