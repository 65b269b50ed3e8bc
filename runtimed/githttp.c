#include "githttp.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cleanup.h"
#include "spawn.h"
#include "util.h"
#include "banned.h"

#define CGI_HEAD_MAX (64 * 1024)
#define IO_CHUNK (64 * 1024)

enum rt_git_service rt_git_http_classify(const char *method, const char *suffix, const char *query,
                                         bool *ret_write)
{
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;

    *ret_write = false;
    if (get && strcmp(suffix, "/info/refs") == 0) {
        if (query && strcmp(query, "service=git-receive-pack") == 0) {
            *ret_write = true;
            return RT_GIT_INFO_REFS;
        }
        /* No service: the old dumb protocol, which we do not serve. */
        if (query && strcmp(query, "service=git-upload-pack") == 0)
            return RT_GIT_INFO_REFS;
        return RT_GIT_NONE;
    }
    if (post && strcmp(suffix, "/git-upload-pack") == 0)
        return RT_GIT_UPLOAD_PACK;
    if (post && strcmp(suffix, "/git-receive-pack") == 0) {
        *ret_write = true;
        return RT_GIT_RECEIVE_PACK;
    }
    return RT_GIT_NONE;
}

struct cgi_env {
    char *vars[20];
    int n;
};

static int env_add(struct cgi_env *e, const char *key, const char *value)
{
    char *s;

    if (!value)
        return 0;
    if (e->n + 1 >= (int) ARRAY_SIZE(e->vars) || asprintf(&s, "%s=%s", key, value) < 0)
        return -ENOMEM;
    e->vars[e->n++] = s;
    e->vars[e->n] = NULL;
    return 0;
}

static void env_done(struct cgi_env *e)
{
    for (int i = 0; i < e->n; i++)
        free(e->vars[i]);
}

static int build_env(struct cgi_env *e, const char *repo_dir, const struct rt_git_http_request *q)
{
    char root[PATH_MAX], base[PATH_MAX], path_info[PATH_MAX + 64], len[32];
    int r = 0;

    if (strlen(repo_dir) >= sizeof(root))
        return -ENAMETOOLONG;
    memcpy(root, repo_dir, strlen(repo_dir) + 1);
    memcpy(base, repo_dir, strlen(repo_dir) + 1);
    (void) snprintf(path_info, sizeof(path_info), "/%s%s", basename(base), q->suffix);
    (void) snprintf(len, sizeof(len), "%lld", q->content_length);
    r |= env_add(e, "GIT_PROJECT_ROOT", dirname(root));
    r |= env_add(e, "PATH_INFO", path_info);
    r |= env_add(e, "GIT_HTTP_EXPORT_ALL", "1");
    r |= env_add(e, "GATEWAY_INTERFACE", "CGI/1.1");
    r |= env_add(e, "SERVER_PROTOCOL", "HTTP/1.1");
    r |= env_add(e, "REQUEST_METHOD", q->method);
    r |= env_add(e, "QUERY_STRING", q->query ? q->query : "");
    r |= env_add(e, "CONTENT_TYPE", q->content_type);
    r |= env_add(e, "CONTENT_LENGTH", q->content_length >= 0 ? len : NULL);
    r |= env_add(e, "HTTP_CONTENT_ENCODING", q->content_encoding);
    r |= env_add(e, "GIT_PROTOCOL", q->git_protocol);
    r |= env_add(e, "REMOTE_USER", q->remote_user ? q->remote_user : "anonymous");
    r |= env_add(e, "REMOTE_ADDR", q->remote_addr);
    /* git runs with a fixed, minimal environment: no user or system config can change
     * what it accepts. */
    r |= env_add(e, "PATH", "/usr/bin:/bin");
    r |= env_add(e, "HOME", "/nonexistent");
    r |= env_add(e, "GIT_CONFIG_NOSYSTEM", "1");
    return r ? -ENOMEM : 0;
}

struct response {
    rt_git_write_fn wr;
    void *ctx;
    char head[CGI_HEAD_MAX];
    size_t head_len;
    bool head_sent;
    int status;
    bool client_gone;
};

static int send_all(struct response *rs, const void *buf, size_t len)
{
    if (rs->client_gone)
        return -EPIPE;
    if (len && rs->wr(rs->ctx, buf, len) < 0) {
        rs->client_gone = true;
        return -EPIPE;
    }
    return 0;
}

/* Turns the CGI head ("Status: 404 Not Found\r\nContent-Type: ...\r\n\r\n") into an
 * HTTP/1.1 head with a chunked body, and sends it. */
static int send_head(struct response *rs, char *head)
{
    char out[CGI_HEAD_MAX + 256];
    const char *reason = "OK";
    size_t pos = 0;
    char *save = NULL;

    rs->status = 200;
    for (char *line = strtok_r(head, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        if (strncasecmp(line, "Status:", 7) == 0) {
            char *p = line + 7;
            while (*p == ' ')
                p++;
            rs->status = (int) strtol(p, &p, 10);
            while (*p == ' ')
                p++;
            reason = *p ? p : "Unknown";
            if (rs->status < 100 || rs->status > 599)
                rs->status = 502;
            continue;
        }
        /* We frame the body ourselves. */
        if (strncasecmp(line, "Content-Length:", 15) == 0 ||
            strncasecmp(line, "Transfer-Encoding:", 18) == 0 ||
            strncasecmp(line, "Connection:", 11) == 0)
            continue;
        pos += (size_t) snprintf(out + pos, sizeof(out) - pos, "%s\r\n", line);
        if (pos >= sizeof(out) - 128)
            return -E2BIG;
    }
    {
        char first[128];
        int n = snprintf(first, sizeof(first), "HTTP/1.1 %d %s\r\n", rs->status, reason);
        if (send_all(rs, first, (size_t) n) < 0)
            return -EPIPE;
    }
    pos += (size_t) snprintf(out + pos, sizeof(out) - pos, "Transfer-Encoding: chunked\r\n\r\n");
    rs->head_sent = true;
    return send_all(rs, out, pos);
}

static int send_chunk(struct response *rs, const char *buf, size_t len)
{
    char size[32];
    int n;

    if (!len)
        return 0;
    n = snprintf(size, sizeof(size), "%zx\r\n", len);
    if (send_all(rs, size, (size_t) n) < 0 || send_all(rs, buf, len) < 0 ||
        send_all(rs, "\r\n", 2) < 0)
        return -EPIPE;
    return 0;
}

/* Feeds git's stdout to the client: the head first (once complete), then the body. */
static int on_output(struct response *rs, const char *buf, size_t len)
{
    char *end;
    size_t head_bytes, sep;

    if (rs->head_sent)
        return send_chunk(rs, buf, len);
    if (rs->head_len + len >= sizeof(rs->head))
        return -E2BIG;
    memcpy(rs->head + rs->head_len, buf, len);
    rs->head_len += len;
    rs->head[rs->head_len] = '\0';
    if ((end = strstr(rs->head, "\r\n\r\n")))
        sep = 4;
    else if ((end = strstr(rs->head, "\n\n")))
        sep = 2;
    else
        return 0;
    head_bytes = (size_t) (end - rs->head) + sep;
    {
        char body[CGI_HEAD_MAX];
        size_t body_len = rs->head_len - head_bytes;
        int r;
        memcpy(body, rs->head + head_bytes, body_len);
        *end = '\0';
        r = send_head(rs, rs->head);
        if (r < 0)
            return r;
        return send_chunk(rs, body, body_len);
    }
}

static void send_plain(struct response *rs, int status, const char *reason, const char *msg)
{
    char buf[1024];
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%s",
                     status, reason, strlen(msg), msg);
    rs->status = status;
    rs->head_sent = true;
    (void) send_all(rs, buf, (size_t) n);
}

static const char *backend_path(void)
{
    static char path[PATH_MAX];
    struct rt_err err;
    char out[PATH_MAX];

    if (path[0])
        return path;
    if (rt_run_capture((const char *const[]){ "git", "--exec-path", NULL }, NULL, out, sizeof(out),
                       NULL, 0, &err) == 0) {
        out[strcspn(out, "\n")] = '\0';
        (void) snprintf(path, sizeof(path), "%s/git-http-backend", out);
    } else {
        (void) snprintf(path, sizeof(path), "/usr/lib/git-core/git-http-backend");
    }
    return path;
}

int rt_git_http_serve(const char *repo_dir, const struct rt_git_http_request *req,
                      rt_git_read_fn rd, rt_git_write_fn wr, void *ctx, struct rt_err *err)
{
    _cleanup_close_ int in_wr = -1, out_rd = -1, err_rd = -1;
    int in_rd = -1, out_wr = -1, err_wr = -1, p[2], r, status;
    struct cgi_env env = { .n = 0 };
    _cleanup_free_ struct response *rs = calloc(1, sizeof(*rs));
    _cleanup_free_ char *buf = malloc(IO_CHUNK);
    char inbuf[IO_CHUNK], errtext[2048] = "";
    size_t in_len = 0, in_off = 0, err_len = 0;
    bool body_done = req->content_length == 0 || strcmp(req->method, "GET") == 0;
    struct rt_spawn_opts o = { .argv = (const char *const[]){ backend_path(), NULL } };
    pid_t pid;

    if (!rs || !buf)
        return rt_err_set(err, ENOMEM, "serve git request");
    rs->wr = wr;
    rs->ctx = ctx;
    r = build_env(&env, repo_dir, req);
    if (r < 0) {
        env_done(&env);
        return rt_err_set(err, -r, "prepare git-http-backend environment");
    }
    o.envp = (const char *const *) env.vars;
    if (pipe2(p, O_CLOEXEC) < 0)
        goto pipe_fail;
    in_rd = p[0];
    in_wr = p[1];
    if (pipe2(p, O_CLOEXEC) < 0)
        goto pipe_fail;
    out_rd = p[0];
    out_wr = p[1];
    if (pipe2(p, O_CLOEXEC) < 0)
        goto pipe_fail;
    err_rd = p[0];
    err_wr = p[1];
    o.stdin_fd = in_rd;
    o.stdout_fd = out_wr;
    o.stderr_fd = err_wr;
    r = rt_spawn(&o, &pid, err);
    env_done(&env);
    in_rd = rt_close(in_rd);
    out_wr = rt_close(out_wr);
    err_wr = rt_close(err_wr);
    if (r < 0)
        return r;
    /* Writes to git must never block us while git waits for us to read its output. */
    (void) fcntl(in_wr, F_SETFL, O_NONBLOCK);
    if (body_done)
        in_wr = rt_close(in_wr);

    while (out_rd >= 0 || err_rd >= 0) {
        struct pollfd pfd[3] = {
            { .fd = out_rd, .events = POLLIN },
            { .fd = err_rd, .events = POLLIN },
            { .fd = in_wr, .events = POLLOUT },
        };
        ssize_t n;

        if (in_wr >= 0 && in_off == in_len && !body_done) {
            n = rd(ctx, inbuf, sizeof(inbuf));
            if (n <= 0) {
                body_done = true;
                in_wr = rt_close(in_wr);
                pfd[2].fd = -1;
            } else {
                in_len = (size_t) n;
                in_off = 0;
            }
        }
        if (poll(pfd, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[2].revents & (POLLOUT | POLLERR | POLLHUP)) {
            n = write(in_wr, inbuf + in_off, in_len - in_off);
            if (n > 0) {
                in_off += (size_t) n;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                /* git stopped reading (it refused the push): drop the rest. */
                body_done = true;
                in_wr = rt_close(in_wr);
            }
        }
        if (pfd[0].revents) {
            n = read(out_rd, buf, IO_CHUNK);
            if (n > 0) {
                if (on_output(rs, buf, (size_t) n) < 0)
                    break;
            } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                out_rd = rt_close(out_rd);
            }
        }
        if (pfd[1].revents) {
            char tmp[1024];
            n = read(err_rd, tmp, sizeof(tmp));
            if (n > 0) {
                size_t take = (size_t) n;
                if (err_len + take >= sizeof(errtext))
                    take = sizeof(errtext) - 1 - err_len;
                memcpy(errtext + err_len, tmp, take);
                err_len += take;
                errtext[err_len] = '\0';
            } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                err_rd = rt_close(err_rd);
            }
        }
    }
    if (out_rd >= 0 || rs->client_gone)
        (void) kill(pid, SIGKILL); /* the client left or git misbehaved: stop it */
    status = rt_spawn_wait(pid);
    if (!rs->head_sent) {
        if (errtext[0])
            errtext[strcspn(errtext, "\n")] = '\0';
        send_plain(rs, 500, "Internal Server Error", "git failed\n");
        (void) rt_err_set(err, EIO, "git-http-backend exited with %d: %s", status,
                          errtext[0] ? errtext : "no output");
        return rs->client_gone ? -EPIPE : 500;
    }
    if (rs->client_gone)
        return rt_err_set(err, EPIPE, "the git client went away");
    if (send_all(rs, "0\r\n\r\n", 5) < 0)
        return rt_err_set(err, EPIPE, "the git client went away");
    if (errtext[0]) {
        errtext[strcspn(errtext, "\n")] = '\0';
        (void) rt_err_set(err, 0, "git: %s", errtext);
        err->code = 0;
    }
    return rs->status;

pipe_fail:
    r = errno;
    env_done(&env);
    (void) rt_close(in_rd);
    (void) rt_close(out_wr);
    (void) rt_close(err_wr);
    return rt_err_set(err, r, "create pipes for git-http-backend");
}
