/* ZeroGPU in runtimed (gpuzero.h): the device API on its own thread, one listener per
 * zero Space instance inside its network namespace, and the device cgroup moves of
 * the workers it allows. */
#include "gpuzero.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "gpu-sched/devapi.h"
#include "gpunode.h"
#include "gpuzero-cg.h"
#include "shim.h"
#include "util.h"
#include "banned.h"

#define CG_PATH 512
#define POOL_NODES_MAX 64

/* One running instance of a zero Space. */
struct zinst {
    char key[CG_PATH];
    char space[GPU_ID_MAX];
    pid_t pid;
    struct zcg cg; /* its sandbox's device cgroup */
};

struct rt_gpuzero {
    pthread_mutex_t mu;
    pthread_t thread;
    bool has_thread, stop;
    int evfd;
    struct gpu_api *api;
    struct rt_gpunode *gpus;
    const struct gpu_inventory *inv;
    const unsigned *units; /* the pool's inventory indexes, by slot */
    size_t n_slots;
    struct gpu_node nodes[POOL_NODES_MAX]; /* every pool node, once */
    size_t n_nodes;
    char v1root[ZCG_PATH], v2root[ZCG_PATH]; /* where device cgroups are (gpuzero-cg.h) */
    const struct gpu_unit **pool;            /* the pool's units, by slot */
    struct zinst *inst;
    size_t n_inst;
    struct zcg *worker_cg; /* by slot: the sandbox group of its worker ("" dir: none) */
    uint8_t key[GPU_VISITOR_KEY_LEN];
    bool have_key;
};

/* --- hooks (run under z->mu, from inside gpu_api calls) ------------------------------------ */

static const struct gpu_unit *unit_of(struct rt_gpuzero *z, unsigned slot)
{
    return slot < z->n_slots ? &z->inv->units[z->units[slot]] : NULL;
}

static int on_allow(void *ud, const struct gpu_lease_info *l, pid_t pid, pid_t *ret_host,
                    struct rt_err *err)
{
    struct rt_gpuzero *z = ud;
    const struct gpu_unit *u = unit_of(z, l->slot);
    pid_t host = 0;
    struct zinst *in = NULL;
    int r;

    if (!u)
        return rt_err_set(err, EINVAL, "no unit for slot %u", l->slot);
    /* Only the Space's own processes: the pid is looked up among them, never taken as
     * given, or a caller could have any process killed at its lease's deadline. */
    for (size_t i = 0; i < z->n_inst && !host; i++) {
        if (strcmp(z->inst[i].space, l->space) != 0)
            continue;
        in = &z->inst[i];
        host = zcg_host_pid(&in->cg, z->pool, z->n_slots, pid);
    }
    if (!host)
        return rt_err_set(err, EPERM, "pid %d is not a process of '%s'", (int) pid, l->space);
    r = zcg_worker_add(&in->cg, u, host, err);
    if (r < 0)
        return r;
    z->worker_cg[l->slot] = in->cg;
    *ret_host = host;
    return 0;
}

static void on_revoke(void *ud, const struct gpu_lease_info *l, pid_t pid, enum gpu_end why)
{
    struct rt_gpuzero *z = ud;
    const struct gpu_unit *u = unit_of(z, l->slot);

    (void) pid;
    (void) why;
    if (!u || !z->worker_cg[l->slot].dir[0])
        return;
    /* The worker was killed (or died) first; whatever it left in its group (children
     * that may hold GPU fds) dies with the group. */
    zcg_worker_end(&z->worker_cg[l->slot], u, true);
    z->worker_cg[l->slot].dir[0] = '\0';
}

/* --- the thread ------------------------------------------------------------------------- */

static void *loop(void *arg)
{
    struct rt_gpuzero *z = arg;

    for (;;) {
        struct pollfd p[2] = { { .fd = gpu_api_fd(z->api), .events = POLLIN },
                               { .fd = z->evfd, .events = POLLIN } };
        int timeout;
        uint64_t v;

        (void) pthread_mutex_lock(&z->mu);
        if (z->stop) {
            (void) pthread_mutex_unlock(&z->mu);
            return NULL;
        }
        timeout = gpu_api_next_ms(z->api);
        (void) pthread_mutex_unlock(&z->mu);
        (void) poll(p, 2, timeout);
        if (p[1].revents & POLLIN)
            (void) !read(z->evfd, &v, sizeof(v));
        (void) pthread_mutex_lock(&z->mu);
        (void) gpu_api_dispatch(z->api, 0, &(struct rt_err){ 0 });
        (void) pthread_mutex_unlock(&z->mu);
    }
}

/* Another thread changed the API's state (timers, listeners): the loop re-reads them. */
static void kick(struct rt_gpuzero *z)
{
    uint64_t one = 1;

    (void) !write(z->evfd, &one, sizeof(one));
}

static void add_nodes(struct rt_gpuzero *z, const struct gpu_unit *u)
{
    for (size_t i = 0; i < u->n_nodes; i++) {
        bool seen = false;

        if (u->nodes[i].flags & GPU_NODE_OPTIONAL)
            continue;
        for (size_t j = 0; j < z->n_nodes && !seen; j++)
            seen = strcmp(z->nodes[j].path, u->nodes[i].path) == 0;
        if (!seen && z->n_nodes < POOL_NODES_MAX)
            z->nodes[z->n_nodes++] = u->nodes[i];
    }
}

int rt_gpuzero_new(const struct rt_gpuzero_config *cfg, struct rt_gpuzero **ret, struct rt_err *err)
{
    struct rt_gpuzero *z;
    const struct gpu_slot *slots;
    _cleanup_free_ struct gpu_slot *sized = NULL;
    struct gpu_sched_config scfg;
    struct gpu_api_config acfg = { 0 };
    struct gpu_api_hooks hooks = { .on_allow = on_allow, .on_revoke = on_revoke };
    size_t n = rt_gpunode_zero_slots(cfg->gpus, &slots);
    int r;

    if (n == 0)
        return rt_err_set(err, ENODEV, "no ZeroGPU pool on this node (zero_gpus: 0)");
    z = calloc(1, sizeof(*z));
    if (!z || !(z->worker_cg = calloc(n, sizeof(*z->worker_cg))) ||
        !(z->pool = calloc(n, sizeof(*z->pool)))) {
        if (z)
            free(z->worker_cg);
        free(z);
        return rt_err_set(err, ENOMEM, "zerogpu");
    }
    (void) pthread_mutex_init(&z->mu, NULL);
    z->evfd = -1;
    z->gpus = cfg->gpus;
    z->inv = rt_gpunode_inventory(cfg->gpus);
    z->units = rt_gpunode_zero_units(cfg->gpus);
    z->n_slots = n;
    /* gpuSize: each slot's size from its unit, a MIG instance serves large only, a
     * whole GPU xlarge too (gpu-sched/README.md "Sizes"). */
    sized = calloc(n, sizeof(*sized));
    if (!sized) {
        r = rt_err_set(err, ENOMEM, "zerogpu");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        z->pool[i] = unit_of(z, (unsigned) i);
        add_nodes(z, z->pool[i]);
        sized[i] = slots[i];
        sized[i].size = z->pool[i]->mig_gi < 0 ? GPU_SIZE_XLARGE : GPU_SIZE_LARGE;
    }
    zcg_roots(z->v1root, z->v2root);
    gpu_sched_config_default(&scfg);
    if (cfg->visitor_secret && *cfg->visitor_secret) {
        gpu_visitor_key(cfg->visitor_secret, strlen(cfg->visitor_secret), z->key);
        z->have_key = true;
        acfg.visitor_key = z->key;
    }
    hooks.userdata = z;
    z->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (z->evfd < 0) {
        r = rt_err_set(err, errno, "eventfd");
        goto fail;
    }
    r = gpu_api_new(&acfg, &scfg, sized, n, &hooks, &z->api, err);
    if (r < 0)
        goto fail;
    r = -pthread_create(&z->thread, NULL, loop, z);
    if (r < 0) {
        rt_err_set(err, -r, "zerogpu thread");
        goto fail;
    }
    z->has_thread = true;
    *ret = z;
    return 0;
fail:
    rt_gpuzero_free(z);
    return r;
}

int rt_gpuzero_for_node(struct rt_gpunode *gpus, const char *data_dir, struct rt_gpuzero **ret,
                        struct rt_err *err)
{
    const struct gpu_slot *slots;
    char path[CG_PATH], secret[256];
    _cleanup_close_ int fd = -1;
    ssize_t n;
    struct rt_gpuzero_config cfg = { .gpus = gpus, .visitor_secret = secret };

    *ret = NULL;
    if (!gpus || rt_gpunode_zero_slots(gpus, &slots) == 0)
        return 0;
    (void) snprintf(path, sizeof(path), "%s/proxy.token", data_dir);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    n = fd < 0 ? -1 : rt_read_all(fd, secret, sizeof(secret) - 1);
    if (n < 0)
        return rt_err_set(err, errno, "read '%s' (the visitor key)", path);
    while (n > 0 && (secret[n - 1] == '\n' || secret[n - 1] == '\r'))
        n--;
    secret[n] = '\0';
    return rt_gpuzero_new(&cfg, ret, err);
}

void rt_gpuzero_free(struct rt_gpuzero *z)
{
    if (!z)
        return;
    if (z->has_thread) {
        (void) pthread_mutex_lock(&z->mu);
        z->stop = true;
        (void) pthread_mutex_unlock(&z->mu);
        kick(z);
        (void) pthread_join(z->thread, NULL);
    }
    gpu_api_free(z->api);
    z->evfd = rt_close(z->evfd);
    (void) pthread_mutex_destroy(&z->mu);
    free(z->inst);
    free(z->worker_cg);
    free(z->pool);
    free(z);
}

/* --- Spaces ----------------------------------------------------------------------------- */

static int push_fmt(struct rt_strv *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int push_fmt(struct rt_strv *v, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    (void) vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return rt_strv_push(v, buf);
}

int rt_gpuzero_sandbox(struct rt_gpuzero *z, struct rt_strv *env, const char **nodes, size_t *n,
                       size_t cap)
{
    const struct gpu_unit *u = unit_of(z, 0);

    /* The client emulates CUDA in the app's process from these (REFERENCE.md §5.4). */
    if (push_fmt(env, "SPACES_ZERO_GPU=true") < 0 ||
        push_fmt(env, "SPACES_ZERO_DEVICE_API_URL=http://127.0.0.1:%d", RT_GPUZERO_PORT) < 0 ||
        push_fmt(env, "ZEROGPU_CUDA_DEVICE_NAME=%s", u->name) < 0 ||
        push_fmt(env, "ZEROGPU_CUDA_TOTAL_MEMORY=%llu", (unsigned long long) u->memory) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < z->n_nodes; i++) {
        if (*n >= cap)
            return -ENOSPC;
        nodes[(*n)++] = z->nodes[i].path;
    }
    return 0;
}

struct netns_job {
    pid_t pid;
    int fd, err;
};

/* A thread of its own: setns() changes the calling thread's namespace, and this one
 * ends right after, so no other work ever runs inside a Space's network. */
static void *listen_in_netns(void *arg)
{
    struct netns_job *j = arg;
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons(RT_GPUZERO_PORT),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    char path[64];
    _cleanup_close_ int ns = -1, fd = -1;
    int one = 1;

    (void) snprintf(path, sizeof(path), "/proc/%d/ns/net", (int) j->pid);
    ns = open(path, O_RDONLY | O_CLOEXEC);
    if (ns < 0 || unshare(CLONE_FS) < 0 || setns(ns, CLONE_NEWNET) < 0) {
        j->err = errno;
        return NULL;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *) &a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
        j->err = errno;
        return NULL;
    }
    j->fd = TAKE_FD(fd);
    return NULL;
}

int rt_gpuzero_attach(struct rt_gpuzero *z, const char *key, const char *space, pid_t pid,
                      struct rt_err *err)
{
    struct netns_job j = { .pid = pid, .fd = -1 };
    struct zinst in = { .pid = pid }, *p;
    pthread_t t;
    int r;

    if (strlen(key) >= sizeof(in.key) || strlen(space) >= sizeof(in.space))
        return rt_err_set(err, ENAMETOOLONG, "zerogpu: Space name too long");
    (void) snprintf(in.key, sizeof(in.key), "%s", key);
    (void) snprintf(in.space, sizeof(in.space), "%s", space);
    r = zcg_of_pid(z->v1root, z->v2root, pid, &in.cg, err);
    if (r < 0)
        return r;
    /* The sandbox binds the pool's nodes; none of its processes may open them. */
    r = zcg_isolate(&in.cg, z->nodes, z->n_nodes, err);
    if (r < 0)
        goto undo;
    /* The sandbox group allowed none of them at spawn (spec gpusDeferred): the app could
     * have opened one before this isolation, and kept the fd.  On v1 the workers' sibling
     * groups have rules of their own, so it never needs them; on v2 every program on a
     * worker's path must allow, so the shim's own one does now, the app being in main
     * (the shim refuses while a process is left in the group).  Idempotent: a reattach
     * sends it again. */
    if (in.cg.ver == 2) {
        struct rt_shim_status ss;

        r = rt_shim_command(key, "allow-gpus", &ss, err);
        if (r < 0) {
            (void) rt_err_wrap(err, "allow the pool below the sandbox of '%s'", space);
            goto undo;
        }
    }
    /* Workers a previous runtimed allowed (a restart ends every lease) would keep a unit
     * the new scheduler may give to another Space: they are killed. */
    for (size_t s = 0; s < z->n_slots; s++)
        zcg_worker_end(&in.cg, z->pool[s], true);
    r = pthread_create(&t, NULL, listen_in_netns, &j);
    if (r != 0) {
        r = rt_err_set(err, r, "zerogpu: thread");
        goto undo;
    }
    (void) pthread_join(t, NULL);
    if (j.fd < 0) {
        r = rt_err_set(err, j.err, "listen on 127.0.0.1:%d in the sandbox of '%s'", RT_GPUZERO_PORT,
                       space);
        goto undo;
    }
    (void) pthread_mutex_lock(&z->mu);
    p = realloc(z->inst, (z->n_inst + 1) * sizeof(*z->inst));
    if (!p) {
        r = rt_err_set(err, ENOMEM, "zerogpu");
    } else {
        z->inst = p;
        r = gpu_api_listener_add(z->api, key, space, j.fd, err);
        if (r == 0)
            z->inst[z->n_inst++] = in;
    }
    (void) pthread_mutex_unlock(&z->mu);
    if (r < 0)
        j.fd = rt_close(j.fd);
    kick(z);
    if (r == 0)
        return 0;
undo:
    /* v2: a main left behind would keep the shim from removing its group (the pool
     * stays denied to what moves back). */
    zcg_release(&in.cg, z->pool, z->n_slots);
    return r;
}

void rt_gpuzero_detach(struct rt_gpuzero *z, const char *key, const char *space)
{
    struct zinst gone = { 0 };

    bool last = true;

    (void) pthread_mutex_lock(&z->mu);
    (void) gpu_api_listener_remove(z->api, key);
    for (size_t i = 0; i < z->n_inst; i++) {
        if (strcmp(z->inst[i].key, key) == 0) {
            gone = z->inst[i];
            z->inst[i] = z->inst[--z->n_inst];
            break;
        }
    }
    for (size_t i = 0; i < z->n_inst; i++)
        if (strcmp(z->inst[i].space, space) == 0)
            last = false;
    /* The Space's last instance: its leases end and its workers are killed (on_revoke
     * removes their groups).  An old version retiring beside a new one keeps the
     * Space's leases: its own workers die with its sandbox, which gives theirs back. */
    if (last)
        (void) gpu_api_release_space(z->api, space);
    (void) pthread_mutex_unlock(&z->mu);
    kick(z);
    /* Idle workers kept for reuse have groups too; v2: the app leaves main. */
    if (gone.cg.dir[0])
        zcg_release(&gone.cg, z->pool, z->n_slots);
}

/* --- listings ----------------------------------------------------------------------------- */

static json_t *lease_json(struct rt_gpuzero *z, const struct gpu_lease_info *l, uint64_t now)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:i, s:b}", "space", l->space, "identity",
                          l->identity[0] ? l->identity : "", "class", gpu_class_name(l->cls),
                          "taskId", (json_int_t) l->task_id, "durationSeconds", (int) l->duration_s,
                          "granted", l->granted);

    if (!j)
        return NULL;
    (void) json_object_set_new(j, "size", json_string(gpu_size_name(l->size)));
    if (l->granted) {
        (void) json_object_set_new(j, "nvidiaIndex", json_integer(l->nvidia_index));
        (void) json_object_set_new(j, "unit", json_string(l->uuid));
        (void) json_object_set_new(j, "grantedAgoMs",
                                   json_integer((json_int_t) (now - l->granted_ms)));
        (void) json_object_set_new(
            j, "deadlineInMs",
            json_integer(l->deadline_ms > now ? (json_int_t) (l->deadline_ms - now) : 0));
        (void) json_object_set_new(j, "pid", json_integer(l->pid));
    } else {
        (void) json_object_set_new(j, "position",
                                   json_integer(gpu_sched_position(gpu_api_sched(z->api), l->id)));
        (void) json_object_set_new(j, "waitingMs",
                                   json_integer((json_int_t) (now - l->arrival_ms)));
    }
    return j;
}

/* Leases (granted) and queue (waiting) of @space, or of all when NULL.  Under z->mu. */
static int list_into(struct rt_gpuzero *z, const char *space, json_t *leases, json_t *queue)
{
    struct gpu_sched *s = gpu_api_sched(z->api);
    size_t n = gpu_sched_list(s, NULL, 0);
    struct gpu_lease_info *all = calloc(n ? n : 1, sizeof(*all));
    uint64_t now = rt_now_ns() / 1000000;

    if (!all)
        return -ENOMEM;
    n = gpu_sched_list(s, all, n);
    for (size_t i = 0; i < n; i++)
        if (!space || strcmp(all[i].space, space) == 0)
            (void) json_array_append_new(all[i].granted ? leases : queue,
                                         lease_json(z, &all[i], now));
    free(all);
    return 0;
}

json_t *rt_gpuzero_leases_json(struct rt_gpuzero *z)
{
    json_t *leases = json_array(), *queue = json_array(), *j;
    struct gpu_api_stats st;

    (void) pthread_mutex_lock(&z->mu);
    (void) list_into(z, NULL, leases, queue);
    gpu_api_stats(z->api, &st);
    j = json_pack("{s:i, s:i, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I}}", "pool",
                  (int) z->n_slots, "queueSize", (int) gpu_sched_queue_len(gpu_api_sched(z->api)),
                  "leases", leases, "queue", queue, "stats", "grants", (json_int_t) st.grants,
                  "queued", (json_int_t) st.queued, "expired", (json_int_t) st.expired,
                  "workerDeaths", (json_int_t) st.worker_deaths, "evictions",
                  (json_int_t) st.evictions, "requests", (json_int_t) st.requests);
    (void) pthread_mutex_unlock(&z->mu);
    return j;
}

json_t *rt_gpuzero_quota_json(struct rt_gpuzero *z, const char *token, const char *identity,
                              int cls, const char *space)
{
    struct gpu_visitor v = { 0 };
    int64_t left = 0, reset = 0;
    json_t *j;

    /* A visitor token (the proxy's X-IP-Token) names the visitor as /schedule sees it. */
    if (token && z->have_key &&
        gpu_visitor_verify(z->key, token, strlen(token), (uint64_t) time(NULL), 3600, &v) == 0) {
        identity = v.identity;
    } else {
        if (identity)
            (void) snprintf(v.identity, sizeof(v.identity), "%s", identity);
        v.cls = (enum gpu_class) cls;
    }
    (void) pthread_mutex_lock(&z->mu);
    gpu_sched_quota(gpu_api_sched(z->api), space ? space : "", identity ? v.identity : NULL, v.cls,
                    rt_now_ns() / 1000000, &left, &reset);
    j = json_pack("{s:s?, s:s, s:I, s:I, s:i, s:i}", "identity", identity, "class",
                  gpu_class_name(v.cls), "left", (json_int_t) left, "resetIn", (json_int_t) reset,
                  "queueSize", (int) gpu_sched_queue_len(gpu_api_sched(z->api)), "pool",
                  (int) z->n_slots);
    if (j && space) {
        json_t *leases = json_array(), *queue = json_array();

        (void) list_into(z, space, leases, queue);
        (void) json_object_set_new(
            j, "space",
            json_pack("{s:s, s:o, s:o}", "id", space, "leases", leases, "queue", queue));
    }
    (void) pthread_mutex_unlock(&z->mu);
    return j;
}
