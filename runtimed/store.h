/* The state of runtimed in one SQLite database (WAL): users, tokens, Spaces, revisions,
 * builds, hardware tiers, secrets, variables, logs and events.  This is the only code
 * that speaks SQL.
 *
 * One connection, shared by the API's worker threads: callers bracket each request
 * with rt_store_lock()/rt_store_unlock(), so a check followed by a change is atomic.
 * Functions return 0 (or a count) on success and -errno on failure: -ENOENT when a
 * row is missing, -EEXIST on a uniqueness conflict, -EIO for SQLite errors (the
 * message in @err).  Outputs (ret_*) are written only on success. */
#ifndef SP_RUNTIMED_STORE_H
#define SP_RUNTIMED_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "names.h"

struct rt_err;
struct rt_store;

#define RT_ROLE_SIZE 8      /* "read", "write", "proxy" */
#define RT_TOKEN_ID_SIZE 17 /* 16 hex digits */
#define RT_LABEL_SIZE 129   /* token names, pretty names */
#define RT_TIER_SIZE 65
#define RT_STAGE_SIZE 32
#define RT_SDK_SIZE 16
#define RT_SHA_SIZE 65

struct rt_user {
    int64_t id;
    char name[RT_NAME_SIZE];
    bool admin;
    int64_t created_at; /* unix ms */
    char plan[8];       /* "free" or "pro": the ZeroGPU class (user or pro) */
};

struct rt_token {
    int64_t rowid;
    char id[RT_TOKEN_ID_SIZE]; /* public id, safe to show */
    int64_t user_id;           /* 0 for the proxy token */
    char user[RT_NAME_SIZE];
    bool admin; /* whether the user is an admin */
    char role[RT_ROLE_SIZE];
    char name[RT_LABEL_SIZE];
    int64_t created_at;
    size_t n_spaces; /* 0: every Space the user may reach */
    char (*spaces)[RT_ID_SIZE];
};

struct rt_space {
    int64_t id;
    char owner[RT_NAME_SIZE];
    char name[RT_NAME_SIZE];
    char host[RT_HOST_SIZE];
    char sdk[RT_SDK_SIZE];
    bool private_;
    char hardware[RT_TIER_SIZE];                   /* requested tier */
    char hardware_current[RT_TIER_SIZE];           /* "" until the Space runs on it */
    bool sleep_set;                                /* false: the tier's default sleep time */
    int64_t sleep_time;                            /* seconds, -1 never */
    bool light_set;                                /* false: the tier's light sleep */
    int64_t light_sleep;                           /* seconds before freezing, -1 never */
    char stage[RT_STAGE_SIZE];                     /* as the lifecycle last set it */
    bool paused;                                   /* paused by its owner: reported stage PAUSED */
    char error[512];                               /* errorMessage, "" when none */
    char sha[RT_SHA_SIZE];                         /* serving commit, "" when none */
    char upstream[64];                             /* "ip:port" while running, "" otherwise */
    int64_t created_at, updated_at, last_activity; /* unix ms */
};

struct rt_tier {
    char name[RT_TIER_SIZE];
    char pretty[RT_LABEL_SIZE];
    double cpus;
    uint64_t memory, disk; /* bytes */
    int gpus;              /* dedicated GPUs; 0 for CPU and ZeroGPU tiers */
    char gpu_kind[32];     /* "a10g", "" when none */
    uint64_t vram;         /* bytes per GPU, 0 unknown */
    bool zero;             /* ZeroGPU: time-slices of a shared GPU */
    int64_t default_sleep; /* seconds; -1 never */
    int64_t created_at;
    bool light_set;      /* false: the node's light_sleep_ms applies */
    int64_t light_sleep; /* seconds of idle before a Space is frozen; -1 never */
};

enum rt_kv_kind { RT_KV_SECRET, RT_KV_VARIABLE };

struct rt_kv {
    char key[257];
    const char *value; /* NULL for secrets in listings: values are never read back out */
    const char *description;
    int64_t updated_at;
};

enum rt_log_kind { RT_LOGS_BUILD, RT_LOGS_RUN };

struct rt_log_line {
    int64_t id; /* increasing; resume after it */
    int64_t ts; /* unix ms */
    const char *line;
};

/* Opens (creating when missing) the database at @path and runs pending migrations. */
int rt_store_open(const char *path, struct rt_store **ret, struct rt_err *err);
void rt_store_close(struct rt_store *st);
/* The schema version the migrations reached. */
int rt_store_schema_version(struct rt_store *st);

void rt_store_lock(struct rt_store *st);
void rt_store_unlock(struct rt_store *st);
int rt_store_begin(struct rt_store *st, struct rt_err *err);
int rt_store_commit(struct rt_store *st, struct rt_err *err);
void rt_store_rollback(struct rt_store *st);

/* Small settings kept with the data (e.g. "bootstrapped"). */
int rt_store_meta_get(struct rt_store *st, const char *key, char *buf, size_t len,
                      struct rt_err *err);
int rt_store_meta_set(struct rt_store *st, const char *key, const char *value, struct rt_err *err);
/* The route generation: bumped by every change spaceproxy cares about. */
int64_t rt_store_generation(struct rt_store *st);
/* With the store locked: waits until the generation differs from @since or @timeout_ms
 * passes, the lock released meanwhile, and returns the generation then.  Woken by the
 * rt_store_unlock() that follows a bump with no transaction open, so the new table is
 * committed; a bump by another process is only seen at the timeout. */
int64_t rt_store_generation_wait(struct rt_store *st, int64_t since, unsigned timeout_ms);

/* users */
int rt_store_user_add(struct rt_store *st, const char *name, bool admin, struct rt_user *ret,
                      struct rt_err *err);
/* Sets @name's plan ("free" or "pro").  Returns 0, -ENOENT or -EINVAL. */
int rt_store_user_set_plan(struct rt_store *st, const char *name, const char *plan,
                           struct rt_err *err);
bool rt_plan_valid(const char *plan);
int rt_store_user_get(struct rt_store *st, const char *name, struct rt_user *ret,
                      struct rt_err *err);
int rt_store_user_list(struct rt_store *st, int (*on_user)(const struct rt_user *, void *),
                       void *userdata, struct rt_err *err);
int rt_store_user_delete(struct rt_store *st, int64_t id, struct rt_err *err);
int rt_store_user_count(struct rt_store *st, bool admins_only, struct rt_err *err);

/* tokens: only the SHA-256 of the secret is stored */
int rt_store_token_add(struct rt_store *st, const struct rt_token *t, const char *hash_hex,
                       struct rt_err *err);
/* Finds the token whose secret hashes to @hash_hex.  Free with rt_store_token_done(). */
int rt_store_token_find(struct rt_store *st, const char *hash_hex, struct rt_token *ret,
                        struct rt_err *err);
/* Lists tokens (not the proxy's), those of @user only when it is not NULL.  Each
 * token passed to @on_token is freed after the call returns. */
int rt_store_token_list(struct rt_store *st, const char *user,
                        int (*on_token)(const struct rt_token *, void *), void *userdata,
                        struct rt_err *err);
int rt_store_token_delete(struct rt_store *st, const char *id, struct rt_err *err);
void rt_store_token_done(struct rt_token *t);

/* spaces */
/* Adds @s (id and timestamps are set from the row).  -EEXIST when the id or its host
 * label is taken. */
int rt_store_space_add(struct rt_store *st, struct rt_space *s, struct rt_err *err);
int rt_store_space_get(struct rt_store *st, const char *owner, const char *name,
                       struct rt_space *ret, struct rt_err *err);
int rt_store_space_get_by_id(struct rt_store *st, int64_t id, struct rt_space *ret,
                             struct rt_err *err);
int rt_store_space_get_by_host(struct rt_store *st, const char *host, struct rt_space *ret,
                               struct rt_err *err);
/* Calls @on_space for each Space with a row id above @after, in row id order, until it
 * returns nonzero. */
int rt_store_space_list(struct rt_store *st, int64_t after,
                        int (*on_space)(const struct rt_space *, void *), void *userdata,
                        struct rt_err *err);
int rt_store_space_count_owned(struct rt_store *st, const char *owner, struct rt_err *err);
int rt_store_space_delete(struct rt_store *st, int64_t id, struct rt_err *err);
/* Writes back the mutable fields of @s: hardware, sleep, light sleep, stage, paused,
 * error, sha, upstream, private, hardware_current. */
int rt_store_space_update(struct rt_store *st, const struct rt_space *s, struct rt_err *err);
int rt_store_space_touch(struct rt_store *st, int64_t id, int64_t now_ms, struct rt_err *err);

/* hardware tiers */
int rt_store_tier_add(struct rt_store *st, const struct rt_tier *t, struct rt_err *err);
int rt_store_tier_get(struct rt_store *st, const char *name, struct rt_tier *ret,
                      struct rt_err *err);
int rt_store_tier_list(struct rt_store *st, int (*on_tier)(const struct rt_tier *, void *),
                       void *userdata, struct rt_err *err);
int rt_store_tier_delete(struct rt_store *st, const char *name, struct rt_err *err);
/* Writes the sleep defaults of tier @t->name: default_sleep, light_set, light_sleep. */
int rt_store_tier_set_sleep(struct rt_store *st, const struct rt_tier *t, struct rt_err *err);
/* How many Spaces request tier @name. */
int rt_store_tier_users(struct rt_store *st, const char *name, struct rt_err *err);

/* secrets and variables of one Space */
int rt_store_kv_set(struct rt_store *st, enum rt_kv_kind kind, int64_t space_id, const char *key,
                    const char *value, const char *description, struct rt_err *err);
int rt_store_kv_delete(struct rt_store *st, enum rt_kv_kind kind, int64_t space_id, const char *key,
                       struct rt_err *err);
/* Lists in key order; secrets come without their values unless @with_values (for the
 * code that starts the Space, never for a response). */
int rt_store_kv_list(struct rt_store *st, enum rt_kv_kind kind, int64_t space_id, bool with_values,
                     int (*on_kv)(const struct rt_kv *, void *), void *userdata,
                     struct rt_err *err);
/* Copies the variables of @from to @to (duplicate). */
int rt_store_kv_copy(struct rt_store *st, enum rt_kv_kind kind, int64_t from, int64_t to,
                     struct rt_err *err);

/* logs and events */
int rt_store_log_append(struct rt_store *st, int64_t space_id, enum rt_log_kind kind,
                        const char *line, struct rt_err *err);
/* Lines with id above @after, oldest first, at most @limit. */
int rt_store_log_list(struct rt_store *st, int64_t space_id, enum rt_log_kind kind, int64_t after,
                      int limit, int (*on_line)(const struct rt_log_line *, void *), void *userdata,
                      struct rt_err *err);
/* The id such that the last @n lines come after it (for ?tail=N). */
int64_t rt_store_log_tail_start(struct rt_store *st, int64_t space_id, enum rt_log_kind kind,
                                int n);
int rt_store_event_add(struct rt_store *st, int64_t space_id, const char *kind, const char *detail,
                       struct rt_err *err);
int rt_store_event_count(struct rt_store *st, int64_t space_id, const char *kind,
                         struct rt_err *err);

/* revisions and builds (filled by git ingest and the builder) */
int rt_store_revision_add(struct rt_store *st, int64_t space_id, const char *sha, const char *ref,
                          struct rt_err *err);
int rt_store_build_add(struct rt_store *st, int64_t space_id, const char *sha, bool factory,
                       int64_t *ret_id, struct rt_err *err);
int rt_store_build_finish(struct rt_store *st, int64_t build_id, const char *status,
                          struct rt_err *err);
/* A build row as the builder needs it again after a restart. */
struct rt_store_build {
    int64_t id;
    int64_t space_id;
    char sha[RT_SHA_SIZE];
    bool factory;
};
/* Calls @on_build for each build without finished_at, oldest first, until it returns
 * nonzero. */
int rt_store_build_list_unfinished(struct rt_store *st,
                                   int (*on_build)(const struct rt_store_build *, void *),
                                   void *userdata, struct rt_err *err);
/* Calls @on_build (id 0) for each Space whose newest pushed revision has no build at
 * all: a push queued in memory when runtimed died.  Oldest Space first. */
int rt_store_build_list_unbuilt(struct rt_store *st,
                                int (*on_build)(const struct rt_store_build *, void *),
                                void *userdata, struct rt_err *err);

int64_t rt_store_now_ms(void);

/* operations (runtimed/metrics.c, runtimed/backup.c) */
/* Calls @on_status once per build status ("queued", "running", "ok", ...) with the number
 * of builds in it.  A negative return from @on_status stops and is returned. */
int rt_store_build_stats(struct rt_store *st,
                         int (*on_status)(const char *status, int64_t n, void *userdata),
                         void *userdata, struct rt_err *err);
/* Writes a consistent copy of the whole database to the new file @dest_path (mode 0600;
 * refused when it exists) with SQLite's online backup API.  Takes the store lock itself,
 * a few pages at a time, so the API goes on meanwhile.  Call without the lock. */
int rt_store_backup(struct rt_store *st, const char *dest_path, struct rt_err *err);
/* The schema version this runtimed migrates to. */
int rt_store_schema_latest(void);
/* For tests of migrations: creates the database @path at schema @version (0 .. latest)
 * and stops there, as an older runtimed left it. */
int rt_store_create_at_version(const char *path, int version, struct rt_err *err);

#endif
