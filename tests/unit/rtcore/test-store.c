/* Unit tests for runtimed's store against a real SQLite file, and for first start. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sqlite3.h>
#include <time.h>
#include <unistd.h>

#include "../tap.h"
#include "error.h"
#include "runtimed/auth.h"
#include "runtimed/bootstrap.h"
#include "sha256.h"
#include "runtimed/store.h"
#include "runtimed/tiers.h"
#include "util.h"

static char dir[] = "/tmp/rtcore-store-XXXXXX";
static char db[300];

static int count_cb(const void *x, void *userdata)
{
    (void) x;
    (*(int *) userdata)++;
    return 0;
}

static int on_user_count(const struct rt_user *u, void *userdata)
{
    return count_cb(u, userdata);
}

static int on_tier_count(const struct rt_tier *t, void *userdata)
{
    return count_cb(t, userdata);
}

struct kv_seen {
    int n;
    int with_value;
    char last_key[64];
};

static int on_kv(const struct rt_kv *kv, void *userdata)
{
    struct kv_seen *s = userdata;

    s->n++;
    s->with_value += kv->value != NULL;
    (void) snprintf(s->last_key, sizeof(s->last_key), "%s", kv->key);
    return 0;
}

static int on_line(const struct rt_log_line *l, void *userdata)
{
    (void) snprintf(userdata, 64, "%s", l->line);
    return 0;
}

static void new_space(struct rt_space *s, const char *owner, const char *name)
{
    memset(s, 0, sizeof(*s));
    (void) snprintf(s->owner, sizeof(s->owner), "%s", owner);
    (void) snprintf(s->name, sizeof(s->name), "%s", name);
    rt_space_host(owner, name, s->host);
    (void) snprintf(s->sdk, sizeof(s->sdk), "gradio");
    (void) snprintf(s->hardware, sizeof(s->hardware), "cpu-basic");
    (void) snprintf(s->stage, sizeof(s->stage), "NO_APP_FILE");
}

static void test_open_and_bootstrap(void)
{
    struct rt_store *st = NULL;
    struct rt_err err = { 0 };
    char path[400], token[128] = "";
    struct rt_principal p;
    struct stat sb;
    bool first = false;
    int n = 0, fd;

    is_int(rt_store_open(db, &st, &err), 0, "open a new database");
    if (!st)
        return;
    is_int(rt_store_schema_version(st), rt_store_schema_latest(),
           "migrations ran to the newest version");
    ok(stat(db, &sb) == 0 && (sb.st_mode & 0777) == 0600, "database is mode 0600");
    is_int(rt_bootstrap(st, dir, &first, &err), 0, "first start");
    ok(first, "it was the first start");
    (void) snprintf(path, sizeof(path), "%s/admin.token", dir);
    ok(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600, "admin.token is mode 0600");
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t got = rt_read_all(fd, token, sizeof(token) - 1);
        token[got > 0 ? got : 0] = '\0';
        token[strcspn(token, "\n")] = '\0';
        (void) close(fd);
    }
    is_int(rt_auth_resolve_token(st, token, &p, &err), 0, "the admin token resolves");
    is_str(p.token.user, "admin", "to user admin");
    ok(p.token.admin && strcmp(p.token.role, "write") == 0, "an admin write token");
    rt_principal_done(&p);
    is_int(rt_auth_resolve(st, "Bearer sp_nope", &p, &err), -EACCES, "unknown token refused");
    is_int(rt_auth_resolve(st, "Basic abc", &p, &err), -EACCES, "malformed Basic refused");
    is_int(rt_auth_resolve(st, "Digest abc", &p, &err), -EACCES, "other schemes refused");
    {
        /* git's Basic credentials: "anyone:TOKEN" in base64. */
        static const char b64[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char plain[200], header[300] = "Basic ";
        size_t len, pos = 6;
        (void) snprintf(plain, sizeof(plain), "git:%s", token);
        len = strlen(plain);
        for (size_t i = 0; i < len; i += 3) {
            uint32_t v = (uint32_t) (unsigned char) plain[i] << 16;
            if (i + 1 < len)
                v |= (uint32_t) (unsigned char) plain[i + 1] << 8;
            if (i + 2 < len)
                v |= (unsigned char) plain[i + 2];
            header[pos++] = b64[(v >> 18) & 63];
            header[pos++] = b64[(v >> 12) & 63];
            header[pos++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
            header[pos++] = i + 2 < len ? b64[v & 63] : '=';
        }
        header[pos] = '\0';
        is_int(rt_auth_resolve(st, header, &p, &err), 0, "Basic with the token as password");
        is_str(p.token.user, "admin", "resolves to the token's user, whatever the user part");
        rt_principal_done(&p);
        header[pos - 3] = 'A';
        is_int(rt_auth_resolve(st, header, &p, &err), -EACCES, "a wrong password is refused");
    }
    is_int(rt_auth_resolve(st, NULL, &p, &err), 0, "no header: anonymous");
    ok(p.anonymous, "anonymous principal");
    rt_store_user_list(st, on_user_count, &n, &err);
    is_int(n, 1, "one user");
    n = 0;
    rt_store_tier_list(st, on_tier_count, &n, &err);
    ok(n >= 17, "default tiers seeded (%d)", n);
    is_int(rt_bootstrap(st, dir, &first, &err), 0, "second bootstrap");
    ok(!first, "does nothing the second time");
    rt_store_close(st);

    /* Reopening finds the same state and runs no migration twice. */
    st = NULL;
    is_int(rt_store_open(db, &st, &err), 0, "reopen");
    if (!st)
        return;
    is_int(rt_auth_resolve_token(st, token, &p, &err), 0, "the token survives a reopen");
    rt_principal_done(&p);
    rt_store_close(st);
}

static void test_spaces(void)
{
    struct rt_store *st = NULL;
    struct rt_err err = { 0 };
    struct rt_space a, b, got;
    struct kv_seen seen = { 0 };
    char line[64] = "";
    int64_t gen;

    if (rt_store_open(db, &st, &err) < 0) {
        ok(0, "open: %s", err.msg);
        return;
    }
    gen = rt_store_generation(st);
    new_space(&a, "alice", "demo");
    is_int(rt_store_space_add(st, &a, &err), 0, "add a Space");
    ok(a.id > 0, "it has an id");
    ok(rt_store_generation(st) > gen, "adding bumps the route generation");
    new_space(&b, "Alice", "Demo");
    is_int(rt_store_space_add(st, &b, &err), -EEXIST, "same id in other case refused");
    new_space(&b, "alice-demo", "x");
    is_int(rt_store_space_add(st, &b, &err), 0, "a different host is fine");
    new_space(&b, "alice", "demo-x");
    is_int(rt_store_space_add(st, &b, &err), -EEXIST, "host collision refused");
    ok(strstr(err.msg, "host name 'alice-demo-x'") != NULL, "says which host: %s", err.msg);
    new_space(&b, "bob", "y");
    (void) snprintf(b.hardware, sizeof(b.hardware), "no-such-tier");
    is_int(rt_store_space_add(st, &b, &err), -ENOENT, "unknown tier refused by foreign key");

    is_int(rt_store_space_get(st, "ALICE", "DEMO", &got, &err), 0, "get is case-insensitive");
    is_str(got.host, "alice-demo", "host stored");
    ok(!got.sleep_set, "no sleep time set");
    got.paused = true;
    got.sleep_set = true;
    got.sleep_time = 3600;
    (void) snprintf(got.hardware, sizeof(got.hardware), "cpu-upgrade");
    is_int(rt_store_space_update(st, &got, &err), 0, "update");
    is_int(rt_store_space_get_by_host(st, "alice-demo", &got, &err), 0, "get by host");
    ok(got.paused && got.sleep_set && got.sleep_time == 3600, "update stored");
    is_str(got.hardware, "cpu-upgrade", "hardware stored");
    is_int(rt_store_tier_delete(st, "cpu-upgrade", &err), -EBUSY, "a tier in use stays");
    is_int(rt_store_tier_users(st, "cpu-upgrade", &err), 1, "one Space uses it");

    is_int(rt_store_kv_set(st, RT_KV_SECRET, got.id, "TOKEN", "s3cret", NULL, &err), 0,
           "set a secret");
    is_int(rt_store_kv_set(st, RT_KV_SECRET, got.id, "TOKEN", "s3cret2", "d", &err), 0,
           "update it");
    rt_store_kv_list(st, RT_KV_SECRET, got.id, false, on_kv, &seen, &err);
    is_int(seen.n, 1, "one secret");
    is_int(seen.with_value, 0, "listing never reads the value");
    is_int(rt_store_kv_delete(st, RT_KV_SECRET, got.id, "NOPE", &err), -ENOENT,
           "deleting a missing key");
    is_int(rt_store_kv_set(st, RT_KV_VARIABLE, got.id, "MODE", "fast", NULL, &err), 0,
           "set a variable");
    is_int(rt_store_kv_copy(st, RT_KV_VARIABLE, got.id, b.id ? b.id : a.id, &err), 0,
           "copy variables");

    is_int(rt_store_log_append(st, got.id, RT_LOGS_BUILD, "one", &err), 0, "append a log line");
    is_int(rt_store_log_append(st, got.id, RT_LOGS_BUILD, "two", &err), 0, "another");
    rt_store_log_list(st, got.id, RT_LOGS_BUILD,
                      rt_store_log_tail_start(st, got.id, RT_LOGS_BUILD, 1), 10, on_line, line,
                      &err);
    is_str(line, "two", "tail=1 starts at the last line");
    line[0] = '\0';
    rt_store_log_list(st, got.id, RT_LOGS_RUN, 0, 10, on_line, line, &err);
    is_str(line, "", "run logs are separate");
    is_int(rt_store_event_add(st, got.id, "pause", "", &err), 0, "record an event");
    is_int(rt_store_event_count(st, got.id, "pause", &err), 1, "count it");

    gen = rt_store_generation(st);
    is_int(rt_store_space_delete(st, got.id, &err), 0, "delete the Space");
    ok(rt_store_generation(st) > gen, "deleting bumps the route generation");
    is_int(rt_store_space_get(st, "alice", "demo", &got, &err), -ENOENT, "it is gone");
    seen.n = 0;
    rt_store_kv_list(st, RT_KV_SECRET, a.id, false, on_kv, &seen, &err);
    is_int(seen.n, 0, "its secrets went with it");
    is_int(rt_store_event_count(st, a.id, "pause", &err), 1, "its events stay");
    is_int(rt_store_tier_delete(st, "cpu-upgrade", &err), 0, "an unused tier can go");
    rt_store_close(st);
}

static void test_users_tokens(void)
{
    struct rt_store *st = NULL;
    struct rt_err err = { 0 };
    struct rt_user u;
    struct rt_token t = { .role = "read", .name = "ci" };
    char spaces[2][RT_ID_SIZE] = { "alice/a", "alice/b" };
    char secret[RT_TOKEN_SIZE], hash[RT_SHA256_HEX_LEN];
    struct rt_principal p;

    if (rt_store_open(db, &st, &err) < 0) {
        ok(0, "open: %s", err.msg);
        return;
    }
    is_int(rt_store_user_add(st, "alice", false, &u, &err), 0, "add a user");
    is_int(rt_store_user_add(st, "ALICE", false, NULL, &err), -EEXIST, "names are unique");
    t.user_id = u.id;
    t.spaces = spaces;
    t.n_spaces = 2;
    is_int(rt_auth_token_create(st, &t, secret, &err), 0, "create a scoped token");
    t.spaces = NULL;
    t.n_spaces = 0;
    is_int(rt_auth_resolve_token(st, secret, &p, &err), 0, "resolve it");
    is_int(p.token.n_spaces, 2, "with its two Spaces");
    is_str(p.token.spaces[1], "alice/b", "in order");
    is_str(p.token.role, "read", "and its role");
    rt_principal_done(&p);
    rt_sha256_hex(secret, strlen(secret), hash);
    is_int(rt_store_token_find(st, secret, &p.token, &err), -ENOENT,
           "the secret itself is not a key in the store");
    is_int(rt_store_user_delete(st, u.id, &err), 0, "delete the user");
    is_int(rt_auth_resolve_token(st, secret, &p, &err), -EACCES, "their tokens went with them");
    is_int(rt_store_token_delete(st, t.id, &err), -ENOENT, "so the token id is unknown");
    rt_store_close(st);
}

static void test_newer_schema_refused(void)
{
    char path[400];
    struct rt_store *st = NULL;
    struct rt_err err = { 0 };
    sqlite3 *raw = NULL;

    (void) snprintf(path, sizeof(path), "%s/newer.db", dir);
    if (sqlite3_open(path, &raw) == SQLITE_OK)
        (void) sqlite3_exec(raw, "PRAGMA user_version = 99", NULL, NULL, NULL);
    (void) sqlite3_close(raw);
    is_int(rt_store_open(path, &st, &err), -EPROTO, "a schema from a newer runtimed is refused");
    ok(strstr(err.msg, "newer") != NULL, "and says so: %s", err.msg);
    ok(st == NULL, "no store is returned");
    (void) unlink(path);
}

struct bumper {
    struct rt_store *st;
    int64_t id;
    int64_t in_tx_gen; /* what a waiter could have read inside the open transaction */
};

/* Another API thread: changes a Space inside a transaction, slowly. */
static void *bump_later(void *arg)
{
    struct bumper *b = arg;
    struct rt_err err = { 0 };
    struct rt_space s;

    (void) nanosleep(&(struct timespec){ .tv_nsec = 200000000L }, NULL);
    rt_store_lock(b->st);
    (void) rt_store_begin(b->st, &err);
    (void) rt_store_space_get(b->st, "carol", "wait", &s, &err);
    s.sleep_set = true;
    s.sleep_time = 60;
    (void) rt_store_space_update(b->st, &s, &err);
    b->in_tx_gen = rt_store_generation(b->st);
    (void) rt_store_commit(b->st, &err);
    rt_store_unlock(b->st);
    return NULL;
}

static void test_generation_wait(void)
{
    struct rt_store *st = NULL;
    struct rt_err err = { 0 };
    struct rt_space a;
    struct bumper b = { 0 };
    pthread_t t;
    int64_t gen, got;
    uint64_t t0;

    if (rt_store_open(db, &st, &err) < 0) {
        ok(0, "open: %s", err.msg);
        return;
    }
    new_space(&a, "carol", "wait");
    is_int(rt_store_space_add(st, &a, &err), 0, "add a Space");
    rt_store_lock(st);
    gen = rt_store_generation(st);
    t0 = rt_now_ns();
    is_int(rt_store_generation_wait(st, gen, 100), gen, "no change: the same generation");
    ok(rt_now_ns() - t0 >= 90000000ULL, "after the timeout");
    b.st = st;
    b.id = a.id;
    ok(pthread_create(&t, NULL, bump_later, &b) == 0, "a thread changes the Space");
    t0 = rt_now_ns();
    got = rt_store_generation_wait(st, gen, 20000);
    ok(got > gen, "the wait ends at the change (%lld > %lld)", (long long) got, (long long) gen);
    ok(rt_now_ns() - t0 < 15000000000ULL, "woken by the change, not by the 20 s timeout");
    is_int(got, b.in_tx_gen, "woken once the transaction is committed");
    printf("# woken %.1f ms after the wait began (the change came at 200 ms)\n",
           (double) (rt_now_ns() - t0) / 1e6);
    rt_store_unlock(st);
    (void) pthread_join(t, NULL);
    rt_store_close(st);
}

int main(void)
{
    char path[400];
    static const char *const files[] = { "spaceport.db", "spaceport.db-wal", "spaceport.db-shm",
                                         "admin.token", "proxy.token" };

    tap_start();
    if (!mkdtemp(dir)) {
        printf("1..0 # SKIP no temp dir\n");
        return 77;
    }
    (void) snprintf(db, sizeof(db), "%s/spaceport.db", dir);
    test_open_and_bootstrap();
    test_spaces();
    test_generation_wait();
    test_users_tokens();
    test_newer_schema_refused();
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        (void) snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        (void) unlink(path);
    }
    (void) rmdir(dir);
    return tap_done();
}
