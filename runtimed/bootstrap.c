#include "bootstrap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "cleanup.h"
#include "error.h"
#include "tiers.h"
#include "util.h"
#include "banned.h"

int rt_write_secret_file(const char *dir, const char *name, const char *text, struct rt_err *err)
{
    char path[4096], tmp[4096];
    _cleanup_close_ int fd = -1;

    (void) snprintf(path, sizeof(path), "%s/%s", dir, name);
    (void) snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
    (void) unlink(tmp);
    /* 0600 from birth: the token is never readable by others, not even for a moment. */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return rt_err_set(err, errno, "create '%s'", tmp);
    if (fchmod(fd, 0600) < 0 || rt_write_all(fd, text, strlen(text)) < 0 ||
        rt_write_all(fd, "\n", 1) < 0 || fsync(fd) < 0) {
        int r = rt_err_set(err, errno, "write '%s'", tmp);
        (void) unlink(tmp);
        return r;
    }
    if (rename(tmp, path) < 0) {
        int r = rt_err_set(err, errno, "rename '%s' to '%s'", tmp, path);
        (void) unlink(tmp);
        return r;
    }
    return 0;
}

int rt_bootstrap(struct rt_store *st, const char *data_dir, bool *ret_first, struct rt_err *err)
{
    char flag[8], admin_secret[RT_TOKEN_SIZE], proxy_secret[RT_TOKEN_SIZE];
    struct rt_token admin = { .role = "write", .name = "admin" };
    struct rt_token proxy = { .role = "proxy", .name = "spaceproxy" };
    struct rt_user u = { 0 };
    int r;

    r = rt_store_meta_get(st, "bootstrapped", flag, sizeof(flag), err);
    if (r >= 0) {
        *ret_first = false;
        return 0;
    }
    if (r != -ENOENT)
        return r;
    r = rt_store_begin(st, err);
    if (r < 0)
        return r;
    r = rt_tiers_seed(st, err);
    if (r >= 0) {
        r = rt_store_user_get(st, RT_ADMIN_USER, &u, err);
        if (r == -ENOENT)
            r = rt_store_user_add(st, RT_ADMIN_USER, true, &u, err);
    }
    if (r >= 0) {
        admin.user_id = u.id;
        r = rt_auth_token_create(st, &admin, admin_secret, err);
    }
    if (r >= 0)
        r = rt_auth_token_create(st, &proxy, proxy_secret, err);
    /* Files first, then commit: a crash in between leaves an unbootstrapped store and
     * the next start writes fresh tokens. */
    if (r >= 0)
        r = rt_write_secret_file(data_dir, "admin.token", admin_secret, err);
    if (r >= 0)
        r = rt_write_secret_file(data_dir, "proxy.token", proxy_secret, err);
    if (r >= 0)
        r = rt_store_meta_set(st, "bootstrapped", "1", err);
    if (r >= 0)
        r = rt_store_commit(st, err);
    explicit_bzero(admin_secret, sizeof(admin_secret));
    explicit_bzero(proxy_secret, sizeof(proxy_secret));
    if (r < 0) {
        rt_store_rollback(st);
        return rt_err_wrap(err, "first start");
    }
    *ret_first = true;
    return 0;
}
