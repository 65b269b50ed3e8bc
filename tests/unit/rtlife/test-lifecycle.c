/* The lifecycle supervisor with real shims, sandboxes and Python apps: RUNNING only once
 * the app answers, crashes, OOM kills and launch timeouts explained, a kill -9 of its
 * owner survived (reattach, never two copies), light sleep (frozen, thawed by a wake),
 * deep sleep, pause and resume, a hardware change on real cgroup limits, and a new
 * build switched in without a failed request.  Builds are layers made here: an app
 * layer with README.md and app.py, and a venv (without pip) as the deps layer.
 * Needs root (sandboxes); skips otherwise. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tap.h"
#include "runtimed/config.h"
#include "log.h"
#include "runtimed/health.h"
#include "runtimed/lifecycle.h"
#include "runtimed/shim.h"
#include "runtimed/store.h"
#include "runtimed/tiers.h"
#include "spawn.h"
#include "util.h"

static char tmp[] = "/tmp/spt-life-XXXXXX";
static char db[PATH_MAX], deps[PATH_MAX];
static struct rt_config cfg;

static const char *const WEB_PY =
    "import http.server, os\n"
    "print('web VERSION starting', flush=True)\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        b = ('VERSION ' + os.environ.get('SPACE_ID', '') + ' ' + os.environ.get('GREETING', "
    "'')).encode()\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Length', str(len(b)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(b)\n"
    "    def log_message(self, *a):\n"
    "        pass\n"
    "http.server.ThreadingHTTPServer(('0.0.0.0', 7860), H).serve_forever()\n";

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX * 2];
    FILE *f;

    (void) snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "we");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* An app layer: DATA/layers/app/<tag> with README.md and app.py. */
static void app_layer(const char *tag, const char *readme_extra, const char *py, char *ret)
{
    char readme[1024], *text = NULL, *p;

    (void) snprintf(ret, PATH_MAX, "%s/layers/app/%s", tmp, tag);
    (void) mkdir(ret, 0755);
    (void) snprintf(readme, sizeof(readme), "---\ntitle: t\nsdk: gradio\napp_file: app.py\n%s---\n",
                    readme_extra);
    write_file(ret, "README.md", readme);
    text = strdup(py);
    while (text && (p = strstr(text, "VERSION"))) {
        char *n = NULL;
        if (asprintf(&n, "%.*s%s%s", (int) (p - text), text, tag, p + 7) < 0)
            break;
        free(text);
        text = n;
    }
    write_file(ret, "app.py", text ? text : py);
    free(text);
}

static int64_t add_space(struct rt_store *st, const char *name, const char *hw)
{
    struct rt_space s = { 0 };
    struct rt_err err = { 0 };

    (void) snprintf(s.owner, sizeof(s.owner), "alice");
    (void) snprintf(s.name, sizeof(s.name), "%s", name);
    rt_space_host(s.owner, s.name, s.host);
    (void) snprintf(s.sdk, sizeof(s.sdk), "gradio");
    (void) snprintf(s.hardware, sizeof(s.hardware), "%s", hw);
    (void) snprintf(s.stage, sizeof(s.stage), "BUILDING");
    if (rt_store_space_add(st, &s, &err) < 0)
        printf("# add space: %s\n", err.msg);
    return s.id;
}

static void get(struct rt_store *st, const char *name, struct rt_space *s)
{
    struct rt_err err = { 0 };

    memset(s, 0, sizeof(*s));
    rt_store_lock(st);
    (void) rt_store_space_get(st, "alice", name, s, &err);
    rt_store_unlock(st);
}

static double now_ms(void)
{
    return (double) rt_now_ns() / 1e6;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
    (void) nanosleep(&ts, NULL);
}

/* Waits for @stage; returns the ms it took, or -1 (and says what it saw). */
static double wait_stage(struct rt_store *st, const char *name, const char *stage, double secs)
{
    double t0 = now_ms();
    struct rt_space s;

    for (;;) {
        get(st, name, &s);
        if (strcmp(s.stage, stage) == 0)
            return now_ms() - t0;
        if (now_ms() - t0 > secs * 1000) {
            printf("# %s: waited for %s, stage %s, error '%s'\n", name, stage, s.stage, s.error);
            return -1;
        }
        sleep_ms(10);
    }
}

/* GET / at @upstream; the body into @buf.  Returns the status or -errno. */
static int http_get(const char *upstream, char *buf, size_t len)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    char host[64], req[128];
    const char *colon = strrchr(upstream, ':');
    size_t got = 0;
    int fd, status = -EPROTO;
    ssize_t n;
    struct timeval tv = { .tv_sec = 5 };

    buf[0] = '\0';
    if (!colon)
        return -EINVAL;
    (void) snprintf(host, sizeof(host), "%.*s", (int) (colon - upstream), upstream);
    sa.sin_port = htons((uint16_t) atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -EINVAL;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
        status = -errno;
        close(fd);
        return status;
    }
    (void) snprintf(req, sizeof(req), "GET / HTTP/1.0\r\nHost: x\r\n\r\n");
    if (write(fd, req, strlen(req)) < 0) {
        close(fd);
        return -EIO;
    }
    char all[4096];
    while (got < sizeof(all) - 1 && (n = read(fd, all + got, sizeof(all) - 1 - got)) > 0)
        got += (size_t) n;
    all[got] = '\0';
    close(fd);
    if (sscanf(all, "HTTP/1.%*c %d", &status) != 1)
        return -EPROTO;
    char *body = strstr(all, "\r\n\r\n");
    (void) snprintf(buf, len, "%s", body ? body + 4 : "");
    return status;
}

/* Live shims of Space @id (instance dirs whose shim answers and has not exited); the
 * newest one's sandbox pid in *ret_pid. */
static int live_shims(int64_t id, pid_t *ret_pid, bool *ret_frozen)
{
    char dir[PATH_MAX];
    struct dirent *e;
    DIR *d;
    int n = 0;

    (void) snprintf(dir, sizeof(dir), "%s/run/%lld", tmp, (long long) id);
    d = opendir(dir);
    while (d && (e = readdir(d))) {
        char sub[PATH_MAX * 2];
        struct rt_shim_status ss = { 0 };
        struct rt_err err = { 0 };

        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        (void) snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
        if (rt_shim_command(sub, "status", &ss, &err) == 0 && strcmp(ss.state, "exited") != 0) {
            n++;
            if (ret_pid)
                *ret_pid = ss.pid;
            if (ret_frozen)
                *ret_frozen = ss.frozen;
        }
    }
    if (d)
        closedir(d);
    return n;
}

static unsigned long long cgroup_memory_limit(pid_t pid)
{
    char path[PATH_MAX], line[1024], cg[900] = "";
    unsigned long long v = 0;
    FILE *f;

    (void) snprintf(path, sizeof(path), "/proc/%d/cgroup", (int) pid);
    f = fopen(path, "re");
    while (f && fgets(line, sizeof(line), f)) {
        char *p = strstr(line, ":memory:");
        if (p) {
            (void) snprintf(cg, sizeof(cg), "%s", p + 8);
            cg[strcspn(cg, "\n")] = '\0';
        }
    }
    if (f)
        fclose(f);
    (void) snprintf(path, sizeof(path), "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", cg);
    f = fopen(path, "re");
    if (f && fscanf(f, "%llu", &v) != 1)
        v = 0;
    if (f)
        fclose(f);
    return v;
}

static void add_tier(struct rt_store *st, const char *name, uint64_t mem)
{
    struct rt_tier t = { .cpus = 1, .memory = mem, .disk = 1ULL << 30, .default_sleep = -1 };
    struct rt_err err = { 0 };

    (void) snprintf(t.name, sizeof(t.name), "%s", name);
    (void) snprintf(t.pretty, sizeof(t.pretty), "%s", name);
    if (rt_store_tier_add(st, &t, &err) < 0)
        printf("# tier: %s\n", err.msg);
}

static char log_got[256];
static int on_line(const struct rt_log_line *l, void *u)
{
    (void) u;
    if (strstr(l->line, "web v2 starting"))
        (void) snprintf(log_got, sizeof(log_got), "%s", l->line);
    return 0;
}

/* The first owner of the Spaces: started, then killed with SIGKILL. */
static void child_owner(int64_t web, const char *app, int wfd)
{
    struct rt_store *st = NULL;
    struct rt_lifecycle *lc = NULL;
    struct rt_err err = { 0 };

    if (rt_store_open(db, &st, &err) < 0 || rt_lifecycle_start(&cfg, st, &lc, &err) < 0) {
        fprintf(stderr, "child: %s\n", err.msg);
        _exit(1);
    }
    rt_lifecycle_build_ready(lc, web, 1, "1111111111111111111111111111111111111111", app, deps);
    for (int i = 0; i < 600; i++) {
        struct rt_space s;
        get(st, "web", &s);
        if (strcmp(s.stage, "RUNNING") == 0) {
            if (write(wfd, "R", 1) != 1)
                _exit(1);
            break;
        }
        sleep_ms(50);
    }
    if (write(wfd, "F", 1) != 1)
        _exit(1);
    pause();
    _exit(0);
}

int main(void)
{
    struct rt_store *st = NULL;
    struct rt_lifecycle *lc = NULL;
    struct rt_err err = { 0 };
    struct rt_space s;
    char cwd[PATH_MAX], path[PATH_MAX], app_v1[PATH_MAX], app_v2[PATH_MAX], app_crash[PATH_MAX],
        app_bomb[PATH_MAX], app_mute[PATH_MAX], body[512], upstream[64];
    int64_t web, crash, bomb, mute;
    pid_t pid = 0, child;
    int pfd[2];
    char c = 0;
    bool frozen = false;
    double t;

    if (geteuid() != 0) {
        printf("1..0 # SKIP the lifecycle runs sandboxes, which need root\n");
        return 0;
    }
    if (!mkdtemp(tmp) || !getcwd(cwd, sizeof(cwd)))
        return 1;
    (void) chmod(tmp, 0755);
    rt_config_defaults(&cfg);
    (void) snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", tmp);
    (void) snprintf(cfg.shim, sizeof(cfg.shim), "%s/bin/spaceport-shim", cwd);
    (void) snprintf(cfg.templates_dir, sizeof(cfg.templates_dir), "%s/templates", cwd);
    cfg.light_sleep_ms = -1;
    rt_log_level = RT_LOG_WARN;

    /* the layers */
    (void) snprintf(path, sizeof(path), "%s/layers", tmp);
    (void) mkdir(path, 0755);
    (void) snprintf(path, sizeof(path), "%s/layers/app", tmp);
    (void) mkdir(path, 0755);
    (void) snprintf(deps, sizeof(deps), "%s/layers/venv", tmp);
    is_int(rt_run_capture((const char *const[]){ "/usr/bin/python3", "-m", "venv", "--without-pip",
                                                 deps, NULL },
                          NULL, NULL, 0, NULL, 0, &err),
           0, "a venv for the deps layer");
    app_layer("v1", "", WEB_PY, app_v1);
    app_layer("v2", "", WEB_PY, app_v2);
    app_layer("crash", "",
              "import sys\nprint('loading the model', flush=True)\n"
              "print('ValueError: no weights here', flush=True)\nsys.exit(3)\n",
              app_crash);
    app_layer("bomb", "",
              "print('allocating', flush=True)\na = []\nwhile True:\n"
              "    a.append(bytearray(32 << 20))\n",
              app_bomb);
    app_layer("mute", "startup_duration_timeout: 2s\n", "import time\ntime.sleep(600)\n", app_mute);

    (void) snprintf(db, sizeof(db), "%s/spaceport.db", tmp);
    if (rt_store_open(db, &st, &err) < 0 || rt_tiers_seed(st, &err) < 0 ||
        rt_store_user_add(st, "alice", false, NULL, &err) < 0) {
        printf("# store: %s\n", err.msg);
        return 1;
    }
    add_tier(st, "t-small", 256ULL << 20);
    add_tier(st, "t-big", 512ULL << 20);
    web = add_space(st, "web", "t-small");
    crash = add_space(st, "crash", "t-small");
    bomb = add_space(st, "bomb", "t-small");
    mute = add_space(st, "mute", "t-small");
    rt_store_lock(st);
    (void) rt_store_kv_set(st, RT_KV_SECRET, web, "GREETING", "s3cret", "", &err);
    rt_store_unlock(st);
    rt_store_close(st);
    st = NULL;

    /* A first owner starts the Space and dies by SIGKILL. */
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return 1;
    child = fork();
    if (child == 0)
        child_owner(web, app_v1, pfd[1]);
    close(pfd[1]);
    ok(read(pfd[0], &c, 1) == 1 && c == 'R', "the first owner reports web RUNNING");
    close(pfd[0]);
    if (rt_store_open(db, &st, &err) < 0)
        return 1;
    get(st, "web", &s);
    (void) snprintf(upstream, sizeof(upstream), "%s", s.upstream);
    is_int(http_get(upstream, body, sizeof(body)), 200, "RUNNING: the app answers at its upstream");
    ok(strstr(body, "v1 alice/web s3cret") != NULL, "template env and secrets reach the app (%s)",
       body);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    is_int(http_get(upstream, body, sizeof(body)), 200, "the app answers with its owner dead");

    t = now_ms();
    cfg.light_sleep_ms = 1500;
    if (rt_lifecycle_start(&cfg, st, &lc, &err) < 0) {
        printf("# start: %s\n", err.msg);
        return 1;
    }
    printf("# reattach took %.1f ms\n", now_ms() - t);
    is_int(live_shims(web, &pid, NULL), 1, "after the restart one copy of web runs");
    ok(rt_lifecycle_is_running(lc, web), "the new owner knows web runs");
    get(st, "web", &s);
    is_str(s.stage, "RUNNING", "still RUNNING");
    is_str(s.upstream, upstream, "same upstream");

    /* crash, OOM kill and launch timeout, side by side */
    rt_lifecycle_build_ready(lc, crash, 2, "2222222222222222222222222222222222222222", app_crash,
                             deps);
    rt_lifecycle_build_ready(lc, bomb, 3, "3333333333333333333333333333333333333333", app_bomb,
                             deps);
    rt_lifecycle_build_ready(lc, mute, 4, "4444444444444444444444444444444444444444", app_mute,
                             deps);
    ok(wait_stage(st, "crash", "RUNTIME_ERROR", 20) >= 0, "a crashing app: RUNTIME_ERROR");
    get(st, "crash", &s);
    ok(strstr(s.error, "Exit code: 3") && strstr(s.error, "ValueError: no weights here"),
       "the error says the exit code and the last lines (%s)", s.error);
    ok(wait_stage(st, "bomb", "RUNTIME_ERROR", 30) >= 0, "a memory bomb: RUNTIME_ERROR");
    get(st, "bomb", &s);
    ok(strncmp(s.error, "Memory limit exceeded", 21) == 0, "the error says so (%s)", s.error);
    get(st, "mute", &s);
    is_str(s.stage, "APP_STARTING", "a silent app stays APP_STARTING");
    ok(wait_stage(st, "mute", "RUNTIME_ERROR", 20) >= 0, "then: RUNTIME_ERROR");
    get(st, "mute", &s);
    is_str(s.error, "Launch timed out", "the error says the launch timed out");
    is_int(live_shims(mute, NULL, NULL) + live_shims(crash, NULL, NULL) +
               live_shims(bomb, NULL, NULL),
           0, "nothing of them runs on");

    /* light sleep: frozen after 1.5 s idle, no upstream for the proxy; a wake thaws */
    for (int i = 0; i < 100 && !frozen; i++) {
        sleep_ms(100);
        (void) live_shims(web, NULL, &frozen);
    }
    ok(frozen, "idle web is frozen (light sleep)");
    get(st, "web", &s);
    ok(strcmp(s.stage, "RUNNING") == 0 && !s.upstream[0], "still RUNNING, no upstream");
    t = now_ms();
    rt_store_lock(st);
    is_int(rt_lifecycle_wake(lc, web, &err), 0, "wake");
    rt_store_unlock(st);
    get(st, "web", &s);
    is_int(http_get(s.upstream, body, sizeof(body)), 200, "answered after the wake");
    printf("# light sleep: wake to answer %.1f ms\n", now_ms() - t);
    ok(now_ms() - t < 1000, "within a second");

    /* a new build switches in without a failed request */
    {
        int fails = 0, n = 0;
        bool v2 = false;
        rt_lifecycle_build_ready(lc, web, 5, "5555555555555555555555555555555555555555", app_v2,
                                 deps);
        for (t = now_ms(); now_ms() - t < 30000 && !v2; n++) {
            get(st, "web", &s);
            if (http_get(s.upstream, body, sizeof(body)) != 200)
                fails++;
            v2 = strncmp(body, "v2", 2) == 0;
            rt_store_lock(st);
            rt_lifecycle_activity(lc, web);
            rt_store_unlock(st);
            sleep_ms(20);
        }
        ok(v2, "the new build serves after %.0f ms", now_ms() - t);
        is_int(fails, 0, "no request failed during the switch");
        is_int(live_shims(web, NULL, NULL), 2,
               "the old version answers on a while (the proxy polls)");
        for (int i = 0; i < 100 && live_shims(web, NULL, NULL) > 1; i++)
            sleep_ms(100);
        is_int(live_shims(web, NULL, NULL), 1, "then it stops");
        get(st, "web", &s);
        is_str(s.sha, "5555555555555555555555555555555555555555", "the Space reports the new sha");
    }

    /* hardware change: a restart on the new limits */
    (void) live_shims(web, &pid, NULL);
    is_int(cgroup_memory_limit(pid), 256ULL << 20, "the sandbox's memory cgroup says 256 MiB");
    get(st, "web", &s);
    (void) snprintf(s.hardware, sizeof(s.hardware), "t-big");
    rt_store_lock(st);
    (void) rt_store_space_update(st, &s, &err);
    is_int(rt_lifecycle_settings_changed(lc, web, &err), 0, "hardware change");
    rt_store_unlock(st);
    sleep_ms(300);
    ok(wait_stage(st, "web", "RUNNING", 30) >= 0, "RUNNING again");
    (void) live_shims(web, &pid, NULL);
    is_int(cgroup_memory_limit(pid), 512ULL << 20, "the new sandbox's memory cgroup says 512 MiB");
    get(st, "web", &s);
    is_str(s.hardware_current, "t-big", "hardware.current is the new tier");

    /* pause: nothing wakes it; restart resumes it */
    get(st, "web", &s);
    s.paused = true;
    rt_store_lock(st);
    (void) rt_store_space_update(st, &s, &err);
    is_int(rt_lifecycle_pause(lc, web, &err), 0, "pause");
    rt_store_unlock(st);
    ok(wait_stage(st, "web", "STOPPED", 20) >= 0, "stopped (reported PAUSED: the flag)");
    is_int(live_shims(web, NULL, NULL), 0, "nothing runs");
    rt_store_lock(st);
    is_int(rt_lifecycle_wake(lc, web, &err), -EBUSY, "a wake is refused while paused");
    rt_store_unlock(st);
    s.paused = false;
    rt_store_lock(st);
    (void) rt_store_space_update(st, &s, &err);
    is_int(rt_lifecycle_restart(lc, web, false, &err), 0, "restart resumes");
    rt_store_unlock(st);
    ok(wait_stage(st, "web", "RUNNING", 30) >= 0, "RUNNING after the resume");

    /* deep sleep after its sleep time; a wake brings it back */
    get(st, "web", &s);
    s.sleep_set = true;
    s.sleep_time = 3;
    rt_store_lock(st);
    (void) rt_store_space_update(st, &s, &err);
    rt_store_unlock(st);
    ok(wait_stage(st, "web", "STOPPED", 15) >= 0, "idle past its sleep time: stopped");
    /* The app outlives its route by the sleep grace (sleep_grace_ms), then stops. */
    for (int i = 0; i < 150 && live_shims(web, NULL, NULL) > 0; i++)
        (void) nanosleep(&(struct timespec){ .tv_nsec = 100000000L }, NULL);
    is_int(live_shims(web, NULL, NULL), 0, "nothing runs after the grace (memory freed)");
    t = now_ms();
    rt_store_lock(st);
    is_int(rt_lifecycle_wake(lc, web, &err), 0, "wake");
    rt_store_unlock(st);
    ok(wait_stage(st, "web", "RUNNING", 30) >= 0, "RUNNING again");
    get(st, "web", &s);
    is_int(http_get(s.upstream, body, sizeof(body)), 200, "answers");
    printf("# deep sleep: wake to answer %.1f ms\n", now_ms() - t);

    /* run logs reach the store */
    {
        struct rt_err e2 = { 0 };
        rt_store_lock(st);
        (void) rt_store_log_list(st, web, RT_LOGS_RUN, 0, 1000, on_line, NULL, &e2);
        rt_store_unlock(st);
        ok(log_got[0], "the app's output is in the run log");
    }

    /* delete: nothing of it is left */
    rt_store_lock(st);
    is_int(rt_lifecycle_delete(lc, web, &err), 0, "delete");
    rt_store_unlock(st);
    (void) snprintf(path, sizeof(path), "%s/run/%lld", tmp, (long long) web);
    for (int i = 0; i < 100 && access(path, F_OK) == 0; i++)
        sleep_ms(100);
    ok(access(path, F_OK) != 0, "its run dir is gone");

    rt_lifecycle_stop(lc);
    rt_store_close(st);
    {
        const char *argv[] = { "rm", "-rf", tmp, NULL };
        (void) rt_run_capture(argv, NULL, NULL, 0, NULL, 0, &err);
    }
    return tap_done();
}
