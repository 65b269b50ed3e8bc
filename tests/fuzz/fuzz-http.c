/* Fuzz target: the request path of spaceproxy, end to end in one process.  Each input is
 * what a visitor sends, optionally followed by "\n--UP--\n" and what the Space answers.
 * The real connection state machine runs on a real epoll loop: the visitor is one end of
 * a socketpair, the Space a real loopback listener that this harness answers from.
 *
 *   make fuzz-http FUZZ_TIME=300                     libFuzzer (clang), ASan + UBSan
 *   build/<variant>/tests/unit/proxy/test-fuzz-replay   corpus replay + mutations
 *
 * Built with -DSP_LIBFUZZER the libFuzzer main runs; otherwise main() replays files.
 * Define SP_FUZZ_NO_MAIN to include this file from a test. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "proxy/proxy.h"
#include "util.h"

#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct px_loop *fz_loop;
static int fz_listener = -1;

static void fz_setup(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    struct rt_err err = { 0 };
    char up[64];

    if (fz_loop)
        return;
    px_config_defaults(&px_g.cfg);
    free(px_g.cfg.access_log);
    px_g.cfg.access_log = strdup("off");
    px_g.cfg.max_body_size = 1 << 20;
    fz_listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fz_listener < 0 || bind(fz_listener, (struct sockaddr *) &sa, sizeof(sa)) < 0 ||
        listen(fz_listener, 64) < 0 || getsockname(fz_listener, (struct sockaddr *) &sa, &sl) < 0)
        abort();
    snprintf(up, sizeof(up), "127.0.0.1:%u", ntohs(sa.sin_port));
    px_g.cfg.routes = calloc(2, sizeof(*px_g.cfg.routes));
    if (!px_g.cfg.routes)
        abort();
    px_g.cfg.nroutes = 2;
    px_g.cfg.routes[0].host = strdup("a.localhost");
    px_g.cfg.routes[0].upstream = strdup(up);
    px_g.cfg.routes[1].host = strdup("b.localhost");
    px_g.cfg.routes[1].upstream = strdup(up);
    px_g.cfg.routes[1].disable_embedding = true;
    (void) px_render_header(&px_g.cfg.routes[1].custom_headers, "X-Custom", "1");
    px_auth_init("fuzz token");
    if (px_global_rebuild(&err) < 0)
        abort();

    fz_loop = calloc(1, sizeof(*fz_loop));
    if (!fz_loop)
        abort();
    fz_loop->lfd = fz_loop->afd = fz_loop->evfd = fz_loop->log_fd = -1;
    fz_loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (fz_loop->epfd < 0)
        abort();
    /* short timeouts: a turn is instantaneous, so none fires during one input anyway */
    for (int i = 0; i < _PX_T_MAX; i++)
        fz_loop->timers[i].dur_ms = 60000;
}

/* Frees everything the loop holds, so a run leaves no fd and no byte behind. */
static void fz_teardown(void)
{
    if (!fz_loop)
        return;
    px_loop_free(fz_loop);
    fz_loop = NULL;
    fz_listener = rt_close(fz_listener);
    px_table_unref(px_g.table);
    px_g.table = NULL;
    px_auth_done();
    px_config_done(&px_g.cfg);
}

static const char up_mark[] = "\n--UP--\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *resp = NULL;
    size_t resp_len = 0, req_len = size, off = 0;
    int sv[2], ups[16], nups = 0;
    struct sockaddr_storage peer = { 0 };
    char sink[65536];

    fz_setup();
    const uint8_t *m = memmem(data, size, up_mark, sizeof(up_mark) - 1);
    if (m) {
        req_len = (size_t) (m - data);
        resp = m + sizeof(up_mark) - 1;
        resp_len = size - req_len - (sizeof(up_mark) - 1);
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return 0;
    ((struct sockaddr_in *) &peer)->sin_family = AF_INET;
    ((struct sockaddr_in *) &peer)->sin_addr.s_addr = htonl(0xc0000207);
    px_conn_accepted(fz_loop, sv[0], &peer, false);

    for (int turn = 0; turn < 64; turn++) {
        if (off < req_len) {
            ssize_t n = write(sv[1], data + off, req_len - off);
            if (n > 0)
                off += (size_t) n;
            if (off == req_len)
                (void) shutdown(sv[1], SHUT_WR);
        } else if (turn == 0) {
            (void) shutdown(sv[1], SHUT_WR);
        }
        (void) px_loop_turn(fz_loop, 0);
        /* the Space: accept, swallow the request, answer with the rest of the input */
        int u = accept4(fz_listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (u >= 0) {
            if (nups < (int) ARRAY_SIZE(ups)) {
                ups[nups++] = u;
                if (resp_len)
                    (void) !write(u, resp, resp_len);
                (void) shutdown(u, SHUT_WR);
            } else {
                (void) close(u);
            }
        }
        for (int i = 0; i < nups; i++)
            while (read(ups[i], sink, sizeof(sink)) > 0)
                ;
        while (read(sv[1], sink, sizeof(sink)) > 0)
            ;
        (void) px_loop_turn(fz_loop, 0);
    }
    (void) close(sv[1]);
    for (int i = 0; i < nups; i++)
        (void) close(ups[i]);
    (void) px_loop_turn(fz_loop, 0);
    while (fz_loop->conns)
        px_conn_close(fz_loop->conns);
    (void) px_loop_turn(fz_loop, 0);
    px_up_free_all(fz_loop);
    return 0;
}

#if !defined(SP_LIBFUZZER) && !defined(SP_FUZZ_NO_MAIN)
static int fz_replay_file(const char *path)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    static uint8_t buf[1 << 20];
    ssize_t n;

    if (fd < 0)
        return -errno;
    n = rt_read_all(fd, buf, sizeof(buf));
    if (n < 0)
        return (int) n;
    LLVMFuzzerTestOneInput(buf, (size_t) n);
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        if (!d) {
            if (fz_replay_file(argv[i]) < 0)
                fprintf(stderr, "fuzz-http: cannot read '%s'\n", argv[i]);
            continue;
        }
        struct dirent *e;
        while ((e = readdir(d))) {
            char p[4096];
            if (e->d_name[0] == '.')
                continue;
            snprintf(p, sizeof(p), "%s/%s", argv[i], e->d_name);
            (void) fz_replay_file(p);
        }
        closedir(d);
    }
    fz_teardown();
    return 0;
}
#endif
