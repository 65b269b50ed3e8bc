/* Unit tests for the device API server in-process (libgpuapi): a real loopback
 * listener driven one gpu_api_dispatch() turn at a time by a blocking client in the
 * same thread.  Grants, the SSE queue, the hooks (allow, revoke on expiry and on
 * death, a failing allow), a Space resolver, hostile input, and freeing with
 * streams open (ASan checks nothing leaks). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tap.h"
#include "cleanup.h"
#include "gpu-sched/devapi.h"
#include "util.h"

static struct gpu_api *api;

struct seen {
    unsigned allows, revokes, startups;
    enum gpu_end last_why;
    pid_t last_pid;
    bool fail_allow;
    bool break_watch; /* on_allow swaps the epoll fd for /dev/null: the watch fails */
    int saved_epfd;   /* the epoll fd while swapped, else -1 (on_revoke puts it back) */
};

/* Makes the server's next epoll_ctl fail (EINVAL) by putting /dev/null at its epoll
 * fd's number; unbreak() puts the epoll instance back. */
static void break_epoll(struct seen *s, int epfd)
{
    int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);

    s->saved_epfd = fcntl(epfd, F_DUPFD_CLOEXEC, 0);
    if (nul < 0 || s->saved_epfd < 0 || dup3(nul, epfd, O_CLOEXEC) < 0)
        abort();
    (void) close(nul);
}

static void unbreak_epoll(struct seen *s, int epfd)
{
    if (s->saved_epfd < 0)
        return;
    if (dup3(s->saved_epfd, epfd, O_CLOEXEC) < 0)
        abort();
    (void) close(s->saved_epfd);
    s->saved_epfd = -1;
}

static int on_resolve(void *ud, const char *cg, char *space, size_t cap)
{
    if (strncmp(cg, "/spaces/", 8) != 0)
        return -ENOENT;
    snprintf(space, cap, "owner/%s", cg + 8);
    return 0;
}

static int on_allow(void *ud, const struct gpu_lease_info *l, pid_t pid, pid_t *host,
                    struct rt_err *err)
{
    struct seen *s = ud;

    s->allows++;
    *host = pid;
    if (s->fail_allow)
        return rt_err_set(err, EPERM, "cannot move %d", (int) pid);
    if (s->break_watch)
        break_epoll(s, gpu_api_fd(api));
    return 0;
}

static void on_revoke(void *ud, const struct gpu_lease_info *l, pid_t pid, enum gpu_end why)
{
    struct seen *s = ud;

    s->revokes++;
    s->last_why = why;
    s->last_pid = pid;
    unbreak_epoll(s, gpu_api_fd(api));
}

static void on_startup(void *ud, const char *space)
{
    ((struct seen *) ud)->startups++;
}

static struct seen seen = { .saved_epfd = -1 };

static int dial(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons((uint16_t) gpu_api_port(api)) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *) &a, sizeof(a)) < 0)
        fd = rt_close(fd);
    return fd;
}

/* Turns the server until @fd has something to read (or @ms pass); reads it. */
static size_t pump(int fd, char *buf, size_t cap, int ms)
{
    struct rt_err err;
    size_t n = 0;

    buf[0] = '\0';
    for (int i = 0; i < ms / 5; i++) {
        struct pollfd p = { .fd = fd, .events = POLLIN };

        gpu_api_dispatch(api, 5, &err);
        if (poll(&p, 1, 0) == 1) {
            ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);

            if (r <= 0)
                break;
            n += (size_t) r;
            buf[n] = '\0';
            gpu_api_dispatch(api, 5, &err); /* anything queued right behind it */
            if (poll(&p, 1, 0) != 1)
                break;
        }
    }
    return n;
}

static size_t call(const char *line, char *buf, size_t cap)
{
    _cleanup_close_ int fd = dial();
    char req[1024];
    int n = snprintf(req, sizeof(req), "%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", line);

    if (fd < 0 || write(fd, req, (size_t) n) != n)
        return 0;
    return pump(fd, buf, cap, 2000);
}

static int status(const char *resp)
{
    int s = 0;

    return sscanf(resp, "HTTP/1.1 %d", &s) == 1 ? s : -1;
}

static void token_of(const char *resp, char tok[33])
{
    const char *p = strstr(resp, "\"allowToken\":\"");

    tok[0] = '\0';
    if (p)
        snprintf(tok, 33, "%s", p + 14);
}

static void test_basics(void)
{
    char buf[4096], tok[33], line[256];

    call("POST /startup-report", buf, sizeof(buf));
    is_int(status(buf), 200, "startup-report");
    is_int(seen.startups, 1, "startup hook");
    call("GET /queue-size", buf, sizeof(buf));
    ok(strstr(buf, "\r\n\r\n0") != NULL, "queue-size 0");
    call("POST /schedule?cgroupPath=/nowhere&taskId=1", buf, sizeof(buf));
    is_int(status(buf), 404, "unresolved cgroup: 404");
    call("POST /schedule?cgroupPath=/spaces/demo&taskId=1&durationSeconds=60", buf, sizeof(buf));
    is_int(status(buf), 200, "granted");
    ok(strstr(buf, "\"idle\":false,\"nvidiaIndex\":0,\"nvidiaUUID\":\"GPU-test-0\"") != NULL,
       "grant JSON");
    token_of(buf, tok);
    is_int(strlen(tok), 32, "allowToken");

    seen.fail_allow = true;
    snprintf(line, sizeof(line), "POST /allow?allowToken=%s&pid=%d", tok, (int) getpid());
    call(line, buf, sizeof(buf));
    is_int(status(buf), 403, "an allow hook refusing the pid: 403");
    ok(strstr(buf, "cannot move") != NULL, "with its message");
    seen.fail_allow = false;
    snprintf(line, sizeof(line), "POST /release?allowToken=%s", tok);
    call(line, buf, sizeof(buf));
    is_int(status(buf), 404, "the lease went back with the failed allow");
    call("POST /schedule?cgroupPath=/spaces/demo&durationSeconds=1&tokenVersion=2&gpuSize=xlarge",
         buf, sizeof(buf));
    is_int(status(buf), 200, "the unit is free again");
    token_of(buf, tok);
    snprintf(line, sizeof(line), "POST /release?allowToken=%s&fail=false", tok);
    call(line, buf, sizeof(buf));
    is_int(status(buf), 204, "unused lease: 204");
}

static void test_queue_and_death(void)
{
    char buf[4096], tok[33], line[256];
    _cleanup_close_ int sse = -1;
    pid_t child;
    int st;

    call("POST /schedule?cgroupPath=/spaces/other&durationSeconds=30", buf, sizeof(buf));
    is_int(status(buf), 200, "other Space granted");
    ok(strstr(buf, "\"idle\":false") != NULL, "not idle for another Space");
    token_of(buf, tok);
    child = fork();
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        pause();
        _exit(0);
    }
    snprintf(line, sizeof(line), "POST /allow?allowToken=%s&pid=%d", tok, (int) child);
    call(line, buf, sizeof(buf));
    is_int(status(buf), 200, "allowed");
    is_int(seen.allows, 2, "allow hook");

    sse = dial();
    ok(sse >= 0, "stream client");
    snprintf(line, sizeof(line),
             "POST /schedule?cgroupPath=/spaces/demo&durationSeconds=5 "
             "HTTP/1.1\r\nHost: t\r\n\r\n");
    ok(write(sse, line, strlen(line)) == (ssize_t) strlen(line), "queued request sent");
    pump(sse, buf, sizeof(buf), 500);
    ok(strstr(buf, "text/event-stream") && strstr(buf, "X-Queuing-Reason: node"), "SSE head");
    call("GET /queue-size", buf, sizeof(buf));
    if (!ok(strstr(buf, "\r\n\r\n1") != NULL, "queue-size 1")) {
        struct gpu_api_stats x;
        gpu_api_stats(api, &x);
        printf("# %s\n# conns=%u queued=%llu grants=%llu q=%zu\n", buf, x.conns,
               (unsigned long long) x.queued, (unsigned long long) x.grants,
               gpu_sched_queue_len(gpu_api_sched(api)));
    }

    kill(child, SIGKILL);
    waitpid(child, &st, 0);
    pump(sse, buf, sizeof(buf), 2000);
    ok(strstr(buf, "event: succeeded\ndata: {\"idle\":false") != NULL,
       "the dead worker's unit goes to the queue");
    ok(strstr(buf, "\r\n0\r\n\r\n") != NULL, "and the stream ends");
    is_int(seen.revokes, 1, "revoke hook");
    is_int(seen.last_why, GPU_END_FAILED, "as a death");
    is_int(seen.last_pid, child, "of that pid");
    snprintf(line, sizeof(line), "POST /release?allowToken=%s&fail=true", tok);
    call(line, buf, sizeof(buf));
    is_int(status(buf), 404, "the dead worker's lease is gone");
}

/* The worker is in its device group when watching its pidfd fails: the lease must not
 * stay granted with nothing to notice the worker's death.  It is revoked and ends. */
static void test_unwatched_worker(void)
{
    struct seen keep = seen;
    char buf[4096], tok[33], line[256];

    call("POST /schedule?cgroupPath=/spaces/demo&durationSeconds=60", buf, sizeof(buf));
    is_int(status(buf), 200, "granted");
    token_of(buf, tok);
    seen.break_watch = true;
    snprintf(line, sizeof(line), "POST /allow?allowToken=%s&pid=%d", tok, (int) getpid());
    call(line, buf, sizeof(buf));
    seen.break_watch = false;
    ok(seen.saved_epfd < 0, "the revoke hook ran (and put the epoll fd back)");
    unbreak_epoll(&seen, gpu_api_fd(api)); /* without the fix: for the checks below */
    is_int(status(buf), 500, "watching the worker failed: 500");
    is_int(seen.revokes, keep.revokes + 1, "the worker's device is revoked");
    is_int(seen.last_pid, getpid(), "that worker's");
    snprintf(line, sizeof(line), "POST /release?allowToken=%s", tok);
    call(line, buf, sizeof(buf));
    is_int(status(buf), 404, "and the lease is gone");
    call("POST /schedule?cgroupPath=/spaces/demo&durationSeconds=1", buf, sizeof(buf));
    is_int(status(buf), 200, "the unit is free again");
    token_of(buf, tok);
    snprintf(line, sizeof(line), "POST /release?allowToken=%s&fail=false", tok);
    call(line, buf, sizeof(buf));
    is_int(status(buf), 204, "released");
    seen = keep;
}

static void test_expiry(void)
{
    char buf[4096], tok[33], line[256];
    struct gpu_api_stats st;
    pid_t child;
    int ws = 0, turns = 0;

    /* The unit is held by the previous test's queued grant (5 s): wait it out. */
    for (int i = 0; i < 200 && gpu_sched_queue_len(gpu_api_sched(api)) == 0; i++) {
        call("POST /schedule?cgroupPath=/spaces/demo&durationSeconds=1&enableQueue=false", buf,
             sizeof(buf));
        if (status(buf) == 200)
            break;
        usleep(50000);
    }
    is_int(status(buf), 200, "granted for 1 s");
    token_of(buf, tok);
    child = fork();
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        pause();
        _exit(0);
    }
    snprintf(line, sizeof(line), "POST /allow?allowToken=%s&pid=%d", tok, (int) child);
    call(line, buf, sizeof(buf));
    is_int(status(buf), 200, "allowed");
    for (uint64_t end = rt_now_ns() + 3000000000ull;
         rt_now_ns() < end && waitpid(child, &ws, WNOHANG) == 0;) {
        struct rt_err err;
        gpu_api_dispatch(api, 5, &err);
        turns++;
    }
    if (!ok(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL, "the worker was SIGKILLed at its deadline"))
        printf("# ws=%d revokes=%u next=%d\n", ws, seen.revokes, gpu_api_next_ms(api));
    /* epoll_wait must sleep between events: a busy loop would take thousands. */
    ok(turns < 600, "no busy loop while waiting (%d turns)", turns);
    is_int(seen.last_why, GPU_END_EXPIRED, "revoked as expired");
    gpu_api_stats(api, &st);
    ok(st.expired >= 1, "counted");
}

static void test_hostile(void)
{
    char buf[4096];
    const char *bad[] = {
        "POST /schedule?cgroupPath=/spaces/demo&enableQueue=1",
        "POST /schedule?cgroupPath=/spaces/demo&durationSeconds=x",
        "POST /allow?allowToken=abc&pid=0",
        "POST /release?allowToken=abc&fail=no",
        "POST /schedule?cgroupPath=%",
    };

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        call(bad[i], buf, sizeof(buf));
        is_int(status(buf), 400, bad[i]);
    }
    call("DELETE /release", buf, sizeof(buf));
    is_int(status(buf), 405, "wrong method");
}

static void test_release_space(void)
{
    char buf[4096], tok[33], line[256];
    _cleanup_close_ int sse = -1;
    pid_t child;
    int ws = 0;

    call("POST /schedule?cgroupPath=/spaces/z&durationSeconds=60", buf, sizeof(buf));
    is_int(status(buf), 200, "Space z granted");
    token_of(buf, tok);
    child = fork();
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        pause();
        _exit(0);
    }
    snprintf(line, sizeof(line), "POST /allow?allowToken=%s&pid=%d", tok, (int) child);
    call(line, buf, sizeof(buf));
    is_int(status(buf), 200, "z's worker allowed");
    sse = dial();
    snprintf(line, sizeof(line), "POST /schedule?cgroupPath=/spaces/z HTTP/1.1\r\n\r\n");
    (void) !write(sse, line, strlen(line));
    pump(sse, buf, sizeof(buf), 300);
    ok(strstr(buf, "text/event-stream") != NULL, "z's second call queued");
    is_int(gpu_api_release_space(api, "owner/z"), 2, "the Space stops: lease and request end");
    pump(sse, buf, sizeof(buf), 1000);
    ok(strstr(buf, "event: failed") != NULL, "its stream is told");
    waitpid(child, &ws, 0);
    ok(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL, "its worker is killed");
    is_int(seen.last_why, GPU_END_RELEASED, "and revoked");
    snprintf(line, sizeof(line), "POST /release?allowToken=%s", tok);
    call(line, buf, sizeof(buf));
    is_int(status(buf), 404, "the lease is gone");
}

/* A Space's own listener: the Space is the listener's, whatever cgroupPath says, and
 * tokens of other Spaces are unknown through it. */
static void test_listeners(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t alen = sizeof(a);
    struct rt_err err = { 0 };
    char buf[4096], tok[33], wtok[33], line[256], req[512];
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), n;
    _cleanup_close_ int c = -1;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!ok(lfd >= 0 && bind(lfd, (struct sockaddr *) &a, sizeof(a)) == 0 && listen(lfd, 8) == 0 &&
                getsockname(lfd, (struct sockaddr *) &a, &alen) == 0,
            "a listening socket"))
        return;
    is_int(gpu_api_listener_add(api, "inst-w", "owner/w", lfd, &err), 0, "listener for owner/w");
    is_int(gpu_api_listener_add(api, "inst-w", "owner/w", 0, &err), -EEXIST, "keys are unique");
    call("POST /schedule?cgroupPath=/spaces/z&durationSeconds=60", buf, sizeof(buf));
    token_of(buf, tok);
    c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ok(c >= 0 && connect(c, (struct sockaddr *) &a, sizeof(a)) == 0, "dial owner/w's listener");
    n = snprintf(req, sizeof(req),
                 "POST /release?allowToken=%s HTTP/1.1\r\nHost: t\r\n\r\n"
                 "POST /schedule?cgroupPath=/spaces/z&durationSeconds=60 HTTP/1.1\r\nHost: t\r\n"
                 "Connection: close\r\n\r\n",
                 tok);
    (void) !write(c, req, (size_t) n);
    pump(c, buf, sizeof(buf), 1000);
    is_int(status(buf), 404, "another Space's token is unknown through it");
    ok(strstr(buf, "text/event-stream") != NULL, "its call queues behind z's lease");
    {
        struct gpu_lease_info l[4];
        size_t k = gpu_sched_list(gpu_api_sched(api), l, 4);

        ok(k == 2 && strcmp(l[1].space, "owner/w") == 0,
           "the request is the listener's Space's, not cgroupPath's");
        snprintf(wtok, sizeof(wtok), "%s", k == 2 ? l[1].token : "");
    }
    ok(gpu_api_listener_remove(api, "inst-w"), "removed");
    ok(!gpu_api_listener_remove(api, "inst-w"), "once");
    snprintf(line, sizeof(line), "POST /release?allowToken=%s", wtok);
    call(line, buf, sizeof(buf));
    is_int(status(buf), 204, "its queued request cancels through the default listener");
    snprintf(line, sizeof(line), "POST /release?allowToken=%s", tok);
    call(line, buf, sizeof(buf));
    is_int(status(buf), 204, "z's lease releases through the default listener");
    {
        _cleanup_close_ int d = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        ok(d >= 0 && connect(d, (struct sockaddr *) &a, sizeof(a)) < 0 && errno == ECONNREFUSED,
           "a removed listener refuses");
    }
}

/* gpuSize over HTTP, each pool its own server: xlarge charged twice in the 429's
 * left, a bad size 400, xlarge on a MIG-only pool 503 with a detail. */
static void test_sizes(const struct gpu_api_hooks *hooks)
{
    struct gpu_api_config cfg = { .listen = "127.0.0.1:0", .ping_ms = 100 };
    struct gpu_sched_config scfg;
    struct gpu_slot whole = { .nvidia_index = 0, .uuid = "GPU-w", .size = GPU_SIZE_XLARGE };
    struct gpu_slot mig = { .nvidia_index = 0, .uuid = "MIG-s", .size = GPU_SIZE_LARGE };
    struct gpu_api *main_api = api;
    struct rt_err err = { 0 };
    char buf[4096];

    gpu_sched_config_default(&scfg);
    if (gpu_api_new(&cfg, &scfg, &whole, 1, hooks, &api, &err) < 0) {
        api = main_api;
        ok(0, "sized server: %s", err.msg);
        return;
    }
    /* No token: the Space pays, anonymous quota 120 s. */
    call("POST /schedule?cgroupPath=/spaces/demo&durationSeconds=61&gpuSize=xlarge", buf,
         sizeof(buf));
    is_int(status(buf), 429, "xlarge 61 s = 122 quota seconds > 120: 429");
    ok(strstr(buf, "{\"left\":120,\"wait\":86400}") != NULL, "429 left 120");
    call("POST /schedule?cgroupPath=/spaces/demo&durationSeconds=30&gpuSize=xlarge", buf,
         sizeof(buf));
    is_int(status(buf), 200, "gpuSize=xlarge on a whole GPU: granted");
    ok(strstr(buf, "\"nvidiaUUID\":\"GPU-w\"") != NULL, "the whole GPU");
    call("POST /schedule?cgroupPath=/spaces/demo&durationSeconds=61&gpuSize=large", buf,
         sizeof(buf));
    is_int(status(buf), 429, "the xlarge reserved 60 of 120: a large 61 s is 429");
    ok(strstr(buf, "\"left\":60,") != NULL, "429 left 60");
    call("POST /schedule?cgroupPath=/spaces/demo&gpuSize=huge", buf, sizeof(buf));
    is_int(status(buf), 400, "gpuSize=huge: 400");
    ok(strstr(buf, "gpuSize: expected large or xlarge") != NULL, "with a detail");
    call("POST /schedule?cgroupPath=/spaces/demo&gpuSize=XLARGE", buf, sizeof(buf));
    is_int(status(buf), 400, "sizes are lowercase: 400");
    gpu_api_free(api);

    api = NULL;
    if (gpu_api_new(&cfg, &scfg, &mig, 1, hooks, &api, &err) < 0) {
        api = main_api;
        ok(0, "MIG server: %s", err.msg);
        return;
    }
    call("POST /schedule?cgroupPath=/spaces/demo&durationSeconds=10&gpuSize=xlarge", buf,
         sizeof(buf));
    is_int(status(buf), 503, "xlarge on a MIG-only pool: 503 (the client's \"No GPU\")");
    ok(strstr(buf, "{\"detail\":\"gpuSize=xlarge needs a whole GPU") != NULL,
       "with a detail naming the size");
    call("GET /queue-size", buf, sizeof(buf));
    ok(strstr(buf, "\r\n\r\n0") != NULL, "not queued");
    call("POST /schedule?cgroupPath=/spaces/demo&durationSeconds=10&gpuSize=large", buf,
         sizeof(buf));
    is_int(status(buf), 200, "large on the slice: granted");
    ok(strstr(buf, "\"nvidiaUUID\":\"MIG-s\"") != NULL, "the slice");
    call("POST /schedule?cgroupPath=/spaces/demo&durationSeconds=10", buf, sizeof(buf));
    ok(status(buf) == 200 && strstr(buf, "text/event-stream"), "no gpuSize = large: queued");
    gpu_api_free(api);
    api = main_api;
}

int main(void)
{
    struct gpu_api_config cfg = { .listen = "127.0.0.1:0", .ping_ms = 100 };
    struct gpu_sched_config scfg;
    struct gpu_slot slot = { .nvidia_index = 0, .uuid = "GPU-test-0", .size = GPU_SIZE_XLARGE };
    struct gpu_api_hooks hooks = { .on_resolve = on_resolve,
                                   .on_allow = on_allow,
                                   .on_revoke = on_revoke,
                                   .on_startup = on_startup,
                                   .userdata = &seen };
    struct rt_err err = { 0 };
    char buf[256];
    _cleanup_close_ int sse = -1;

    tap_start();
    signal(SIGPIPE, SIG_IGN);
    gpu_sched_config_default(&scfg);
    if (gpu_api_new(&cfg, &scfg, &slot, 1, &hooks, &api, &err) < 0) {
        printf("Bail out! %s\n", err.msg);
        return 1;
    }
    ok(gpu_api_port(api) > 0, "listening on a port");
    ok(gpu_api_fd(api) >= 0, "an epoll fd to embed");
    test_basics();
    test_unwatched_worker();
    test_queue_and_death();
    test_expiry();
    test_hostile();
    test_release_space();
    test_listeners();
    test_sizes(&hooks);
    /* Free with a stream open: the queued request is cancelled, nothing leaks. */
    call("POST /schedule?cgroupPath=/spaces/x&durationSeconds=60", buf, sizeof(buf));
    sse = dial();
    (void) !write(sse, "POST /schedule?cgroupPath=/spaces/y HTTP/1.1\r\n\r\n", 48);
    pump(sse, buf, sizeof(buf), 200);
    gpu_api_free(api);
    sse = rt_close(sse);
    {
        struct gpu_api_config bad = { .listen = "nonsense", .space = "a/b" };
        is_int(gpu_api_new(&bad, &scfg, &slot, 1, NULL, &api, &err), -EINVAL,
               "a bad listen address");
    }
    return tap_done();
}
