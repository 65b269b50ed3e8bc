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

/* One cycle: a netns child, attach, detach, reap.  Adds to the stats it is given. */
static int cycle(const struct sbx_net_conf *c, bool egress, struct stats *ns, struct stats *att,
                 struct stats *det, struct rt_err *err)
{
    struct sbx_net_link l;
    uint64_t t0, t1, t2, t3;
    int release = -1;
    pid_t pid;

    t0 = rt_now_ns();
    pid = spawn_netns_child(&release, err);
    if (pid < 0)
        return (int) pid;
    t1 = rt_now_ns();
    if (sbx_net_attach(c, pid, egress, &l, err) < 0) {
        reap(pid, release);
        return -err->code;
    }
    t2 = rt_now_ns();
    if (sbx_net_detach(c, &l, err) < 0) {
        reap(pid, release);
        return -err->code;
    }
    t3 = rt_now_ns();
    reap(pid, release);
    if (ns)
        ns->ms[ns->n++] = (double) (t1 - t0) / 1e6;
    att->ms[att->n++] = (double) (t2 - t1) / 1e6;
    det->ms[det->n++] = (double) (t3 - t2) / 1e6;
    return 0;
}

#define ALONE_CYCLES 10

int sbx__net_bench(const struct sbx_net_conf *c, int argc, char **argv)
{
    _cleanup_free_ double *buf = NULL;
    struct stats ns = { 0 }, att = { 0 }, eg = { 0 }, det = { 0 }, att1 = { 0 }, det1 = { 0 };
    struct rt_err err = { 0 };
    struct sbx_net_conf bc;
    struct sbx_net_link anchor;
    int anchor_release = -1;
    pid_t anchor_pid = -1;
    uint64_t count = 100;
    char msg[RT_ERR_MSG_MAX + 64];

    if (argc == 3 && strcmp(argv[1], "--count") == 0) {
        if (rt_parse_u64(argv[2], &count) < 0 || count < 2 || count > 100000) {
            fprintf(stderr, "spacenet: bench: --count 2..100000\n");
            return 2;
        }
    } else if (argc != 1) {
        fprintf(stderr, "spacenet: bench: expected [--count N]\n");
        return 2;
    }
    buf = calloc(4 * count + 2 * ALONE_CYCLES, sizeof(double));
    if (!buf) {
        fprintf(stderr, "spacenet: bench: out of memory\n");
        return 1;
    }
    ns.ms = buf, att.ms = buf + count, eg.ms = buf + 2 * count, det.ms = buf + 3 * count;
    att1.ms = buf + 4 * count, det1.ms = buf + 4 * count + ALONE_CYCLES;
    /* a private "host": its own links, routes, sysctls and nftables, gone when we exit */
    if (unshare(CLONE_NEWNET) < 0) {
        fprintf(stderr, "spacenet: bench: unshare(CLONE_NEWNET): %s\n", strerror(errno));
        return 1;
    }
    bc = *c;
    bc.host_forwarding = true; /* only this namespace's ip_forward */
    c = &bc;
    /* alone: each attach installs the table and each detach, the last, removes it */
    for (int i = 0; i < ALONE_CYCLES; i++)
        if (cycle(c, false, NULL, &att1, &det1, &err) < 0)
            goto failed;
    /* steady state: another Space keeps the table in place */
    anchor_pid = spawn_netns_child(&anchor_release, &err);
    if (anchor_pid < 0 || sbx_net_attach(c, anchor_pid, false, &anchor, &err) < 0)
        goto failed;
    for (uint64_t i = 0; i < count; i++)
        if (cycle(c, i % 2 == 1, &ns, i % 2 == 1 ? &eg : &att, &det, &err) < 0)
            goto failed;
    reap(anchor_pid, anchor_release);
    printf("spacenet bench: %llu cycles in a private network namespace\n",
           (unsigned long long) count);
    report("netns child start (fork + unshare)", &ns);
    report("attach (veth, addresses, lo, no egress)", &att);
    report("attach with egress (+ default route)", &eg);
    report("detach", &det);
    printf("  alone (%d cycles: no other Space, so the table comes and goes):\n", ALONE_CYCLES);
    report("attach, installing the table", &att1);
    report("detach, removing the table", &det1);
    return 0;
failed:
    if (anchor_pid > 0)
        reap(anchor_pid, anchor_release);
    fprintf(stderr, "spacenet: bench: %s\n", rt_err_str(&err, msg, sizeof(msg)));
    return 1;
}
