/* GET /api/admin/backup: a backup of the whole node (runtimed/backup.h), for an admin's
 * unscoped write token only, since it holds every secret and token hash. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api-internal.h"
#include "backup.h"
#include "cleanup.h"
#include "log.h"
#include "banned.h"

#define BUF_SIZE 65536

struct job {
    struct rt_store *st;
    const char *data_dir, *path;
    struct rt_err err;
    int r;
};

static void *run_job(void *p)
{
    struct job *j = p;

    j->r = rt_backup_create(j->st, j->data_dir, j->path, &j->err);
    return NULL;
}

/* civetweb's workers have small stacks, and git, tar and the copies want more: the
 * backup runs on a thread of its own with a normal stack while the worker waits. */
static int create_backup(struct rt_req *r, const char *path, struct rt_err *err)
{
    struct job j = { .st = r->st, .data_dir = r->api->cfg->data_dir, .path = path };
    pthread_attr_t attr;
    pthread_t t;
    int rc;

    if (pthread_attr_init(&attr) != 0)
        return rt_err_set(err, ENOMEM, "thread attributes");
    rc = pthread_attr_setstacksize(&attr, 8u << 20);
    if (rc == 0)
        rc = pthread_create(&t, &attr, run_job, &j);
    (void) pthread_attr_destroy(&attr);
    if (rc != 0)
        return rt_err_set(err, rc, "start the backup thread");
    (void) pthread_join(t, NULL);
    *err = j.err;
    return j.r;
}

int rt__api_backup(struct rt_req *r)
{
    static atomic_uint seq;
    const struct rt_log_ctx ctx = { .action = "backup" };
    struct rt_err err = { 0 };
    _cleanup_close_ int fd = -1;
    _cleanup_free_ char *buf = NULL;
    char path[600], head[256];
    struct stat sb;
    ssize_t n;

    if (!rt__is(r, "GET"))
        return rt__reply_error(r, 405, "use GET");
    if (!rt_auth_is_user(&r->who))
        return rt__reply_error(r, 401, "a backup needs an admin token");
    if (!rt_auth_is_admin(&r->who) || strcmp(r->who.token.role, "write") != 0 ||
        r->who.token.n_spaces > 0)
        return rt__reply_error(r, 403,
                               "a backup holds every secret: it needs an admin's "
                               "unscoped write token");
    (void) snprintf(path, sizeof(path), "%s/.backup-%ld-%u.tar.gz", r->api->cfg->data_dir,
                    (long) getpid(), atomic_fetch_add(&seq, 1));
    if (create_backup(r, path, &err) < 0) {
        rt_log(RT_LOG_ERR, &ctx, "%s", err.msg);
        return rt__reply_error(r, 500, "backup failed: %s", err.msg);
    }
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    (void) unlink(path); /* the open fd keeps it until it is sent */
    if (fd < 0 || fstat(fd, &sb) < 0)
        return rt__reply_error(r, 500, "backup failed: reopen: %s", strerror(errno));
    (void) snprintf(head, sizeof(head),
                    "HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\n"
                    "Content-Length: %" PRId64 "\r\nCache-Control: no-store\r\n\r\n",
                    (int64_t) sb.st_size);
    buf = malloc(BUF_SIZE); /* off the worker's small stack */
    if (!buf)
        return rt__reply_error(r, 503, "out of memory");
    r->sent = true;
    r->status = 200;
    if (mg_write(r->conn, head, strlen(head)) <= 0)
        return 200;
    while ((n = read(fd, buf, BUF_SIZE)) > 0)
        if (mg_write(r->conn, buf, (size_t) n) != (int) n)
            break;
    rt_log(RT_LOG_INFO, &ctx, "backup of %" PRId64 " bytes sent to %s", (int64_t) sb.st_size,
           r->who.token.user);
    return 200;
}
