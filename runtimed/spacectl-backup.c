/* spacectl admin backup / restore: a backup is streamed to a file next to FILE and
 * renamed into place only when complete, so FILE is never a partial backup; restore
 * hands over to runtimed's offline restore on this machine. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cleanup.h"
#include "spacectl-backup.h"
#include "util.h"
#include "banned.h"

const struct sc_opt sc_admin_backup_opts[] = { { NULL, NULL, NULL } };
const struct sc_opt sc_admin_restore_opts[] = {
    { "data-dir", "DIR", "the fresh data dir to fill (default /var/lib/spaceport)" },
    { "config", "FILE", "runtimed's settings, passed on (its data_dir is used)" },
    { "runtimed", "PATH", "the runtimed binary (default: beside spacectl, then PATH)" },
    { NULL, NULL, NULL },
};

struct sink {
    CURL *h;
    int fd;
    long status;
    bool failed;
    char err[2048]; /* the body of an error answer */
    size_t err_len;
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct sink *s = userdata;
    size_t len = size * nmemb;

    if (!s->status)
        (void) curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->status);
    if (s->status != 200) {
        size_t room = sizeof(s->err) - 1 - s->err_len;
        size_t n = len < room ? len : room;
        memcpy(s->err + s->err_len, data, n);
        s->err_len += n;
        s->err[s->err_len] = '\0';
        return len;
    }
    if (rt_write_all(s->fd, data, len) < 0) {
        s->failed = true;
        return 0; /* stops the transfer */
    }
    return len;
}

static void easy_cleanupp(CURL **h)
{
    if (*h)
        curl_easy_cleanup(*h);
}

static void slist_free_allp(struct curl_slist **l)
{
    if (*l)
        curl_slist_free_all(*l);
}

int sc_cmd_admin_backup(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    const char *file = inv->pos[0];
    char tmp[PATH_MAX], url[2048], auth[600], cerr[CURL_ERROR_SIZE] = "";
    _cleanup_(easy_cleanupp) CURL *h = NULL;
    _cleanup_(slist_free_allp) struct curl_slist *hdrs = NULL;
    struct sink s = { .fd = -1 };
    struct stat sb;
    CURLcode rc;

    if (lstat(file, &sb) == 0) {
        fprintf(ctx->errf, "spacectl: '%s' exists; a backup never overwrites a file\n", file);
        return SC_EXIT_USAGE;
    }
    if (snprintf(tmp, sizeof(tmp), "%s.partial", file) >= (int) sizeof(tmp))
        return sc_usage_error(ctx, inv, "FILE: name too long");
    (void) unlink(tmp); /* a leftover of an interrupted backup */
    s.fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (s.fd < 0) {
        fprintf(ctx->errf, "spacectl: create '%s': %s\n", tmp, strerror(errno));
        return SC_EXIT_API;
    }
    (void) snprintf(url, sizeof(url), "%s/api/admin/backup", ctx->url);
    (void) snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ctx->token);
    h = s.h = curl_easy_init();
    if (!h || !(hdrs = curl_slist_append(NULL, auth))) {
        fprintf(ctx->errf, "spacectl: out of memory\n");
        (void) close(s.fd);
        (void) unlink(tmp);
        return SC_EXIT_API;
    }
    (void) curl_easy_setopt(h, CURLOPT_URL, url);
    (void) curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    (void) curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    (void) curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    (void) curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    (void) curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, sc_open_socket);
    (void) curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    (void) curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    (void) curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    rc = curl_easy_perform(h);
    if (!s.status)
        (void) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &s.status);
    if (rc == CURLE_OK && s.status == 200 && !s.failed && fsync(s.fd) == 0 && close(s.fd) == 0 &&
        rename(tmp, file) == 0) {
        if (stat(file, &sb) == 0)
            fprintf(ctx->out, "backup written to %s (%lld bytes)\n", file, (long long) sb.st_size);
        return SC_EXIT_OK;
    }
    (void) unlink(tmp);
    if (rc != CURLE_OK && !s.failed) {
        fprintf(ctx->errf, "spacectl: cannot reach %s: %s\n", ctx->url,
                cerr[0] ? cerr : curl_easy_strerror(rc));
        return SC_EXIT_UNREACHABLE;
    }
    if (s.status != 200)
        fprintf(ctx->errf, "spacectl: backup refused (HTTP %ld): %s\n", s.status,
                s.err_len ? s.err : "no reason given");
    else
        fprintf(ctx->errf, "spacectl: writing '%s' failed: %s\n", tmp, strerror(errno));
    return SC_EXIT_API;
}

/* runtimed beside this spacectl (an installed or built tree), else from PATH. */
static const char *find_runtimed(char *buf, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", buf, len - 16);
    char *slash;

    if (n > 0) {
        buf[n] = '\0';
        slash = strrchr(buf, '/');
        if (slash) {
            memcpy(slash + 1, "runtimed", sizeof("runtimed"));
            if (access(buf, X_OK) == 0)
                return buf;
        }
    }
    return "runtimed";
}

int sc_cmd_admin_restore(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    const char *dir = sc_opt_value(inv, "data-dir");
    const char *config = sc_opt_value(inv, "config");
    const char *bin = sc_opt_value(inv, "runtimed");
    const char *argv[10];
    char self[PATH_MAX];
    int n = 0;

    if (!bin)
        bin = find_runtimed(self, sizeof(self));
    argv[n++] = bin;
    if (config) {
        argv[n++] = "--config";
        argv[n++] = config;
    }
    if (dir || !config) {
        argv[n++] = "--data-dir";
        argv[n++] = dir ? dir : "/var/lib/spaceport";
    }
    argv[n++] = "--restore";
    argv[n++] = inv->pos[0];
    argv[n] = NULL;
    (void) fflush(ctx->out);
    (void) execvp(bin, (char *const *) argv);
    fprintf(ctx->errf, "spacectl: run '%s': %s (see --runtimed)\n", bin, strerror(errno));
    return SC_EXIT_API;
}
