/* Unit tests for sandbox/net.c, net-link.c and net-filter.c against the kernel: the test
 * first moves itself into a private network namespace, which plays the host, so nothing on
 * the real host is touched.  Needs root (skips otherwise). */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tap.h"
#include "cleanup.h"
#include "sandbox/net-internal.h"

struct child {
    pid_t pid;
};

/* A child in a fresh network namespace that waits until it is killed. */
static struct child spawn(void)
{
    struct child c = { -1 };
    int ready[2];
    char b;

    if (pipe2(ready, O_CLOEXEC) < 0)
        return c;
    c.pid = fork();
    if (c.pid == 0) {
        if (unshare(CLONE_NEWNET) < 0 || write(ready[1], "r", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    (void) close(ready[1]);
    if (c.pid > 0 && read(ready[0], &b, 1) != 1) {
        (void) kill(c.pid, SIGKILL);
        (void) waitpid(c.pid, NULL, 0);
        c.pid = -1;
    }
    (void) close(ready[0]);
    return c;
}

static void reap(struct child *c)
{
    if (c->pid > 0) {
        (void) kill(c->pid, SIGKILL);
        (void) waitpid(c->pid, NULL, 0);
    }
    c->pid = -1;
}

static size_t count_links(const struct sbx_net_conf *conf)
{
    _cleanup_free_ struct sbx_net_link *links = NULL;
    struct rt_err err = { 0 };
    size_t n = 0;

    if (sbx_net_list(conf, &links, &n, &err) < 0)
        return (size_t) -1;
    return n;
}

/* Veth pairs of a dead namespace go away asynchronously. */
static bool wait_links(const struct sbx_net_conf *conf, size_t want)
{
    for (int i = 0; i < 400; i++) {
        if (count_links(conf) == want)
            return true;
        nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
    }
    return false;
}

static int filter_present(const struct sbx_net_conf *conf)
{
    _cleanup_(sbx__nl_closep) struct nl_sock *sk = NULL;
    _cleanup_free_ struct sbx__net4 *nets = NULL;
    struct rt_err err = { 0 };
    size_t n = 0;

    if (sbx__nl_open(&sk, &err) < 0 || sbx__net_host_subnets(sk, conf, &nets, &n, &err) < 0)
        return -1;
    return sbx__net_filter_present(conf, nets, n, &err);
}

static void test_attach_detach(struct sbx_net_conf *conf)
{
    struct child a = spawn(), b = spawn();
    struct sbx_net_link la, lb, other;
    _cleanup_free_ struct sbx_net_link *links = NULL;
    struct rt_err err = { 0 };
    size_t n = 0;

    ok(a.pid > 0 && b.pid > 0, "children in their own namespaces");
    is_int(filter_present(conf), 0, "no table before the first attach");
    is_int(sbx_net_attach(conf, a.pid, false, &la, &err), 0, "attach a");
    is_str(la.host_if, "spv0", "a gets slot 0");
    is_str(la.space_ip, "10.231.0.2", "a's address");
    is_int(la.owner_pid, a.pid, "a's owner");
    is_int(filter_present(conf), 1, "the table is installed with the first link");
    other = la;
    {
        struct sbx_net_conf moved = *conf;

        (void) sbx_net_conf_set_pool(&moved, "172.30.0.0/16", &err);
        is_int(filter_present(&moved), 0, "a table made for another pool counts as stale");
    }
    is_int(sbx_net_attach(conf, a.pid, false, &other, &err), -EEXIST, "a second link for a");
    ok(strstr(err.msg, "not a fresh one: it has a link 'eth0'") != NULL, "says why: %s", err.msg);
    is_int(sbx_net_attach(conf, b.pid, true, &lb, &err), -ENETUNREACH,
           "no egress while the host does not forward");
    is_int(count_links(conf), 1, "and no link left behind");
    conf->host_forwarding = true; /* our private namespace's own sysctl */
    is_int(sbx_net_attach(conf, b.pid, true, &lb, &err), 0, "attach b with egress");
    conf->host_forwarding = false;
    is_str(lb.host_if, "spv1", "b gets slot 1");
    ok(lb.egress, "b has egress");
    is_int(sbx_net_attach(conf, getpid(), false, &other, &err), -EINVAL, "not our own netns");

    is_int(sbx_net_list(conf, &links, &n, &err), 0, "list");
    is_int(n, 2, "two links");
    if (n == 2) {
        ok(!links[0].egress && links[1].egress, "egress read back from the link group");
        is_int(links[1].owner_pid, b.pid, "owner read back from the alias");
        is_int(links[1].owner_start, lb.owner_start, "owner start time read back");
    }

    other = la;
    other.owner_pid = 1; /* pretend the slot now belongs to someone else */
    is_int(sbx_net_detach(conf, &other, &err), 0, "detach of a reused slot is a no-op");
    is_int(count_links(conf), 2, "and leaves the new owner's link");
    is_int(sbx_net_detach(conf, &la, &err), 0, "detach a");
    is_int(count_links(conf), 1, "a's link is gone");
    is_int(filter_present(conf), 1, "the table stays while b has a link");
    is_int(sbx_net_detach(conf, &la, &err), 0, "detach again is success");
    snprintf(other.host_if, sizeof(other.host_if), "lo");
    is_int(sbx_net_detach(conf, &other, &err), -EINVAL, "refuses links that are not ours");

    is_int(sbx_net_attach(conf, a.pid, false, &la, &err), 0, "attach a again");
    is_str(la.host_if, "spv0", "lowest free slot reused");
    is_int(sbx_net_detach(conf, &lb, &err), 0, "detach b");
    is_int(filter_present(conf), 1, "a still has a link: the table stays");
    is_int(sbx_net_detach(conf, &la, &err), 0, "detach the last link");
    is_int(filter_present(conf), 0, "the table goes with the last detach");
    is_int(sbx_net_attach(conf, a.pid, false, &la, &err), 0, "attach a once more");
    is_int(filter_present(conf), 1, "the table comes back first");
    reap(&a);
    reap(&b);
    ok(wait_links(conf, 0), "links die with their namespaces");
    {
        unsigned removed = 99;

        is_int(sbx_net_cleanup_leftovers(conf, &removed, &err), 0, "cleanup");
        is_int(removed, 0, "nothing left over");
        is_int(filter_present(conf), 0, "the table goes with the last link");
    }
}

static void test_leftover(struct sbx_net_conf *conf)
{
    struct child a = spawn(), live = spawn();
    struct sbx_net_link la, ll;
    struct rt_err err = { 0 };
    _cleanup_close_ int pin = -1;
    unsigned removed = 99;
    char path[64];

    is_int(sbx_net_attach(conf, a.pid, false, &la, &err), 0, "attach the soon-dead one");
    is_int(sbx_net_attach(conf, live.pid, false, &ll, &err), 0, "attach the live one");
    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int) a.pid);
    pin = open(path, O_RDONLY | O_CLOEXEC); /* keeps the netns, and the link, alive */
    ok(pin >= 0, "pin the namespace");
    reap(&a);
    nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
    is_int(count_links(conf), 2, "a pinned namespace keeps its link");
    is_int(sbx_net_cleanup_leftovers(conf, &removed, &err), 0, "cleanup");
    is_int(removed, 1, "the dead owner's link is removed");
    is_int(count_links(conf), 1, "the live Space keeps its link");
    is_int(filter_present(conf), 1, "and its table");
    reap(&live);
    ok(wait_links(conf, 0), "the live one's link goes when it dies");
    is_int(sbx_net_cleanup_leftovers(conf, &removed, &err), 0, "cleanup again");
    is_int(filter_present(conf), 0, "no table without links");
}

int main(void)
{
    struct sbx_net_conf conf;
    char lock[64];

    if (geteuid() != 0) {
        printf("1..0 # SKIP needs root\n");
        return 0;
    }
    tap_start();
    /* this process becomes the "host": its own links, routes and nftables */
    if (unshare(CLONE_NEWNET) < 0) {
        printf("1..0 # SKIP unshare(CLONE_NEWNET): %s\n", strerror(errno));
        return 0;
    }
    sbx_net_conf_init(&conf);
    snprintf(lock, sizeof(lock), "/tmp/spt-test-net-%d.lock", (int) getpid());
    snprintf(conf.lock_path, sizeof(conf.lock_path), "%s", lock);
    test_attach_detach(&conf);
    test_leftover(&conf);
    (void) unlink(lock);
    return tap_done();
}
