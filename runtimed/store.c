#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>

#include "cleanup.h"
#include "error.h"
#include "banned.h"

struct rt_store {
    sqlite3 *db;
    pthread_mutex_t lock;
    int version;
    /* Route generation waiters (rt_store_generation_wait): signalled at the unlock
     * after a bump, once no transaction is open, so a waiter reads the new table. */
    pthread_cond_t gen_cv;
    bool gen_bumped;
};

/* Versioned migrations: migrations[i] takes the schema from version i to i + 1, inside
 * one transaction, and PRAGMA user_version records where a database stands.  Append
 * only: a released migration never changes. */
static const char *const migrations[] = {
    /* 1: the first schema */
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "INSERT INTO meta (key, value) VALUES ('generation', '1');"
    "CREATE TABLE users ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE COLLATE NOCASE,"
    "  admin INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE tokens ("
    "  id INTEGER PRIMARY KEY,"
    "  public_id TEXT NOT NULL UNIQUE,"
    "  user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,"
    "  role TEXT NOT NULL CHECK (role IN ('read', 'write', 'proxy')),"
    "  name TEXT NOT NULL DEFAULT '',"
    "  hash TEXT NOT NULL UNIQUE,"
    "  created_at INTEGER NOT NULL,"
    "  CHECK ((role = 'proxy') = (user_id IS NULL)));"
    "CREATE TABLE token_spaces ("
    "  token_id INTEGER NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,"
    "  space TEXT NOT NULL COLLATE NOCASE,"
    "  PRIMARY KEY (token_id, space));"
    "CREATE TABLE hardware ("
    "  name TEXT PRIMARY KEY,"
    "  pretty_name TEXT NOT NULL,"
    "  cpus REAL NOT NULL CHECK (cpus > 0),"
    "  memory INTEGER NOT NULL CHECK (memory > 0),"
    "  disk INTEGER NOT NULL DEFAULT 0,"
    "  gpus INTEGER NOT NULL DEFAULT 0 CHECK (gpus >= 0),"
    "  gpu_kind TEXT NOT NULL DEFAULT '',"
    "  vram INTEGER NOT NULL DEFAULT 0,"
    "  zero INTEGER NOT NULL DEFAULT 0,"
    "  default_sleep INTEGER NOT NULL DEFAULT -1,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE spaces ("
    "  id INTEGER PRIMARY KEY,"
    "  owner TEXT NOT NULL COLLATE NOCASE,"
    "  name TEXT NOT NULL COLLATE NOCASE,"
    "  host TEXT NOT NULL UNIQUE,"
    "  sdk TEXT NOT NULL,"
    "  private INTEGER NOT NULL DEFAULT 0,"
    "  hardware TEXT NOT NULL REFERENCES hardware(name) ON DELETE RESTRICT,"
    "  hardware_current TEXT NOT NULL DEFAULT '',"
    "  sleep_time INTEGER,"
    "  stage TEXT NOT NULL,"
    "  paused INTEGER NOT NULL DEFAULT 0,"
    "  error TEXT NOT NULL DEFAULT '',"
    "  sha TEXT NOT NULL DEFAULT '',"
    "  upstream TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  last_activity INTEGER NOT NULL,"
    "  UNIQUE (owner, name));"
    "CREATE TABLE revisions ("
    "  id INTEGER PRIMARY KEY,"
    "  space_id INTEGER NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,"
    "  sha TEXT NOT NULL,"
    "  ref TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE builds ("
    "  id INTEGER PRIMARY KEY,"
    "  space_id INTEGER NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,"
    "  sha TEXT NOT NULL,"
    "  factory INTEGER NOT NULL DEFAULT 0,"
    "  status TEXT NOT NULL DEFAULT 'queued',"
    "  created_at INTEGER NOT NULL,"
    "  finished_at INTEGER);"
    "CREATE TABLE secrets ("
    "  space_id INTEGER NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,"
    "  key TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  description TEXT NOT NULL DEFAULT '',"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (space_id, key));"
    "CREATE TABLE variables ("
    "  space_id INTEGER NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,"
    "  key TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  description TEXT NOT NULL DEFAULT '',"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (space_id, key));"
    "CREATE TABLE logs ("
    "  id INTEGER PRIMARY KEY,"
    "  space_id INTEGER NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,"
    "  kind INTEGER NOT NULL,"
    "  ts INTEGER NOT NULL,"
    "  line TEXT NOT NULL);"
    "CREATE INDEX logs_by_space ON logs (space_id, kind, id);"
    /* events outlive their Space: no foreign key */
    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY,"
    "  space_id INTEGER NOT NULL,"
    "  ts INTEGER NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  detail TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX events_by_space ON events (space_id, id);",
    /* 2: light sleep per tier and per Space, in seconds (-1 never).  NULL falls back:
     * a Space to its tier's, a tier to the node's light_sleep_ms. */
    "ALTER TABLE hardware ADD COLUMN light_sleep INTEGER"
    "  CHECK (light_sleep IS NULL OR light_sleep = -1 OR light_sleep > 0);"
    "ALTER TABLE spaces ADD COLUMN light_sleep INTEGER"
    "  CHECK (light_sleep IS NULL OR light_sleep = -1 OR light_sleep > 0);",
    /* 3: a user's plan sets its ZeroGPU class (free: user, pro: pro) */
    "ALTER TABLE users ADD COLUMN plan TEXT NOT NULL DEFAULT 'free'"
    "  CHECK (plan IN ('free', 'pro'));",
};

int64_t rt_store_now_ms(void)
{
    struct timeval tv;

    (void) gettimeofday(&tv, NULL);
    return (int64_t) tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void finalizep(sqlite3_stmt **s)
{
    if (*s)
        (void) sqlite3_finalize(*s);
}
#define _cleanup_stmt_ _cleanup_(finalizep)

/* Maps an SQLite result to -errno, recording the message. */
static int sql_err(struct rt_store *st, int rc, struct rt_err *err, const char *what)
{
    int code = EIO;
    int ext = rc;

    rc &= 0xff; /* extended result codes are on: compare the primary code */
    switch (rc) {
    case SQLITE_CONSTRAINT:
        code = EINVAL;
        break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        code = EBUSY;
        break;
    case SQLITE_NOMEM:
        code = ENOMEM;
        break;
    default:
        break;
    }
    if (rc == SQLITE_CONSTRAINT) {
        if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
            code = EEXIST;
        else if (ext == SQLITE_CONSTRAINT_FOREIGNKEY || strstr(sqlite3_errmsg(st->db), "FOREIGN"))
            code = EBUSY;
    }
    return rt_err_set(err, code, "%s: %s", what, sqlite3_errmsg(st->db));
}

/* Binds arguments by a type string: 't' text, 'i' int64, 'd' double, 'b' bool (int). */
static int bindv(sqlite3_stmt *s, const char *types, va_list ap)
{
    int rc = SQLITE_OK;

    for (int i = 0; types[i] && rc == SQLITE_OK; i++) {
        switch (types[i]) {
        case 't': {
            const char *v = va_arg(ap, const char *);
            rc = v ? sqlite3_bind_text(s, i + 1, v, -1, SQLITE_TRANSIENT)
                   : sqlite3_bind_null(s, i + 1);
            break;
        }
        case 'i':
            rc = sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t));
            break;
        case 'd':
            rc = sqlite3_bind_double(s, i + 1, va_arg(ap, double));
            break;
        case 'b':
            rc = sqlite3_bind_int(s, i + 1, va_arg(ap, int) ? 1 : 0);
            break;
        default:
            rc = SQLITE_MISUSE;
            break;
        }
    }
    return rc;
}

static int prepare(struct rt_store *st, sqlite3_stmt **ret, struct rt_err *err, const char *sql,
                   const char *types, ...)
{
    sqlite3_stmt *s = NULL;
    va_list ap;
    int rc;

    rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK)
        return sql_err(st, rc, err, "prepare");
    va_start(ap, types);
    rc = bindv(s, types, ap);
    va_end(ap);
    if (rc != SQLITE_OK) {
        int r = sql_err(st, rc, err, "bind");
        (void) sqlite3_finalize(s);
        return r;
    }
    *ret = s;
    return 0;
}

/* Runs one statement that returns no rows.  Returns the number of changed rows. */
static int exec(struct rt_store *st, struct rt_err *err, const char *sql, const char *types, ...)
{
    _cleanup_stmt_ sqlite3_stmt *s = NULL;
    va_list ap;
    int rc;

    rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK)
        return sql_err(st, rc, err, "prepare");
    va_start(ap, types);
    rc = bindv(s, types, ap);
    va_end(ap);
    if (rc != SQLITE_OK)
        return sql_err(st, rc, err, "bind");
    rc = sqlite3_step(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return sql_err(st, rc, err, "step");
    return sqlite3_changes(st->db);
}

static void col_text(sqlite3_stmt *s, int i, char *buf, size_t len)
{
    const unsigned char *v = sqlite3_column_text(s, i);

    (void) snprintf(buf, len, "%s", v ? (const char *) v : "");
}

static int exec_script(struct rt_store *st, const char *sql, struct rt_err *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK) {
        int r = rt_err_set(err, EIO, "%s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return r;
    }
    return 0;
}

/* Runs the migrations up to schema @target (the newest, but for tests of migrations). */
static int migrate_to(struct rt_store *st, int target, struct rt_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *s = NULL;
    int version, r;

    r = prepare(st, &s, err, "PRAGMA user_version", "");
    if (r < 0)
        return r;
    if (sqlite3_step(s) != SQLITE_ROW)
        return sql_err(st, sqlite3_errcode(st->db), err, "read schema version");
    version = sqlite3_column_int(s, 0);
    if (version > (int) ARRAY_SIZE(migrations))
        return rt_err_set(err, EPROTO,
                          "database schema version %d is newer than this runtimed (%zu)", version,
                          ARRAY_SIZE(migrations));
    for (; version < target; version++) {
        char bump[64];

        r = exec_script(st, "BEGIN IMMEDIATE", err);
        if (r < 0)
            return r;
        (void) snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", version + 1);
        r = exec_script(st, migrations[version], err);
        if (r >= 0)
            r = exec_script(st, bump, err);
        if (r >= 0)
            r = exec_script(st, "COMMIT", err);
        if (r < 0) {
            (void) sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
            return rt_err_wrap(err, "migration %d", version + 1);
        }
    }
    st->version = version;
    return 0;
}

static int migrate(struct rt_store *st, struct rt_err *err)
{
    return migrate_to(st, (int) ARRAY_SIZE(migrations), err);
}

int rt_store_open(const char *path, struct rt_store **ret, struct rt_err *err)
{
    struct rt_store *st;
    int rc, r;

    /* Secrets live in this file: create it 0600 ourselves (SQLite would honour the
     * umask), and SQLite gives the -wal and -shm files the same mode. */
    if (strcmp(path, ":memory:") != 0) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return rt_err_set(err, errno, "open database '%s'", path);
        (void) close(fd);
    }
    st = calloc(1, sizeof(*st));
    if (!st)
        return rt_err_set(err, ENOMEM, "allocate store");
    (void) pthread_mutex_init(&st->lock, NULL);
    {
        pthread_condattr_t ca;
        (void) pthread_condattr_init(&ca);
        (void) pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        (void) pthread_cond_init(&st->gen_cv, &ca);
        (void) pthread_condattr_destroy(&ca);
    }
    /* FULLMUTEX on top of our own lock: cheap, and safe if a caller forgets it. */
    rc = sqlite3_open_v2(path, &st->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX |
                             SQLITE_OPEN_NOFOLLOW,
                         NULL);
    if (rc != SQLITE_OK) {
        r = rt_err_set(err, rc == SQLITE_CANTOPEN ? EACCES : EIO, "open database '%s': %s", path,
                       st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        rt_store_close(st);
        return r;
    }
    (void) sqlite3_extended_result_codes(st->db, 1);
    (void) sqlite3_busy_timeout(st->db, 5000);
    r = exec_script(st,
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                    "PRAGMA foreign_keys = ON;",
                    err);
    if (r >= 0)
        r = migrate(st, err);
    if (r < 0) {
        rt_err_wrap(err, "open database '%s'", path);
        rt_store_close(st);
        return r;
    }
    *ret = st;
    return 0;
}

void rt_store_close(struct rt_store *st)
{
    if (!st)
        return;
    if (st->db)
        (void) sqlite3_close(st->db);
    (void) pthread_cond_destroy(&st->gen_cv);
    (void) pthread_mutex_destroy(&st->lock);
    free(st);
}

int rt_store_schema_version(struct rt_store *st)
{
    return st->version;
}

void rt_store_lock(struct rt_store *st)
{
    (void) pthread_mutex_lock(&st->lock);
}

void rt_store_unlock(struct rt_store *st)
{
    if (st->gen_bumped && sqlite3_get_autocommit(st->db)) {
        st->gen_bumped = false;
        (void) pthread_cond_broadcast(&st->gen_cv);
    }
    (void) pthread_mutex_unlock(&st->lock);
}

int rt_store_begin(struct rt_store *st, struct rt_err *err)
{
    return exec_script(st, "BEGIN IMMEDIATE", err);
}

int rt_store_commit(struct rt_store *st, struct rt_err *err)
{
    return exec_script(st, "COMMIT", err);
}

void rt_store_rollback(struct rt_store *st)
{
    (void) sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

/* --- meta ------------------------------------------------------------------------------ */

int rt_store_meta_get(struct rt_store *st, const char *key, char *buf, size_t len,
                      struct rt_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *s = NULL;
    int r = prepare(st, &s, err, "SELECT value FROM meta WHERE key = ?", "t", key);

    if (r < 0)
        return r;
    r = sqlite3_step(s);
    if (r == SQLITE_DONE)
        return rt_err_set(err, ENOENT, "no setting '%s'", key);
    if (r != SQLITE_ROW)
        return sql_err(st, r, err, "read setting");
    col_text(s, 0, buf, len);
    return 0;
}

int rt_store_meta_set(struct rt_store *st, const char *key, const char *value, struct rt_err *err)
{
    int r =
        exec(st, err, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", "tt", key, value);
    return r < 0 ? r : 0;
}

int64_t rt_store_generation(struct rt_store *st)
{
    char buf[32];
    struct rt_err err = { 0 };

    if (rt_store_meta_get(st, "generation", buf, sizeof(buf), &err) < 0)
        return 0;
    return strtoll(buf, NULL, 10);
}

int64_t rt_store_generation_wait(struct rt_store *st, int64_t since, unsigned timeout_ms)
{
    struct timespec ts;
    int64_t gen = rt_store_generation(st);

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t) (timeout_ms / 1000);
    ts.tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (gen == since && pthread_cond_timedwait(&st->gen_cv, &st->lock, &ts) == 0)
        gen = rt_store_generation(st);
    return gen == since ? rt_store_generation(st) : gen;
}

static int bump_generation(struct rt_store *st, struct rt_err *err)
{
    int r = exec(st, err,
                 "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'", "");
    if (r >= 0)
        st->gen_bumped = true;
    return r < 0 ? r : 0;
}

/* --- users ----------------------------------------------------------------------------- */

static void read_user(sqlite3_stmt *s, struct rt_user *u)
{
    u->id = sqlite3_column_int64(s, 0);
    col_text(s, 1, u->name, sizeof(u->name));
    u->admin = sqlite3_column_int(s, 2) != 0;
    u->created_at = sqlite3_column_int64(s, 3);
    col_text(s, 4, u->plan, sizeof(u->plan));
}

int rt_store_user_add(struct rt_store *st, const char *name, bool admin, struct rt_user *ret,
                      struct rt_err *err)
{
    int64_t now = rt_store_now_ms();
    int r = exec(st, err, "INSERT INTO users (name, admin, created_at) VALUES (?, ?, ?)", "tbi",
                 name, (int) admin, now);

    if (r == -EEXIST)
        return rt_err_set(err, EEXIST, "user '%s' exists", name);
    if (r < 0)
        return r;
    if (ret) {
        ret->id = sqlite3_last_insert_rowid(st->db);
        (void) snprintf(ret->name, sizeof(ret->name), "%s", name);
        ret->admin = admin;
        ret->created_at = now;
        (void) snprintf(ret->plan, sizeof(ret->plan), "free");
    }
    return 0;
}

int rt_store_user_set_plan(struct rt_store *st, const char *name, const char *plan,
                           struct rt_err *err)
{
    int r;

    if (!rt_plan_valid(plan))
        return rt_err_set(err, EINVAL, "plan must be 'free' or 'pro'");
    r = exec(st, err, "UPDATE users SET plan = ? WHERE name = ?", "tt", plan, name);
    if (r < 0)
        return r;
    return r == 0 ? rt_err_set(err, ENOENT, "no user '%s'", name) : 0;
}

bool rt_plan_valid(const char *plan)
{
    return plan && (strcmp(plan, "free") == 0 || strcmp(plan, "pro") == 0);
}

int rt_store_user_get(struct rt_store *st, const char *name, struct rt_user *ret,
                      struct rt_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *s = NULL;
    int r =
        prepare(st, &s, err, "SELECT id, name, admin, created_at, plan FROM users WHERE name = ?",
                "t", name);

    if (r < 0)
        return r;
    r = sqlite3_step(s);
    if (r == SQLITE_DONE)
        return rt_err_set(err, ENOENT, "no user '%s'", name);
    if (r != SQLITE_ROW)
        return sql_err(st, r, err, "read user");
    read_user(s, ret);
    return 0;
}

int rt_store_user_list(struct rt_store *st, int (*on_user)(const struct rt_user *, void *),
                       void *userdata, struct rt_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *s = NULL;
    int r =
        prepare(st, &s, err, "SELECT id, name, admin, created_at, plan FROM users ORDER BY id", "");

    if (r < 0)
        return r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        struct rt_user u;
        read_user(s, &u);
        if (on_user(&u, userdata))
            return 0;
    }
    return r == SQLITE_DONE ? 0 : sql_err(st, r, err, "list users");
}

int rt_store_user_delete(struct rt_store *st, int64_t id, struct rt_err *err)
{
    int r = exec(st, err, "DELETE FROM users WHERE id = ?", "i", id);

    if (r < 0)
        return r;
    return r == 0 ? rt_err_set(err, ENOENT, "no such user") : 0;
}

static int count(struct rt_store *st, struct rt_err *err, const char *sql, const char *types,
                 const char *a, const char *b)
{
    _cleanup_stmt_ sqlite3_stmt *s = NULL;
    int r = prepare(st, &s, err, sql, types, a, b);

    if (r < 0)
        return r;
    r = sqlite3_step(s);
    if (r != SQLITE_ROW)
        return sql_err(st, r, err, "count");
    return sqlite3_column_int(s, 0);
}

int rt_store_user_count(struct rt_store *st, bool admins_only, struct rt_err *err)
{
    return count(st, err,
                 admins_only ? "SELECT count(*) FROM users WHERE admin"
                             : "SELECT count(*) FROM users",
                 "", NULL, NULL);
}

/* --- tokens ---------------------------------------------------------------------------- */

void rt_store_token_done(struct rt_token *t)
{
    if (!t)
        return;
    free(t->spaces);
    t->spaces = NULL;
    t->n_spaces = 0;
}

int rt_store_token_add(struct rt_store *st, const struct rt_token *t, const char *hash_hex,
                       struct rt_err *err)
{
    int64_t rowid;
    int r;

    r = exec(st, err,
             "INSERT INTO tokens (public_id, user_id, role, name, hash, created_at)"
             " VALUES (?, NULLIF(?, 0), ?, ?, ?, ?)",
             "tittti", t->id, t->user_id, t->role, t->name, hash_hex, t->created_at);
    if (r < 0)
        return r;
    rowid = sqlite3_last_insert_rowid(st->db);
    for (size_t i = 0; i < t->n_spaces; i++) {
        r = exec(st, err, "INSERT OR IGNORE INTO token_spaces (token_id, space) VALUES (?, ?)",
                 "it", rowid, t->spaces[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

#define TOKEN_COLS                                                                                 \
    "SELECT t.id, t.public_id, coalesce(t.user_id, 0), coalesce(u.name, ''),"                      \
    " coalesce(u.admin, 0), t.role, t.name, t.created_at"                                          \
    " FROM tokens t LEFT JOIN users u ON u.id = t.user_id "

static int read_token(struct rt_store *st, sqlite3_stmt *s, struct rt_token *t, struct rt_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *q = NULL;
    int r;

    memset(t, 0, sizeof(*t));
    t->rowid = sqlite3_column_int64(s, 0);
    col_text(s, 1, t->id, sizeof(t->id));
    t->user_id = sqlite3_column_int64(s, 2);
    col_text(s, 3, t->user, sizeof(t->user));
    t->admin = sqlite3_column_int(s, 4) != 0;
    col_text(s, 5, t->role, sizeof(t->role));
    col_text(s, 6, t->name, sizeof(t->name));
    t->created_at = sqlite3_column_int64(s, 7);

    r = prepare(st, &q, err, "SELECT space FROM token_spaces WHERE token_id = ? ORDER BY space",
                "i", t->rowid);
    if (r < 0)
        return r;
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        char(*grown)[RT_ID_SIZE] = realloc(t->spaces, (t->n_spaces + 1) * sizeof(*t->spaces));
        if (!grown) {
            rt_store_token_done(t);
            return rt_err_set(err, ENOMEM, "read token scope");
        }
        t->spaces = grown;
        col_text(q, 0, t->spaces[t->n_spaces], RT_ID_SIZE);
        t->n_spaces++;
    }
    if (r != SQLITE_DONE) {
        rt_store_token_done(t);
        return sql_err(st, r, err, "read token scope");
    }
    return 0;
}

int rt_store_token_find(struct rt_store *st, const char *hash_hex, struct rt_token *ret,
                        struct rt_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *s = NULL;
    int r = prepare(st, &s, err, TOKEN_COLS "WHERE t.hash = ?", "t", hash_hex);

    if (r < 0)
        return r;
    r = sqlite3_step(s);
    if (r == SQLITE_DONE)
        return rt_err_set(err, ENOENT, "unknown token");
    if (r != SQLITE_ROW)
        return sql_err(st, r, err, "find token");
    return read_token(st, s, ret, err);
}

int rt_store_token_list(struct rt_store *st, const char *user,
                        int (*on_token)(const struct rt_token *, void *), void *userdata,
                        struct rt_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *s = NULL;
    int r = prepare(st, &s, err,
                    TOKEN_COLS "WHERE t.role != 'proxy' AND (?1 IS NULL OR u.name = ?1)"
                               " ORDER BY t.id",
                    "t", user);

    if (r < 0)
        return r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        struct rt_token t;
        int stop;

        r = read_token(st, s, &t, err);
        if (r < 0)
            return r;
        stop = on_token(&t, userdata);
        rt_store_token_done(&t);
        if (stop)
            return 0;
    }
    return r == SQLITE_DONE ? 0 : sql_err(st, r, err, "list tokens");
}

int rt_store_token_delete(struct rt_store *st, const char *id, struct rt_err *err)
{
    int r = exec(st, err, "DELETE FROM tokens WHERE public_id = ? AND role != 'proxy'", "t", id);

    if (r < 0)
        return r;
    return r == 0 ? rt_err_set(err, ENOENT, "no token '%s'", id) : 0;
}

/* --- spaces ---------------------------------------------------------------------------- */

#define SPACE_COLS                                                                                 \
    "SELECT id, owner, name, host, sdk, private, hardware, hardware_current,"                      \
    " sleep_time IS NOT NULL, coalesce(sleep_time, 0), stage, paused, error, sha, upstream,"       \
    " created_at, updated_at, last_activity, light_sleep IS NOT NULL,"                             \
    " coalesce(light_sleep, 0) FROM spaces "

static void read_space(sqlite3_stmt *s, struct rt_space *sp)
{
    memset(sp, 0, sizeof(*sp));
    sp->id = sqlite3_column_int64(s, 0);
    col_text(s, 1, sp->owner, sizeof(sp->owner));
    col_text(s, 2, sp->name, sizeof(sp->name));
    col_text(s, 3, sp->host, sizeof(sp->host));
    col_text(s, 4, sp->sdk, sizeof(sp->sdk));
    sp->private_ = sqlite3_column_int(s, 5) != 0;
    col_text(s, 6, sp->hardware, sizeof(sp->hardware));
    col_text(s, 7, sp->hardware_current, sizeof(sp->hardware_current));
    sp->sleep_set = sqlite3_column_int(s, 8) != 0;
    sp->sleep_time = sqlite3_column_int64(s, 9);
    col_text(s, 10, sp->stage, sizeof(sp->stage));
    sp->paused = sqlite3_column_int(s, 11) != 0;
    col_text(s, 12, sp->error, sizeof(sp->error));
    col_text(s, 13, sp->sha, sizeof(sp->sha));
    col_text(s, 14, sp->upstream, sizeof(sp->upstream));
    sp->created_at = sqlite3_column_int64(s, 15);
    sp->updated_at = sqlite3_column_int64(s, 16);
    sp->last_activity = sqlite3_column_int64(s, 17);
    sp->light_set = sqlite3_column_int(s, 18) != 0;
    sp->light_sleep = sqlite3_column_int64(s, 19);
}

int rt_store_space_add(struct rt_store *st, struct rt_space *sp, struct rt_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *s = NULL;
    int64_t now = rt_store_now_ms();
    int r;

    /* The host label must be unique too: 'a-b/c' and 'a/b-c' would share one. */
    r = prepare(st, &s, err, "SELECT owner, name FROM spaces WHERE host = ?", "t", sp->host);
    if (r < 0)
        return r;
    if (sqlite3_step(s) == SQLITE_ROW) {
        char o[RT_NAME_SIZE], n[RT_NAME_SIZE];
        col_text(s, 0, o, sizeof(o));
        col_text(s, 1, n, sizeof(n));
        if (strcasecmp(o, sp->owner) == 0 && strcasecmp(n, sp->name) == 0)
            return rt_err_set(err, EEXIST, "Space '%s/%s' exists", o, n);
        return rt_err_set(err, EEXIST, "Space '%s/%s' already uses the host name '%s'", o, n,
                          sp->host);
    }
    r = exec(st, err,
             "INSERT INTO spaces (owner, name, host, sdk, private, hardware, sleep_time, stage,"
             " paused, created_at, updated_at, last_activity, light_sleep)"
             " VALUES (?, ?, ?, ?, ?, ?, CASE WHEN ? THEN ? END, ?, 0, ?, ?, ?,"
             " CASE WHEN ? THEN ? END)",
             "ttttbtbitiiibi", sp->owner, sp->name, sp->host, sp->sdk, (int) sp->private_,
             sp->hardware, (int) sp->sleep_set, sp->sleep_time, sp->stage, now, now, now,
             (int) sp->light_set, sp->light_sleep);
    if (r == -EEXIST)
        return rt_err_set(err, EEXIST, "Space '%s/%s' exists", sp->owner, sp->name);
    if (r == -EBUSY)
        return rt_err_set(err, ENOENT, "no hardware tier '%s'", sp->hardware);
    if (r < 0)
        return r;
    sp->id = sqlite3_last_insert_rowid(st->db);
    sp->created_at = sp->updated_at = sp->last_activity = now;
    return bump_generation(st, err);
}

static int space_one(struct rt_store *st, sqlite3_stmt *s, struct rt_space *ret, const char *what,
                     struct rt_err *err)
{
    int r = sqlite3_step(s);

    if (r == SQLITE_DONE)
        return rt_err_set(err, ENOENT, "no Space '%s'", what);
    if (r != SQLITE_ROW)
        return sql_err(st, r, err, "read Space");
    read_space(s, ret);
    return 0;
}

int rt_store_space_get(struct rt_store *st, const char *owner, const char *name,
                       struct rt_space *ret, struct rt_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *s = NULL;
    char what[RT_ID_SIZE];
    int r = prepare(st, &s, err, SPACE_COLS "WHERE owner = ? AND name = ?", "tt", owner, name);

    if (r < 0)
        return r;
    (void) snprintf(what, sizeof(what), "%s/%s", owner, name);
    return space_one(st, s, ret, what, err);
}

int rt_store_space_get_by_id(struct rt_store *st, int64_t id, struct rt_space *ret,
                             struct rt_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *s = NULL;
    char what[32];
    int r = prepare(st, &s, err, SPACE_COLS "WHERE id = ?", "i", id);

    if (r < 0)
        return r;
    (void) snprintf(what, sizeof(what), "#%lld", (long long) id);
    return space_one(st, s, ret, what, err);
}

int rt_store_space_get_by_host(struct rt_store *st, const char *host, struct rt_space *ret,
                               struct rt_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *s = NULL;
    int r = prepare(st, &s, err, SPACE_COLS "WHERE host = ?", "t", host);

    if (r < 0)
        return r;
    return space_one(st, s, ret, host, err);
}

int rt_store_space_list(struct rt_store *st, int64_t after,
                        int (*on_space)(const struct rt_space *, void *), void *userdata,
                        struct rt_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *s = NULL;
    int r = prepare(st, &s, err, SPACE_COLS "WHERE id > ? ORDER BY id", "i", after);

    if (r < 0)
        return r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        struct rt_space sp;
        read_space(s, &sp);
        if (on_space(&sp, userdata))
            return 0;
    }
    return r == SQLITE_DONE ? 0 : sql_err(st, r, err, "list Spaces");
}

int rt_store_space_count_owned(struct rt_store *st, const char *owner, struct rt_err *err)
{
    return count(st, err, "SELECT count(*) FROM spaces WHERE owner = ?", "t", owner, NULL);
}

int rt_store_space_delete(struct rt_store *st, int64_t id, struct rt_err *err)
{
    int r = exec(st, err, "DELETE FROM spaces WHERE id = ?", "i", id);

    if (r < 0)
        return r;
    if (r == 0)
        return rt_err_set(err, ENOENT, "no such Space");
    return bump_generation(st, err);
}

int rt_store_space_update(struct rt_store *st, const struct rt_space *sp, struct rt_err *err)
{
    int r =
        exec(st, err,
             "UPDATE spaces SET private = ?, hardware = ?, hardware_current = ?,"
             " sleep_time = CASE WHEN ? THEN ? END, stage = ?, paused = ?, error = ?,"
             " sha = ?, upstream = ?, updated_at = ?, light_sleep = CASE WHEN ? THEN ? END"
             " WHERE id = ?",
             "bttbitbtttibii", (int) sp->private_, sp->hardware, sp->hardware_current,
             (int) sp->sleep_set, sp->sleep_time, sp->stage, (int) sp->paused, sp->error, sp->sha,
             sp->upstream, rt_store_now_ms(), (int) sp->light_set, sp->light_sleep, sp->id);

    if (r == -EBUSY)
        return rt_err_set(err, ENOENT, "no hardware tier '%s'", sp->hardware);
    if (r < 0)
        return r;
    if (r == 0)
        return rt_err_set(err, ENOENT, "no such Space");
    return bump_generation(st, err);
}

int rt_store_space_touch(struct rt_store *st, int64_t id, int64_t now_ms, struct rt_err *err)
{
    int r = exec(st, err, "UPDATE spaces SET last_activity = ? WHERE id = ?", "ii", now_ms, id);
    return r < 0 ? r : 0;
}

/* --- hardware tiers -------------------------------------------------------------------- */

int rt_store_tier_add(struct rt_store *st, const struct rt_tier *t, struct rt_err *err)
{
    int r =
        exec(st, err,
             "INSERT INTO hardware (name, pretty_name, cpus, memory, disk, gpus, gpu_kind,"
             " vram, zero, default_sleep, created_at, light_sleep)"
             " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CASE WHEN ? THEN ? END)",
             "ttdiiitibiibi", t->name, t->pretty, t->cpus, (int64_t) t->memory, (int64_t) t->disk,
             (int64_t) t->gpus, t->gpu_kind, (int64_t) t->vram, (int) t->zero, t->default_sleep,
             rt_store_now_ms(), (int) t->light_set, t->light_sleep);

    if (r == -EEXIST)
        return rt_err_set(err, EEXIST, "hardware tier '%s' exists", t->name);
    return r < 0 ? r : 0;
}

#define TIER_COLS                                                                                  \
    "SELECT name, pretty_name, cpus, memory, disk, gpus, gpu_kind, vram, zero, default_sleep,"     \
    " created_at, light_sleep IS NOT NULL, coalesce(light_sleep, 0) FROM hardware "

static void read_tier(sqlite3_stmt *s, struct rt_tier *t)
{
    memset(t, 0, sizeof(*t));
    col_text(s, 0, t->name, sizeof(t->name));
    col_text(s, 1, t->pretty, sizeof(t->pretty));
    t->cpus = sqlite3_column_double(s, 2);
    t->memory = (uint64_t) sqlite3_column_int64(s, 3);
    t->disk = (uint64_t) sqlite3_column_int64(s, 4);
    t->gpus = sqlite3_column_int(s, 5);
    col_text(s, 6, t->gpu_kind, sizeof(t->gpu_kind));
    t->vram = (uint64_t) sqlite3_column_int64(s, 7);
    t->zero = sqlite3_column_int(s, 8) != 0;
    t->default_sleep = sqlite3_column_int64(s, 9);
    t->created_at = sqlite3_column_int64(s, 10);
    t->light_set = sqlite3_column_int(s, 11) != 0;
    t->light_sleep = sqlite3_column_int64(s, 12);
}

int rt_store_tier_get(struct rt_store *st, const char *name, struct rt_tier *ret,
                      struct rt_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *s = NULL;
    int r = prepare(st, &s, err, TIER_COLS "WHERE name = ?", "t", name);

    if (r < 0)
        return r;
    r = sqlite3_step(s);
    if (r == SQLITE_DONE)
        return rt_err_set(err, ENOENT, "no hardware tier '%s'", name);
    if (r != SQLITE_ROW)
        return sql_err(st, r, err, "read hardware tier");
    read_tier(s, ret);
    return 0;
}

int rt_store_tier_list(struct rt_store *st, int (*on_tier)(const struct rt_tier *, void *),
                       void *userdata, struct rt_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *s = NULL;
    int r = prepare(st, &s, err, TIER_COLS "ORDER BY rowid", "");

    if (r < 0)
        return r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        struct rt_tier t;
        read_tier(s, &t);
        if (on_tier(&t, userdata))
            return 0;
    }
    return r == SQLITE_DONE ? 0 : sql_err(st, r, err, "list hardware tiers");
}

int rt_store_tier_delete(struct rt_store *st, const char *name, struct rt_err *err)
{
    int r = exec(st, err, "DELETE FROM hardware WHERE name = ?", "t", name);

    if (r == -EBUSY)
        return rt_err_set(err, EBUSY, "hardware tier '%s' is in use", name);
    if (r < 0)
        return r;
    return r == 0 ? rt_err_set(err, ENOENT, "no hardware tier '%s'", name) : 0;
}

int rt_store_tier_set_sleep(struct rt_store *st, const struct rt_tier *t, struct rt_err *err)
{
    int r = exec(st, err,
                 "UPDATE hardware SET default_sleep = ?, light_sleep = CASE WHEN ? THEN ? END"
                 " WHERE name = ?",
                 "ibit", t->default_sleep, (int) t->light_set, t->light_sleep, t->name);

    if (r < 0)
        return r;
    return r == 0 ? rt_err_set(err, ENOENT, "no hardware tier '%s'", t->name) : 0;
}

int rt_store_tier_users(struct rt_store *st, const char *name, struct rt_err *err)
{
    return count(st, err, "SELECT count(*) FROM spaces WHERE hardware = ?", "t", name, NULL);
}

/* --- secrets and variables ------------------------------------------------------------- */

static const char *kv_table(enum rt_kv_kind kind)
{
    return kind == RT_KV_SECRET ? "secrets" : "variables";
}

int rt_store_kv_set(struct rt_store *st, enum rt_kv_kind kind, int64_t space_id, const char *key,
                    const char *value, const char *description, struct rt_err *err)
{
    char sql[256];
    int r;

    /* The table name comes from a fixed pair, never from input. */
    (void) snprintf(sql, sizeof(sql),
                    "INSERT INTO %s (space_id, key, value, description, updated_at)"
                    " VALUES (?, ?, ?, coalesce(?, ''), ?) ON CONFLICT (space_id, key) DO UPDATE"
                    " SET value = excluded.value, description = coalesce(?4, description),"
                    " updated_at = excluded.updated_at",
                    kv_table(kind));
    r = exec(st, err, sql, "ittti", space_id, key, value, description, rt_store_now_ms());
    return r < 0 ? r : 0;
}

int rt_store_kv_delete(struct rt_store *st, enum rt_kv_kind kind, int64_t space_id, const char *key,
                       struct rt_err *err)
{
    char sql[128];
    int r;

    (void) snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE space_id = ? AND key = ?",
                    kv_table(kind));
    r = exec(st, err, sql, "it", space_id, key);
    if (r < 0)
        return r;
    return r == 0 ? rt_err_set(err, ENOENT, "no %s '%s'",
                               kind == RT_KV_SECRET ? "secret" : "variable", key)
                  : 0;
}

int rt_store_kv_list(struct rt_store *st, enum rt_kv_kind kind, int64_t space_id, bool with_values,
                     int (*on_kv)(const struct rt_kv *, void *), void *userdata, struct rt_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *s = NULL;
    char sql[160];
    int r;

    (void) snprintf(sql, sizeof(sql),
                    "SELECT key, %s, description, updated_at FROM %s WHERE space_id = ?"
                    " ORDER BY key",
                    with_values ? "value" : "NULL", kv_table(kind));
    r = prepare(st, &s, err, sql, "i", space_id);
    if (r < 0)
        return r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        struct rt_kv kv;
        col_text(s, 0, kv.key, sizeof(kv.key));
        kv.value = (const char *) sqlite3_column_text(s, 1);
        kv.description = (const char *) sqlite3_column_text(s, 2);
        kv.updated_at = sqlite3_column_int64(s, 3);
        if (on_kv(&kv, userdata))
            return 0;
    }
    return r == SQLITE_DONE ? 0 : sql_err(st, r, err, "list keys");
}

int rt_store_kv_copy(struct rt_store *st, enum rt_kv_kind kind, int64_t from, int64_t to,
                     struct rt_err *err)
{
    char sql[256];
    int r;

    (void) snprintf(sql, sizeof(sql),
                    "INSERT OR REPLACE INTO %s (space_id, key, value, description, updated_at)"
                    " SELECT ?, key, value, description, ? FROM %s WHERE space_id = ?",
                    kv_table(kind), kv_table(kind));
    r = exec(st, err, sql, "iii", to, rt_store_now_ms(), from);
    return r < 0 ? r : 0;
}

/* --- logs, events, revisions, builds --------------------------------------------------- */

int rt_store_log_append(struct rt_store *st, int64_t space_id, enum rt_log_kind kind,
                        const char *line, struct rt_err *err)
{
    int r = exec(st, err, "INSERT INTO logs (space_id, kind, ts, line) VALUES (?, ?, ?, ?)", "iiit",
                 space_id, (int64_t) kind, rt_store_now_ms(), line);
    return r < 0 ? r : 0;
}

int rt_store_log_list(struct rt_store *st, int64_t space_id, enum rt_log_kind kind, int64_t after,
                      int limit, int (*on_line)(const struct rt_log_line *, void *), void *userdata,
                      struct rt_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *s = NULL;
    int r = prepare(st, &s, err,
                    "SELECT id, ts, line FROM logs WHERE space_id = ? AND kind = ? AND id > ?"
                    " ORDER BY id LIMIT ?",
                    "iiii", space_id, (int64_t) kind, after, (int64_t) limit);

    if (r < 0)
        return r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        struct rt_log_line l = {
            .id = sqlite3_column_int64(s, 0),
            .ts = sqlite3_column_int64(s, 1),
            .line = (const char *) sqlite3_column_text(s, 2),
        };
        if (!l.line)
            l.line = "";
        if (on_line(&l, userdata))
            return 0;
    }
    return r == SQLITE_DONE ? 0 : sql_err(st, r, err, "read logs");
}

int64_t rt_store_log_tail_start(struct rt_store *st, int64_t space_id, enum rt_log_kind kind, int n)
{
    _cleanup_stmt_ sqlite3_stmt *s = NULL;
    struct rt_err err = { 0 };

    if (prepare(st, &s, &err,
                "SELECT coalesce(min(id) - 1, 0) FROM (SELECT id FROM logs WHERE space_id = ?"
                " AND kind = ? ORDER BY id DESC LIMIT ?)",
                "iii", space_id, (int64_t) kind, (int64_t) n) < 0)
        return 0;
    if (sqlite3_step(s) != SQLITE_ROW)
        return 0;
    return sqlite3_column_int64(s, 0);
}

int rt_store_event_add(struct rt_store *st, int64_t space_id, const char *kind, const char *detail,
                       struct rt_err *err)
{
    int r = exec(st, err, "INSERT INTO events (space_id, ts, kind, detail) VALUES (?, ?, ?, ?)",
                 "iitt", space_id, rt_store_now_ms(), kind, detail ? detail : "");
    return r < 0 ? r : 0;
}

int rt_store_event_count(struct rt_store *st, int64_t space_id, const char *kind,
                         struct rt_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *s = NULL;
    int r = prepare(st, &s, err, "SELECT count(*) FROM events WHERE space_id = ? AND kind = ?",
                    "it", space_id, kind);

    if (r < 0)
        return r;
    r = sqlite3_step(s);
    if (r != SQLITE_ROW)
        return sql_err(st, r, err, "count events");
    return sqlite3_column_int(s, 0);
}

int rt_store_revision_add(struct rt_store *st, int64_t space_id, const char *sha, const char *ref,
                          struct rt_err *err)
{
    int r =
        exec(st, err, "INSERT INTO revisions (space_id, sha, ref, created_at) VALUES (?, ?, ?, ?)",
             "itti", space_id, sha, ref, rt_store_now_ms());
    return r < 0 ? r : 0;
}

int rt_store_build_add(struct rt_store *st, int64_t space_id, const char *sha, bool factory,
                       int64_t *ret_id, struct rt_err *err)
{
    int r =
        exec(st, err, "INSERT INTO builds (space_id, sha, factory, created_at) VALUES (?, ?, ?, ?)",
             "itbi", space_id, sha, (int) factory, rt_store_now_ms());

    if (r < 0)
        return r;
    if (ret_id)
        *ret_id = sqlite3_last_insert_rowid(st->db);
    return 0;
}

int rt_store_build_finish(struct rt_store *st, int64_t build_id, const char *status,
                          struct rt_err *err)
{
    int r = exec(st, err, "UPDATE builds SET status = ?, finished_at = ? WHERE id = ?", "tii",
                 status, rt_store_now_ms(), build_id);

    if (r < 0)
        return r;
    return r == 0 ? rt_err_set(err, ENOENT, "no build %lld", (long long) build_id) : 0;
}

int rt_store_build_list_unfinished(struct rt_store *st,
                                   int (*on_build)(const struct rt_store_build *, void *),
                                   void *userdata, struct rt_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *s = NULL;
    int r = prepare(st, &s, err,
                    "SELECT id, space_id, sha, factory FROM builds WHERE finished_at IS NULL"
                    " ORDER BY id",
                    "");

    if (r < 0)
        return r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        struct rt_store_build b = {
            .id = sqlite3_column_int64(s, 0),
            .space_id = sqlite3_column_int64(s, 1),
            .factory = sqlite3_column_int(s, 3) != 0,
        };
        const char *sha = (const char *) sqlite3_column_text(s, 2);
        (void) snprintf(b.sha, sizeof(b.sha), "%s", sha ? sha : "");
        if (on_build(&b, userdata))
            return 0;
    }
    return r == SQLITE_DONE ? 0 : sql_err(st, r, err, "read builds");
}

int rt_store_build_list_unbuilt(struct rt_store *st,
                                int (*on_build)(const struct rt_store_build *, void *),
                                void *userdata, struct rt_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *s = NULL;
    int r = prepare(st, &s, err,
                    "SELECT r.space_id, r.sha FROM revisions r"
                    " WHERE r.id = (SELECT MAX(id) FROM revisions WHERE space_id = r.space_id)"
                    " AND NOT EXISTS (SELECT 1 FROM builds b"
                    "                 WHERE b.space_id = r.space_id AND b.sha = r.sha)"
                    " ORDER BY r.space_id",
                    "");

    if (r < 0)
        return r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        struct rt_store_build b = { .space_id = sqlite3_column_int64(s, 0) };
        const char *sha = (const char *) sqlite3_column_text(s, 1);
        (void) snprintf(b.sha, sizeof(b.sha), "%s", sha ? sha : "");
        if (on_build(&b, userdata))
            return 0;
    }
    return r == SQLITE_DONE ? 0 : sql_err(st, r, err, "read revisions");
}

/* --- operations: metrics and backup -------------------------------------------------- */

int rt_store_build_stats(struct rt_store *st,
                         int (*on_status)(const char *status, int64_t n, void *userdata),
                         void *userdata, struct rt_err *err)
{
    _cleanup_stmt_ sqlite3_stmt *s = NULL;
    int r = prepare(st, &s, err, "SELECT status, count(*) FROM builds GROUP BY status", "");

    if (r < 0)
        return r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        const unsigned char *status = sqlite3_column_text(s, 0);
        int cr =
            on_status(status ? (const char *) status : "", sqlite3_column_int64(s, 1), userdata);
        if (cr < 0)
            return cr;
    }
    return r == SQLITE_DONE ? 0 : sql_err(st, r, err, "build stats");
}

static void dest_closep(sqlite3 **db)
{
    if (*db)
        (void) sqlite3_close(*db);
}

/* SQLite's online backup copies pages while it holds a read transaction on our
 * connection.  Every writer uses this same connection, and SQLite carries their changes
 * into a running backup, so copying a few pages per turn of the store lock gives one
 * consistent copy without stalling the API for the length of a large database. */
int rt_store_backup(struct rt_store *st, const char *dest_path, struct rt_err *err)
{
    _cleanup_(dest_closep) sqlite3 *dest = NULL;
    sqlite3_backup *b;
    int fd, rc;

    fd = open(dest_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return rt_err_set(err, errno, "create '%s'", dest_path);
    (void) close(fd);
    rc = sqlite3_open_v2(dest_path, &dest, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL);
    if (rc != SQLITE_OK)
        return rt_err_set(err, EIO, "open '%s': %s", dest_path, sqlite3_errstr(rc));
    rt_store_lock(st);
    b = sqlite3_backup_init(dest, "main", st->db, "main");
    rt_store_unlock(st);
    if (!b)
        return rt_err_set(err, EIO, "backup to '%s': %s", dest_path, sqlite3_errmsg(dest));
    do {
        rt_store_lock(st);
        rc = sqlite3_backup_step(b, 256);
        rt_store_unlock(st);
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
            (void) sqlite3_sleep(5);
    } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
    rt_store_lock(st);
    (void) sqlite3_backup_finish(b);
    rt_store_unlock(st);
    if (rc != SQLITE_DONE)
        return rt_err_set(err, EIO, "backup to '%s': %s", dest_path, sqlite3_errstr(rc));
    return 0;
}

int rt_store_schema_latest(void)
{
    return (int) ARRAY_SIZE(migrations);
}

int rt_store_create_at_version(const char *path, int version, struct rt_err *err)
{
    struct rt_store tmp = { 0 };
    int rc, r;

    if (version < 0 || version > (int) ARRAY_SIZE(migrations))
        return rt_err_set(err, EINVAL, "no schema version %d", version);
    rc = sqlite3_open_v2(path, &tmp.db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW, NULL);
    if (rc != SQLITE_OK) {
        r = rt_err_set(err, EIO, "open database '%s': %s", path, sqlite3_errstr(rc));
        (void) sqlite3_close(tmp.db);
        return r;
    }
    r = exec_script(&tmp, "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;", err);
    if (r >= 0)
        r = migrate_to(&tmp, version, err);
    (void) sqlite3_close(tmp.db);
    return r;
}
