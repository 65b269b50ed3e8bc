/* git's smart HTTP protocol, served by the real git-http-backend as a CGI program.
 * The caller has already authenticated the request and decided whether it may write;
 * this module only moves bytes between the HTTP connection and git. */
#ifndef SP_RUNTIMED_GITHTTP_H
#define SP_RUNTIMED_GITHTTP_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

enum rt_git_service {
    RT_GIT_NONE = 0,     /* not a git request */
    RT_GIT_INFO_REFS,    /* GET  .../info/refs?service=git-upload-pack|git-receive-pack */
    RT_GIT_UPLOAD_PACK,  /* POST .../git-upload-pack (clone, fetch) */
    RT_GIT_RECEIVE_PACK, /* POST .../git-receive-pack (push) */
};

/* Classifies the path that follows a repository's URL ("/info/refs",
 * "/git-receive-pack") and, for info/refs, the query.  Sets *ret_write when the
 * request would change the repository (a push, or the refs advertisement for one). */
enum rt_git_service rt_git_http_classify(const char *method, const char *suffix, const char *query,
                                         bool *ret_write);

struct rt_git_http_request {
    const char *method;           /* GET or POST */
    const char *suffix;           /* "/info/refs", "/git-upload-pack", ... */
    const char *query;            /* may be NULL */
    const char *content_type;     /* may be NULL */
    const char *content_encoding; /* "gzip" or NULL */
    const char *git_protocol;     /* the Git-Protocol header (protocol v2), or NULL */
    const char *remote_user;      /* who pushes, for the reflog */
    const char *remote_addr;
    long long content_length; /* -1 when unknown (chunked) */
};

/* Reads up to @len bytes of the request body: >0 bytes, 0 at its end, <0 on error. */
typedef ssize_t (*rt_git_read_fn)(void *ctx, void *buf, size_t len);
/* Writes raw response bytes to the client: 0 or <0 when the client is gone. */
typedef int (*rt_git_write_fn)(void *ctx, const void *buf, size_t len);

/* Runs git-http-backend for the bare repository at @repo_dir and streams its answer as
 * a complete HTTP/1.1 response (status line, headers, chunked body) through @wr.
 * Request body and response flow at the same time, so neither side can fill a pipe
 * and stall.  Returns the HTTP status sent (200, 404...) or -errno when nothing could
 * be sent; git's stderr, if any, is kept in @err's message with status 500. */
int rt_git_http_serve(const char *repo_dir, const struct rt_git_http_request *req,
                      rt_git_read_fn rd, rt_git_write_fn wr, void *ctx, struct rt_err *err);

#endif
