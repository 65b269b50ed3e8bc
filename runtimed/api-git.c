/* git over smart HTTP at /spaces/OWNER/NAME (and /spaces/OWNER/NAME.git): runtimed's
 * own auth in front of git-http-backend.  A push that moves main queues a build.
 *
 * Who may do what, as for the API: clone and fetch need read access (anyone for a public
 * Space), a push needs write access.  An anonymous request that needs more is asked for
 * credentials (401 with a Basic challenge, which is what makes git send the token given
 * in the URL); a known caller without access gets the 404 of a missing Space, so private
 * Spaces cannot be found by probing. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api-internal.h"
#include "builder-job.h"
#include "builder.h"
#include "githttp.h"
#include "gitrepo.h"
#include "lifecycle.h"
#include "log.h"
#include "names.h"
#include "spawn.h"
#include "metrics.h"
#include "banned.h"

struct git_conn {
    struct mg_connection *conn;
};

static ssize_t git_read(void *ctx, void *buf, size_t len)
{
    struct git_conn *g = ctx;
    int n = mg_read(g->conn, buf, len);

    return n < 0 ? -EIO : n;
}

static int git_write(void *ctx, const void *buf, size_t len)
{
    struct git_conn *g = ctx;

    return mg_write(g->conn, buf, len) == (int) len ? 0 : -EPIPE;
}

/* A plain-text answer git shows to its user ("remote: ..." is not needed: git prints
 * the body of an error for smart HTTP). */
static int reply_text(struct rt_req *r, int status, bool challenge, const char *msg)
{
    r->status = status;
    r->sent = true;
    mg_response_header_start(r->conn, status);
    mg_response_header_add(r->conn, "Content-Type", "text/plain; charset=utf-8", -1);
    if (challenge)
        mg_response_header_add(r->conn, "WWW-Authenticate", "Basic realm=\"Spaceport\"", -1);
    {
        char len[32];
        (void) snprintf(len, sizeof(len), "%zu", strlen(msg) + 1);
        mg_response_header_add(r->conn, "Content-Length", len, -1);
    }
    mg_response_header_send(r->conn);
    (void) mg_write(r->conn, msg, strlen(msg));
    (void) mg_write(r->conn, "\n", 1);
    return status;
}

/* Splits "/spaces/OWNER/NAME[.git]/SUFFIX" (already URL-decoded). */
static bool parse_path(const char *uri, char owner[RT_NAME_SIZE], char name[RT_NAME_SIZE],
                       const char **ret_suffix)
{
    const char *p, *slash, *end;
    size_t n;

    if (strncmp(uri, "/spaces/", 8) != 0)
        return false;
    p = uri + 8;
    slash = strchr(p, '/');
    if (!slash || slash == p || (size_t) (slash - p) >= RT_NAME_SIZE)
        return false;
    (void) snprintf(owner, RT_NAME_SIZE, "%.*s", (int) (slash - p), p);
    p = slash + 1;
    end = strchr(p, '/');
    if (!end)
        return false;
    n = (size_t) (end - p);
    if (n > 4 && strncmp(end - 4, ".git", 4) == 0)
        n -= 4;
    if (n == 0 || n >= RT_NAME_SIZE)
        return false;
    (void) snprintf(name, RT_NAME_SIZE, "%.*s", (int) n, p);
    *ret_suffix = end;
    return true;
}

static int mkdir_parent(const char *repo)
{
    char dir[PATH_MAX];
    char *slash;

    (void) snprintf(dir, sizeof(dir), "%s", repo);
    slash = strrchr(dir, '/');
    if (!slash)
        return -EINVAL;
    *slash = '\0';
    /* DATA/repos, then DATA/repos/OWNER */
    slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
            return -errno;
        *slash = '/';
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* What a push changed in the Space's row before it ran, to undo when main did not move. */
struct pre_push {
    bool set;
    char stage[RT_STAGE_SIZE];
    char error[512];
    char mine[RT_STAGE_SIZE];
};

/* Before a push runs, the stage already says BUILDING (or RUNNING_BUILDING), so whoever
 * polls the moment `git push` returns never sees the stage from before the push.  The
 * worker sets it again when the build starts. */
static void before_push(struct rt_req *r, const struct rt_space *sp, struct pre_push *p)
{
    struct rt_err err = { 0 };
    struct rt_space s;
    bool running;

    if (!r->api->builder)
        return;
    running = r->api->lc && rt_lifecycle_is_running(r->api->lc, sp->id);
    (void) snprintf(p->mine, sizeof(p->mine), "%s", running ? "RUNNING_BUILDING" : "BUILDING");
    rt_store_lock(r->st);
    if (rt_store_space_get(r->st, sp->owner, sp->name, &s, &err) == 0 && s.id == sp->id) {
        (void) snprintf(p->stage, sizeof(p->stage), "%s", s.stage);
        (void) snprintf(p->error, sizeof(p->error), "%s", s.error);
        (void) snprintf(s.stage, sizeof(s.stage), "%s", p->mine);
        s.error[0] = '\0';
        p->set = rt_store_space_update(r->st, &s, &err) >= 0;
    }
    rt_store_unlock(r->st);
}

/* The push failed or left main alone: back to the stage it had, unless something else
 * changed it meanwhile. */
static void undo_push(struct rt_req *r, const struct rt_space *sp, const struct pre_push *p)
{
    struct rt_err err = { 0 };
    struct rt_space s;

    if (!p->set)
        return;
    rt_store_lock(r->st);
    if (rt_store_space_get(r->st, sp->owner, sp->name, &s, &err) == 0 && s.id == sp->id &&
        strcmp(s.stage, p->mine) == 0) {
        (void) snprintf(s.stage, sizeof(s.stage), "%s", p->stage);
        (void) snprintf(s.error, sizeof(s.error), "%s", p->error);
        (void) rt_store_space_update(r->st, &s, &err);
    }
    rt_store_unlock(r->st);
}

/* After a push: when main moved, record the revision and queue the build. */
static void after_push(struct rt_req *r, const struct rt_space *sp, const char *repo,
                       const char *before, const struct pre_push *pre)
{
    struct rt_log_ctx ctx = { .app = sp->host, .action = "push" };
    char sha[RT_GIT_SHA_LEN + 1];
    struct rt_err err = { 0 };

    if (rt_git_resolve(repo, "refs/heads/main", sha, &err) < 0 || strcmp(sha, before) == 0) {
        undo_push(r, sp, pre);
        return;
    }
    rt_log(RT_LOG_INFO, &ctx, "main of '%s/%s' is now %.12s", sp->owner, sp->name, sha);
    rt_metrics_push();
    rt_store_lock(r->st);
    (void) rt_store_revision_add(r->st, sp->id, sha, "refs/heads/main", &err);
    rt_store_unlock(r->st);
    if (r->api->builder && rt_builder_enqueue(r->api->builder, sp->id, sha, false, &err) < 0) {
        rt_log(RT_LOG_ERR, &ctx, "queue the build of %.12s: %s", sha, err.msg);
        undo_push(r, sp, pre);
    }
}

struct serve_call {
    const char *repo;
    const struct rt_git_http_request *req;
    struct git_conn *g;
    struct rt_err *err;
    int rc;
};

static void *serve_thread(void *p)
{
    struct serve_call *c = p;

    c->rc = rt_git_http_serve(c->repo, c->req, git_read, git_write, c->g, c->err);
    return NULL;
}

/* civetweb's workers have small stacks; git-http-backend's relay wants more.  The worker
 * waits for a thread with a stack of its own. */
static int serve_big_stack(const char *repo, const struct rt_git_http_request *req,
                           struct git_conn *g, struct rt_err *err)
{
    struct serve_call c = { .repo = repo, .req = req, .g = g, .err = err };
    pthread_attr_t attr;
    pthread_t t;
    int r;

    if (pthread_attr_init(&attr) != 0)
        return rt_err_set(err, ENOMEM, "start the git relay");
    (void) pthread_attr_setstacksize(&attr, 4u << 20);
    r = pthread_create(&t, &attr, serve_thread, &c);
    pthread_attr_destroy(&attr);
    if (r != 0)
        return rt_err_set(err, r, "start the git relay");
    (void) pthread_join(t, NULL);
    return c.rc;
}

static int serve(struct rt_req *r)
{
    char owner[RT_NAME_SIZE], name[RT_NAME_SIZE], repo[PATH_MAX], before[RT_GIT_SHA_LEN + 1] = "";
    const char *suffix = NULL;
    struct rt_space s;
    struct rt_err err = { 0 };
    struct rt_log_ctx ctx = { .action = "git" };
    struct pre_push pre = { 0 };
    enum rt_git_service svc;
    bool write = false;
    int rc;

    if (!parse_path(r->ri->local_uri ? r->ri->local_uri : "", owner, name, &suffix) ||
        rt_name_check(owner, "owner", &err) < 0 || rt_name_check(name, "name", &err) < 0)
        return reply_text(r, 404, false, "Repository not found");
    svc = rt_git_http_classify(r->method, suffix, r->ri->query_string, &write);
    if (svc == RT_GIT_NONE)
        return reply_text(r, 404, false, "not a git smart HTTP request");

    rt_store_lock(r->st);
    rc = rt_store_space_get(r->st, owner, name, &s, &err);
    rt_store_unlock(r->st);
    if (rc < 0 && rc != -ENOENT)
        return reply_text(r, 500, false, "internal error");
    if (rc == -ENOENT || !rt_auth_can_read(&r->who, &s)) {
        /* Anonymous: ask for the token; git then sends the one from its URL. */
        if (r->who.anonymous)
            return reply_text(r, 401, true, "Authentication required");
        return reply_text(r, 404, false, "Repository not found");
    }
    if (write && !rt_auth_can_write(&r->who, &s)) {
        if (r->who.anonymous)
            return reply_text(r, 401, true, "Authentication required to push");
        return reply_text(r, 403, false,
                          "Pushing needs a write token of this Space's owner (or an admin)");
    }

    rt__builder_repo_dir(r->api->cfg->data_dir, s.owner, s.name, repo, sizeof(repo));
    /* Made at first use (clone of a new Space, first push); a deleted Space's repository
     * goes with it. */
    if (mkdir_parent(repo) < 0 || rt_git_init_bare(repo, 0, &err) < 0) {
        ctx.app = s.host;
        rt_log(RT_LOG_ERR, &ctx, "create the repository: %s", err.msg);
        return reply_text(r, 500, false, "could not create the repository");
    }
    if (svc == RT_GIT_RECEIVE_PACK) {
        struct rt_err ignored = { 0 };
        if (rt_git_resolve(repo, "refs/heads/main", before, &ignored) < 0)
            before[0] = '\0'; /* the first push */
        before_push(r, &s, &pre);
    }

    {
        struct git_conn g = { .conn = r->conn };
        struct rt_git_http_request req = {
            .method = r->method,
            .suffix = suffix,
            .query = r->ri->query_string,
            .content_type = mg_get_header(r->conn, "Content-Type"),
            .content_encoding = mg_get_header(r->conn, "Content-Encoding"),
            .git_protocol = mg_get_header(r->conn, "Git-Protocol"),
            .remote_user = r->who.anonymous ? "anonymous" : r->who.token.user,
            .remote_addr = r->ri->remote_addr,
            .content_length = r->ri->content_length,
        };
        r->sent = true;
        rc = serve_big_stack(repo, &req, &g, &err);
        if (rc < 0) {
            /* Nothing was sent, but git may have moved main before it failed. */
            if (svc == RT_GIT_RECEIVE_PACK)
                after_push(r, &s, repo, before, &pre);
            r->sent = false;
            return reply_text(r, 500, false, "git failed");
        }
        r->status = rc;
        ctx.app = s.host;
        if (err.msg[0])
            rt_log(RT_LOG_WARN, &ctx, "%s", err.msg);
    }
    if (svc == RT_GIT_RECEIVE_PACK)
        after_push(r, &s, repo, before, &pre);
    return r->status;
}

int rt__git_handler(struct mg_connection *conn, void *cbdata)
{
    struct rt_api *api = cbdata;
    struct rt_req r = { 0 };
    struct rt_log_ctx ctx = { .action = "git" };
    struct rt_err err = { 0 };
    int rc = rt__req_start(&r, conn, api, &err);

    if (rc < 0) {
        reply_text(&r, 401, true, rc == -EACCES ? err.msg : "Authentication failed");
    } else if (rt_auth_is_proxy(&r.who)) {
        reply_text(&r, 403, false, "the proxy token may call only /api/proxy/");
    } else {
        serve(&r);
    }
    /* Path only: query strings are never logged. */
    rt_log(r.status >= 500  ? RT_LOG_ERR
           : r.status < 400 ? RT_LOG_DEBUG
                            : RT_LOG_INFO,
           &ctx, "%s %s %d user=%s", r.method, r.ri->local_uri ? r.ri->local_uri : "?", r.status,
           r.who.anonymous ? "-" : r.who.token.user);
    rt_principal_done(&r.who);
    return r.status ? r.status : 500;
}

void rt__git_repo_remove(struct rt_api *api, const char *owner, const char *name)
{
    char repo[PATH_MAX];
    struct rt_err err = { 0 };

    rt__builder_repo_dir(api->cfg->data_dir, owner, name, repo, sizeof(repo));
    (void) rt_run_capture(
        (const char *const[]){ "rm", "-rf", "--one-file-system", "--", repo, NULL }, NULL, NULL, 0,
        NULL, 0, &err);
}
