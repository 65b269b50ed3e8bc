/* spacenet bench: what networking adds to a sandbox start, measured in a private network
 * namespace (so the host's own links and rules are never touched). */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "net-internal.h"
#include "util.h"
#include "banned.h"

struct stats {
    double *ms;
    size_t n;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;

    return x < y ? -1 : x > y;
}

static void report(const char *what, struct stats *s)
{
    double sum = 0;

    if (!s->n)
        return;
    qsort(s->ms, s->n, sizeof(double), cmp_double);
    for (size_t i = 0; i < s->n; i++)
        sum += s->ms[i];
    printf("  %-40s mean %7.3f ms  p50 %7.3f  p95 %7.3f  max %7.3f\n", what, sum / (double) s->n,
           s->ms[s->n / 2], s->ms[(s->n * 95) / 100 < s->n ? (s->n * 95) / 100 : s->n - 1],
           s->ms[s->n - 1]);
}

/* A child in its own network namespace, waiting for a byte (or EOF) before it exits. */
static pid_t spawn_netns_child(int *ret_release, struct rt_err *err)
{
    int ready[2], release[2];
    pid_t pid;
    char b;

    if (pipe2(ready, O_CLOEXEC) < 0)
        return rt_err_set(err, errno, "pipe");
    if (pipe2(release, O_CLOEXEC) < 0) {
        (void) close(ready[0]);
        (void) close(ready[1]);
        return rt_err_set(err, errno, "pipe");
    }
    pid = fork();
    if (pid < 0) {
        int e = errno;
        (void) close(ready[0]);
        (void) close(ready[1]);
        (void) close(release[0]);
        (void) close(release[1]);
        return rt_err_set(err, e, "fork");
    }
    if (pid == 0) {
        (void) close(ready[0]);
        (void) close(release[1]);
        if (unshare(CLONE_NEWNET) < 0)
            _exit(1);
        if (write(ready[1], "r", 1) != 1)
            _exit(1);
        _exit(read(release[0], &b, 1) < 0);
    }
    (void) close(ready[1]);
    (void) close(release[0]);
    if (read(ready[0], &b, 1) != 1) {
        (void) close(ready[0]);
        (void) close(release[1]);
        (void) waitpid(pid, NULL, 0);
        return rt_err_set(err, ECHILD, "the namespace child failed");
    }
    (void) close(ready[0]);
    *ret_release = release[1];
    return pid;
}

static void reap(pid_t pid, int release)
{
    (void) close(release); /* EOF lets the child exit */
    (void) waitpid(pid, NULL, 0);
}

int sbx__net_bench(const struct sbx_net_conf *c, int argc, char **argv)
{
    _cleanup_free_ double *ns_ms = NULL, *att_ms = NULL, *det_ms = NULL, *eg_ms = NULL;
    struct stats ns = { 0 }, att = { 0 }, det = { 0 }, eg = { 0 };
    struct rt_err err = { 0 };
    struct sbx_net_conf bc;
    double first = 0;
    uint64_t count = 100;
    char buf[RT_ERR_MSG_MAX + 64];

    if (argc == 3 && strcmp(argv[1], "--count") == 0) {
        if (rt_parse_u64(argv[2], &count) < 0 || count < 2 || count > 100000) {
            fprintf(stderr, "spacenet: bench: --count 2..100000\n");
            return 2;
        }
    } else if (argc != 1) {
        fprintf(stderr, "spacenet: bench: expected [--count N]\n");
        return 2;
    }
    ns_ms = calloc(count, sizeof(double));
    att_ms = calloc(count, sizeof(double));
    det_ms = calloc(count, sizeof(double));
    eg_ms = calloc(count, sizeof(double));
    if (!ns_ms || !att_ms || !det_ms || !eg_ms) {
        fprintf(stderr, "spacenet: bench: out of memory\n");
        return 1;
    }
    ns.ms = ns_ms, att.ms = att_ms, det.ms = det_ms, eg.ms = eg_ms;
    /* a private "host": its own links, routes, sysctls and nftables, gone when we exit */
    if (unshare(CLONE_NEWNET) < 0) {
        fprintf(stderr, "spacenet: bench: unshare(CLONE_NEWNET): %s\n", strerror(errno));
        return 1;
    }
    bc = *c;
    bc.host_forwarding = true; /* only this namespace's ip_forward */
    c = &bc;
    for (uint64_t i = 0; i < count; i++) {
        struct sbx_net_link l;
        uint64_t t0, t1, t2, t3;
        bool egress = i % 2 == 1;
        int release = -1;
        pid_t pid;

        t0 = rt_now_ns();
        pid = spawn_netns_child(&release, &err);
        if (pid < 0)
            goto failed;
        t1 = rt_now_ns();
        if (sbx_net_attach(c, pid, egress, &l, &err) < 0) {
            reap(pid, release);
            goto failed;
        }
        t2 = rt_now_ns();
        if (sbx_net_detach(c, &l, &err) < 0) {
            reap(pid, release);
            goto failed;
        }
        t3 = rt_now_ns();
        reap(pid, release);
        ns.ms[ns.n++] = (double) (t1 - t0) / 1e6;
        if (i == 0)
            first = (double) (t2 - t1) / 1e6;
        else if (egress)
            eg.ms[eg.n++] = (double) (t2 - t1) / 1e6;
        else
            att.ms[att.n++] = (double) (t2 - t1) / 1e6;
        det.ms[det.n++] = (double) (t3 - t2) / 1e6;
    }
    printf("spacenet bench: %llu cycles in a private network namespace\n",
           (unsigned long long) count);
    report("netns child start (fork + unshare)", &ns);
    printf("  %-40s %7.3f ms\n", "attach, first (installs the ruleset)", first);
    report("attach (veth, addresses, lo, no egress)", &att);
    report("attach with egress (+ default route)", &eg);
    report("detach", &det);
    return 0;
failed:
    fprintf(stderr, "spacenet: bench: %s\n", rt_err_str(&err, buf, sizeof(buf)));
    return 1;
}
