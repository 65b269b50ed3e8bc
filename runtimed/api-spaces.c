/* The Hub's Space endpoints: create, delete, list, info, runtime, hardware, sleep time,
 * pause, restart, secrets, variables, duplicate, and the hardware list. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "gpunode.h"
#include "api-repo.h"
#include "builder.h"
#include "lifecycle.h"
#include "log.h"
#include "names.h"
#include "sleep.h"
#include "tiers.h"
#include "util.h"
#include "banned.h"

#define RT_VALUE_MAX 65536 /* bytes of one secret or variable value */
#define RT_DESC_MAX 1024

static const char *const sdks[] = { "gradio", "streamlit", "static" };

struct new_space {
    char owner[RT_NAME_SIZE];
    char name[RT_NAME_SIZE];
    const char *sdk;
    bool private_;
    const char *hardware;
    bool sleep_set;
    long long sleep_time;
    json_t *secrets;                  /* [{key, value, description?}] or NULL */
    json_t *variables;                /* same */
    const struct rt_space *copy_from; /* duplicate: copy its variables */
};

static int space_url(struct rt_req *r, const char *owner, const char *name, char *buf, size_t len)
{
    char base[300];

    rt__base_url(r, base, sizeof(base));
    return snprintf(buf, len, "%s/spaces/%s/%s", base, owner, name);
}

/* Checks a [{key, value, description?}] list from a create or duplicate body. */
static int check_kv_list(struct rt_req *r, json_t *list, const char *field)
{
    size_t i;
    json_t *item;
    struct rt_err err = { 0 };

    if (!list)
        return 0;
    if (!json_is_array(list))
        return rt__reply_error(r, 400, "field '%s' must be a list of {key, value}", field), -1;
    json_array_foreach(list, i, item)
    {
        json_t *k = json_object_get(item, "key"), *v = json_object_get(item, "value");
        json_t *d = json_object_get(item, "description");
        if (!json_is_object(item) || !json_is_string(k) || !json_is_string(v) ||
            (d && !json_is_null(d) && !json_is_string(d)))
            return rt__reply_error(r, 400, "%s[%zu] must be {\"key\": str, \"value\": str}", field,
                                   i),
                   -1;
        if (rt_env_key_check(json_string_value(k), &err) < 0)
            return rt__reply_error(r, 400, "%s[%zu]: %s", field, i, err.msg), -1;
        if (json_string_length(v) > RT_VALUE_MAX ||
            strlen(json_string_value(v)) != json_string_length(v))
            return rt__reply_error(r, 400, "%s[%zu]: value too long or contains NUL", field, i), -1;
    }
    return 0;
}

static int store_kv_list(struct rt_req *r, enum rt_kv_kind kind, int64_t space_id, json_t *list,
                         struct rt_err *err)
{
    size_t i;
    json_t *item;

    json_array_foreach(list, i, item)
    {
        json_t *d = json_object_get(item, "description");
        int rc =
            rt_store_kv_set(r->st, kind, space_id, json_string_value(json_object_get(item, "key")),
                            json_string_value(json_object_get(item, "value")),
                            json_is_string(d) ? json_string_value(d) : NULL, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Checks a tier name against the store and this node; replies 422 when it fails. */
/* @holder: the Space changing tiers (its own GPUs count as free), or NULL. */
static int check_tier(struct rt_req *r, const char *name, const char *holder)
{
    struct rt_tier t;
    struct rt_err err = { 0 };
    int rc = rt_store_tier_get(r->st, name, &t, &err);

    if (rc == -ENOENT)
        return rt__reply_error(r, 422,
                               "unknown hardware '%s' (GET /api/spaces/hardware lists them)", name),
               -1;
    if (rc < 0)
        return rt__reply_err(r, rc, &err), -1;
    if (rt_gpunode_check_tier(r->api->gpus, &t, holder, &err) < 0)
        return rt__reply_error(r, 422, "%s", err.msg), -1;
    return 0;
}

static int create(struct rt_req *r, struct new_space *n)
{
    struct rt_space s = { 0 };
    struct rt_err err = { 0 };
    char url[600];
    bool sdk_ok = false;
    int rc;

    if (!rt_auth_can_create(&r->who, n->owner, n->name))
        return rt__reply_denied(r, "create this Space");
    for (size_t i = 0; i < sizeof(sdks) / sizeof(sdks[0]); i++)
        sdk_ok = sdk_ok || strcmp(n->sdk, sdks[i]) == 0;
    if (!sdk_ok)
        return rt__reply_error(r, 422, "sdk '%s' is not supported (gradio, streamlit, static)",
                               n->sdk);
    if (!n->hardware)
        n->hardware = RT_TIER_DEFAULT;
    if (check_tier(r, n->hardware, NULL) < 0)
        return r->status;
    if (check_kv_list(r, n->secrets, "secrets") < 0 ||
        check_kv_list(r, n->variables, "variables") < 0)
        return r->status;

    (void) snprintf(s.owner, sizeof(s.owner), "%s", n->owner);
    (void) snprintf(s.name, sizeof(s.name), "%s", n->name);
    rt_space_host(s.owner, s.name, s.host);
    (void) snprintf(s.sdk, sizeof(s.sdk), "%s", n->sdk);
    (void) snprintf(s.hardware, sizeof(s.hardware), "%s", n->hardware);
    /* Nothing has been pushed yet: the real stage of a new Space. */
    (void) snprintf(s.stage, sizeof(s.stage), "NO_APP_FILE");
    s.private_ = n->private_;
    s.sleep_set = n->sleep_set;
    s.sleep_time = n->sleep_time;

    space_url(r, s.owner, s.name, url, sizeof(url));
    rc = rt_store_begin(r->st, &err);
    if (rc < 0)
        return rt__reply_err(r, rc, &err);
    rc = rt_store_space_add(r->st, &s, &err);
    if (rc == -EEXIST) {
        rt_store_rollback(r->st);
        if (strstr(err.msg, "host name"))
            return rt__reply_error(r, 409, "%s", err.msg);
        return rt__reply_json(
            r, 409,
            json_pack("{s:s, s:s}", "error", "You already created this space repo", "url", url));
    }
    if (rc >= 0 && n->copy_from)
        rc = rt_store_kv_copy(r->st, RT_KV_VARIABLE, n->copy_from->id, s.id, &err);
    if (rc >= 0 && n->secrets)
        rc = store_kv_list(r, RT_KV_SECRET, s.id, n->secrets, &err);
    if (rc >= 0 && n->variables)
        rc = store_kv_list(r, RT_KV_VARIABLE, s.id, n->variables, &err);
    if (rc >= 0)
        rc = rt_store_event_add(r->st, s.id, "created", n->copy_from ? "duplicate" : "", &err);
    if (rc >= 0)
        rc = rt_store_commit(r->st, &err);
    if (rc < 0) {
        rt_store_rollback(r->st);
        return rt__reply_err(r, rc, &err);
    }
    {
        struct rt_log_ctx ctx = { .app = s.host, .action = "create" };
        rt_log(RT_LOG_INFO, &ctx, "created Space '%s/%s' (sdk %s, hardware %s%s)", s.owner, s.name,
               s.sdk, s.hardware, s.private_ ? ", private" : "");
    }
    if (n->copy_from) {
        rt__repo_duplicate(r, n->copy_from, &s); /* its files too, as on the Hub */
        return rt__reply_json(r, 200, json_pack("{s:s}", "url", url));
    }
    {
        char id[RT_ID_SIZE], oid[32];
        (void) snprintf(id, sizeof(id), "%s/%s", s.owner, s.name);
        (void) snprintf(oid, sizeof(oid), "%024llx", (long long) s.id);
        return rt__reply_json(r, 200,
                              json_pack("{s:s, s:s, s:s}", "url", url, "name", id, "id", oid));
    }
}

/* Reads "private" or the newer "visibility". */
static int read_private(struct rt_req *r, json_t *body, bool *priv)
{
    const char *vis = NULL;
    int rc = rt__field_bool(r, body, "private", priv);

    if (rc < 0)
        return -1;
    rc = rt__field_str(r, body, "visibility", false, &vis);
    if (rc < 0)
        return -1;
    if (rc > 0) {
        if (strcmp(vis, "private") == 0)
            *priv = true;
        else if (strcmp(vis, "public") == 0)
            *priv = false;
        else
            return rt__reply_error(r, 400, "visibility must be 'public' or 'private'"), -1;
    }
    return 0;
}

static int read_sleep(struct rt_req *r, json_t *body, const char *key, bool *set, long long *secs)
{
    int rc = rt__field_int(r, body, key, false, -1, 0x7fffffff, secs);

    if (rc < 0)
        return -1;
    if (rc > 0 && *secs == 0)
        return rt__reply_error(r, 400, "%s must be -1 (never) or a positive number of seconds",
                               key),
               -1;
    *set = rc > 0;
    return 0;
}

/* "type" must say space: Spaceport hosts nothing else. */
static int check_type(struct rt_req *r, json_t *body)
{
    const char *type = NULL;
    int rc = rt__field_str(r, body, "type", false, &type);

    if (rc < 0)
        return -1;
    if (rc == 0 || strcmp(type, "space") != 0)
        return rt__reply_error(r, 400, "only Spaces live here: type must be 'space'"), -1;
    return 0;
}

/* Resolves {"name", "organization"} (or "name": "owner/name") as the Hub's client sends. */
static int read_repo_id(struct rt_req *r, json_t *body, char owner[RT_NAME_SIZE],
                        char name[RT_NAME_SIZE])
{
    const char *n = NULL, *org = NULL;
    struct rt_err err = { 0 };
    char id[RT_ID_SIZE * 2];

    if (rt__field_str(r, body, "name", true, &n) < 0 ||
        rt__field_str(r, body, "organization", false, &org) < 0)
        return -1;
    if (strchr(n, '/') && !org) {
        if (rt_id_split(n, owner, name, &err) < 0)
            return rt__reply_error(r, 400, "invalid Space id: %s", err.msg), -1;
        return 0;
    }
    if (!org) {
        if (!rt_auth_is_user(&r->who))
            return rt__reply_denied(r, "create or delete a Space"), -1;
        org = r->who.token.user;
    }
    if (strlen(org) > RT_NAME_MAX || strlen(n) > RT_NAME_MAX)
        return rt__reply_error(r, 400, "invalid Space id: names are at most %d characters",
                               RT_NAME_MAX),
               -1;
    (void) snprintf(id, sizeof(id), "%s/%s", org, n);
    if (rt_id_split(id, owner, name, &err) < 0)
        return rt__reply_error(r, 400, "invalid Space id: %s", err.msg), -1;
    return 0;
}

static int repo_create(struct rt_req *r)
{
    json_t *body = rt__req_object(r, false);
    struct new_space n = { 0 };
    long long secs = 0;

    if (!body)
        return r->status;
    if (check_type(r, body) < 0 || read_repo_id(r, body, n.owner, n.name) < 0 ||
        rt__field_str(r, body, "sdk", true, &n.sdk) < 0 || read_private(r, body, &n.private_) < 0 ||
        rt__field_str(r, body, "hardware", false, &n.hardware) < 0 ||
        read_sleep(r, body, "sleepTimeSeconds", &n.sleep_set, &secs) < 0)
        goto out;
    n.sleep_time = secs;
    n.secrets = json_object_get(body, "secrets");
    n.variables = json_object_get(body, "variables");
    if (json_is_null(n.secrets))
        n.secrets = NULL;
    if (json_is_null(n.variables))
        n.variables = NULL;
    create(r, &n);
out:
    json_decref(body);
    return r->status;
}

/* The Hub's client tells "no such repo" from other 404s by this header. */
static int not_found(struct rt_req *r, const char *owner, const char *name)
{
    char msg[RT_ID_SIZE + 64];

    (void) snprintf(msg, sizeof(msg), "Space '%.96s/%.96s' not found", owner, name);
    rt__reply_json_h(r, 404, json_pack("{s:s}", "error", msg), "X-Error-Code", "RepoNotFound");
    return -1;
}

/* Loads a Space for the caller.  Replies 404 when it is missing or invisible to them, so
 * private Spaces cannot be discovered by probing. */
static int load_space(struct rt_req *r, const char *owner, const char *name, struct rt_space *s)
{
    struct rt_err err = { 0 };
    int rc;

    if (rt_name_check(owner, "owner", &err) < 0 || rt_name_check(name, "name", &err) < 0)
        return not_found(r, owner, name);
    rc = rt_store_space_get(r->st, owner, name, s, &err);
    if (rc == -ENOENT || (rc >= 0 && !rt_auth_can_read(&r->who, s)))
        return not_found(r, owner, name);
    if (rc < 0)
        return rt__reply_err(r, rc, &err), -1;
    return 0;
}

static int repo_delete(struct rt_req *r)
{
    json_t *body = rt__req_object(r, false);
    char owner[RT_NAME_SIZE], name[RT_NAME_SIZE];
    struct rt_space s;
    struct rt_err err = { 0 };
    int rc;

    if (!body)
        return r->status;
    if (check_type(r, body) < 0 || read_repo_id(r, body, owner, name) < 0 ||
        load_space(r, owner, name, &s) < 0)
        goto out;
    if (!rt_auth_can_write(&r->who, &s)) {
        rt__reply_denied(r, "delete this Space");
        goto out;
    }
    rc = rt_store_space_delete(r->st, s.id, &err);
    if (rc >= 0)
        rc = rt_store_event_add(r->st, s.id, "deleted", "", &err);
    if (rc >= 0 && r->api->lc) /* its running copies stop */
        (void) rt_lifecycle_delete(r->api->lc, s.id, &err);
    if (rc < 0) {
        rt__reply_err(r, rc, &err);
        goto out;
    }
    {
        struct rt_log_ctx ctx = { .app = s.host, .action = "delete" };
        rt_log(RT_LOG_INFO, &ctx, "deleted Space '%s/%s'", s.owner, s.name);
    }
    /* Its builds and its repository go with it (a new Space of that name starts empty). */
    rt_builder_forget(r->api->builder, s.id);
    rt__git_repo_remove(r->api, s.owner, s.name);
    rt__repo_lfs_forget(r->api, &s);
    rt__reply_json(r, 200, json_object());
out:
    json_decref(body);
    return r->status;
}

int rt__api_repos(struct rt_req *r)
{
    int rc;

    if (r->nseg != 2)
        return rt__reply_error(r, 404, "no such endpoint");
    rt_store_lock(r->st);
    if (strcmp(r->seg[1], "create") == 0)
        rc = strcmp(r->method, "POST") == 0 ? repo_create(r) : rt__reply_error(r, 405, "use POST");
    else if (strcmp(r->seg[1], "delete") == 0)
        rc = strcmp(r->method, "DELETE") == 0 ? repo_delete(r)
                                              : rt__reply_error(r, 405, "use DELETE");
    else
        rc = rt__reply_error(r, 404, "no such endpoint");
    rt_store_unlock(r->st);
    return rc;
}

/* --- list ------------------------------------------------------------------------------ */

struct list_ctx {
    struct rt_req *r;
    const char *author;
    const char *search;
    bool full;
    long long limit;
    json_t *out;
    int64_t last_id;
    bool more;
};

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);

    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return n == 0;
}

static int on_list_space(const struct rt_space *s, void *userdata)
{
    struct list_ctx *c = userdata;
    char id[RT_ID_SIZE];

    if (!rt_auth_can_read(&c->r->who, s))
        return 0;
    if (c->author && strcasecmp(c->author, s->owner) != 0)
        return 0;
    (void) snprintf(id, sizeof(id), "%s/%s", s->owner, s->name);
    if (c->search && !contains_nocase(id, c->search))
        return 0;
    if ((long long) json_array_size(c->out) == c->limit) {
        c->more = true;
        return 1;
    }
    (void) json_array_append_new(c->out, rt__json_space(c->r, s, c->full));
    c->last_id = s->id;
    return 0;
}

/* Appends "&key=value" with the value percent-encoded. */
static void add_param(char *buf, size_t len, const char *key, const char *value)
{
    size_t pos = strlen(buf);

    pos += (size_t) snprintf(buf + pos, pos < len ? len - pos : 0,
                             "%s%s=", strchr(buf, '?') ? "&" : "?", key);
    for (const unsigned char *p = (const unsigned char *) value; *p && pos + 4 < len; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.')
            buf[pos++] = (char) *p;
        else
            pos += (size_t) snprintf(buf + pos, len - pos, "%%%02X", *p);
    }
    if (pos < len)
        buf[pos] = '\0';
}

static int list_spaces(struct rt_req *r)
{
    char author[RT_NAME_SIZE + 1], search[256], lim[24], cursor[24];
    struct list_ctx c = { .r = r, .limit = 100 };
    struct rt_err err = { 0 };
    int64_t after = 0;
    int rc;

    if (rt__query(r, "author", author, sizeof(author)) == -2 ||
        rt__query(r, "search", search, sizeof(search)) == -2)
        return rt__reply_error(r, 400, "author or search too long");
    if (rt__query(r, "author", author, sizeof(author)) >= 0)
        c.author = author;
    if (rt__query(r, "search", search, sizeof(search)) >= 0)
        c.search = search;
    if (rt__query(r, "limit", lim, sizeof(lim)) != -1) {
        uint64_t v;
        if (rt_parse_u64(lim, &v) < 0 || v < 1 || v > 1000)
            return rt__reply_error(r, 400, "limit must be an integer between 1 and 1000");
        c.limit = (long long) v;
    }
    if (rt__query(r, "cursor", cursor, sizeof(cursor)) != -1) {
        uint64_t v;
        if (rt_parse_u64(cursor, &v) < 0 || v > INT64_MAX)
            return rt__reply_error(r, 400, "invalid cursor");
        after = (int64_t) v;
    }
    c.full = rt__query_true(r, "full");
    c.out = json_array();
    if (!c.out)
        return rt__reply_error(r, 503, "out of memory");
    rc = rt_store_space_list(r->st, after, on_list_space, &c, &err);
    if (rc < 0) {
        json_decref(c.out);
        return rt__reply_err(r, rc, &err);
    }
    if (c.more) {
        char link[1200], num[24];
        rt__base_url(r, link + 1, sizeof(link) - 1);
        link[0] = '<';
        (void) snprintf(link + strlen(link), sizeof(link) - strlen(link), "/api/spaces");
        if (c.author)
            add_param(link, sizeof(link), "author", c.author);
        if (c.search)
            add_param(link, sizeof(link), "search", c.search);
        if (c.full)
            add_param(link, sizeof(link), "full", "true");
        (void) snprintf(num, sizeof(num), "%lld", c.limit);
        add_param(link, sizeof(link), "limit", num);
        (void) snprintf(num, sizeof(num), "%lld", (long long) c.last_id);
        add_param(link, sizeof(link), "cursor", num);
        (void) snprintf(link + strlen(link), sizeof(link) - strlen(link), ">; rel=\"next\"");
        return rt__reply_json_h(r, 200, c.out, "Link", link);
    }
    return rt__reply_json(r, 200, c.out);
}

static int on_list_tier(const struct rt_tier *t, void *userdata)
{
    (void) json_array_append_new(userdata, rt__json_tier(t));
    return 0;
}

int rt__list_hardware(struct rt_req *r)
{
    struct rt_err err = { 0 };
    json_t *out = json_array();
    int rc;

    if (!out)
        return rt__reply_error(r, 503, "out of memory");
    rc = rt_store_tier_list(r->st, on_list_tier, out, &err);
    if (rc < 0) {
        json_decref(out);
        return rt__reply_err(r, rc, &err);
    }
    return rt__reply_json(r, 200, out);
}

/* --- one Space ------------------------------------------------------------------------- */

static int save(struct rt_req *r, struct rt_space *s, const char *event, const char *detail)
{
    struct rt_err err = { 0 };
    int rc = rt_store_space_update(r->st, s, &err);

    if (rc >= 0)
        rc = rt_store_event_add(r->st, s->id, event, detail, &err);
    if (rc < 0)
        return rt__reply_err(r, rc, &err);
    {
        struct rt_log_ctx ctx = { .app = s->host, .action = event };
        rt_log(RT_LOG_INFO, &ctx, "%s%s%s", event, detail[0] ? " " : "", detail);
    }
    return rt__reply_json(r, 200, rt__json_runtime(r, s));
}

static int set_hardware(struct rt_req *r, struct rt_space *s)
{
    json_t *body = rt__req_object(r, false);
    char holder[RT_ID_SIZE];
    const char *flavor = NULL;
    bool sleep_set = false;
    long long secs = 0;

    if (!body)
        return r->status;
    if (rt__field_str(r, body, "flavor", true, &flavor) < 0 ||
        read_sleep(r, body, "sleepTimeSeconds", &sleep_set, &secs) < 0)
        goto out;
    (void) snprintf(holder, sizeof(holder), "%s/%s", s->owner, s->name);
    if (check_tier(r, flavor, holder) < 0)
        goto out;
    {
        /* Refused here, not after the Space stopped: this node cannot give that tier. */
        struct rt_tier t;
        struct rt_err err = { 0 };
        int rc = rt_store_tier_get(r->st, flavor, &t, &err);
        if (rc >= 0)
            rc = rt_gpunode_check_tier(r->api->gpus, &t, holder, &err);
        if (rc < 0) {
            rt__reply_err(r, rc, &err);
            goto out;
        }
    }
    (void) snprintf(s->hardware, sizeof(s->hardware), "%s", flavor);
    if (sleep_set) {
        s->sleep_set = true;
        s->sleep_time = secs;
    }
    if (save(r, s, "hardware", s->hardware) == 200 && r->api->lc) {
        struct rt_err err = { 0 };
        (void) rt_lifecycle_settings_changed(r->api->lc, s->id, &err);
    }
out:
    json_decref(body);
    return r->status;
}

/* Spaceport's "lightSeconds" beside the Hub's "seconds": the idle time before the Space is
 * frozen; -1 never, null back to the tier's default.  Returns 1 when given, 0 when absent,
 * -1 after a 400. */
static int read_light(struct rt_req *r, json_t *body, bool *ret_set, long long *ret_secs)
{
    json_t *v = json_object_get(body, "lightSeconds");

    if (!v)
        return 0;
    if (json_is_null(v)) {
        *ret_set = false;
        return 1;
    }
    if (!json_is_integer(v))
        return rt__reply_error(r, 400,
                               "field 'lightSeconds' must be an integer number of seconds, -1 "
                               "(never) or null (the tier's default)"),
               -1;
    if (!rt_sleep_light_valid(json_integer_value(v)))
        return rt__reply_error(r, 400, "lightSeconds must be -1 (never) or 1 to %lld seconds",
                               RT_LIGHT_SLEEP_MAX),
               -1;
    *ret_set = true;
    *ret_secs = json_integer_value(v);
    return 1;
}

static int set_sleep(struct rt_req *r, struct rt_space *s)
{
    json_t *body = rt__req_object(r, false);
    bool set = false, light_set = false;
    long long secs = 0, light = 0;
    char detail[64] = "";
    int has_light;

    if (!body)
        return r->status;
    if (read_sleep(r, body, "seconds", &set, &secs) < 0)
        goto out;
    has_light = read_light(r, body, &light_set, &light);
    if (has_light < 0)
        goto out;
    /* The Hub requires "seconds"; a body with only "lightSeconds" changes light sleep. */
    if (!set && !has_light) {
        rt__reply_error(r, 400, "missing field 'seconds'");
        goto out;
    }
    if (set) {
        s->sleep_set = true;
        s->sleep_time = secs;
        (void) snprintf(detail, sizeof(detail), "%lld", secs);
    }
    if (has_light) {
        s->light_set = light_set;
        s->light_sleep = light;
        if (light_set)
            (void) snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail),
                            "%slight %lld", set ? " " : "", light);
        else
            (void) snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail),
                            "%slight default", set ? " " : "");
    }
    save(r, s, "sleeptime", detail);
out:
    json_decref(body);
    return r->status;
}

static int pause_space(struct rt_req *r, struct rt_space *s)
{
    if (strcmp(s->sdk, "static") == 0)
        return rt__reply_error(r, 400, "static Spaces cannot be paused");
    s->paused = true;
    if (save(r, s, "pause", "") == 200 && r->api->lc) {
        struct rt_err err = { 0 };
        (void) rt_lifecycle_pause(r->api->lc, s->id, &err);
    }
    return r->status;
}

static int restart_space(struct rt_req *r, struct rt_space *s)
{
    bool factory = rt__query_true(r, "factory");

    /* A restart also resumes a paused Space; the supervisor sets the stages. */
    s->paused = false;
    if (save(r, s, "restart", factory ? "factory" : "") == 200 && r->api->lc) {
        struct rt_err err = { 0 };
        (void) rt_lifecycle_restart(r->api->lc, s->id, factory, &err);
    }
    return r->status;
}

/* PUT …/settings: the Hub's visibility switch; gating and discussions do not apply. */
static int settings(struct rt_req *r, struct rt_space *s)
{
    json_t *body = rt__req_object(r, false);
    bool priv = s->private_;
    struct rt_err err = { 0 };
    int rc;

    if (!body)
        return r->status;
    if (read_private(r, body, &priv) < 0)
        goto out;
    if (priv != s->private_) {
        s->private_ = priv;
        rc = rt_store_space_update(r->st, s, &err);
        if (rc >= 0)
            rc = rt_store_event_add(r->st, s->id, "settings", priv ? "private" : "public", &err);
        if (rc < 0) {
            rt__reply_err(r, rc, &err);
            goto out;
        }
    }
    rt__reply_json(r, 200, json_pack("{s:b}", "private", s->private_));
out:
    json_decref(body);
    return r->status;
}

/* --- secrets and variables ------------------------------------------------------------- */

struct kv_ctx {
    json_t *out;
    bool values;
};

static int on_kv(const struct rt_kv *kv, void *userdata)
{
    struct kv_ctx *c = userdata;
    json_t *o = json_pack("{s:s, s:o}", "key", kv->key, "updatedAt", rt__json_time(kv->updated_at));

    if (!o)
        return 0;
    if (kv->description)
        (void) json_object_set_new(o, "description", json_string(kv->description));
    if (c->values && kv->value)
        (void) json_object_set_new(o, "value", json_string(kv->value));
    (void) json_object_set_new(c->out, kv->key, o);
    return 0;
}

static int reply_kv_map(struct rt_req *r, enum rt_kv_kind kind, const struct rt_space *s)
{
    struct kv_ctx c = { .out = json_object(), .values = kind == RT_KV_VARIABLE };
    struct rt_err err = { 0 };
    int rc;

    if (!c.out)
        return rt__reply_error(r, 503, "out of memory");
    /* Secret values never leave the store through the API. */
    rc = rt_store_kv_list(r->st, kind, s->id, kind == RT_KV_VARIABLE, on_kv, &c, &err);
    if (rc < 0) {
        json_decref(c.out);
        return rt__reply_err(r, rc, &err);
    }
    return rt__reply_json(r, 200, c.out);
}

static int kv(struct rt_req *r, struct rt_space *s, enum rt_kv_kind kind)
{
    const char *what = kind == RT_KV_SECRET ? "secret" : "variable";
    struct rt_err err = { 0 };
    const char *key = NULL, *value = NULL, *desc = NULL;
    json_t *body;
    int rc;

    if (strcmp(r->method, "GET") == 0) {
        if (kind == RT_KV_SECRET && !rt_auth_can_write(&r->who, s))
            return rt__reply_denied(r, "list secrets");
        return reply_kv_map(r, kind, s);
    }
    if (strcmp(r->method, "POST") != 0 && strcmp(r->method, "DELETE") != 0)
        return rt__reply_error(r, 405, "use GET, POST or DELETE");
    if (!rt_auth_can_write(&r->who, s))
        return rt__reply_denied(r, kind == RT_KV_SECRET ? "change secrets" : "change variables");
    body = rt__req_object(r, false);
    if (!body)
        return r->status;
    if (rt__field_str(r, body, "key", true, &key) < 0)
        goto out;
    if (rt_env_key_check(key, &err) < 0) {
        rt__reply_error(r, 400, "%s", err.msg);
        goto out;
    }
    if (strcmp(r->method, "DELETE") == 0) {
        rc = rt_store_kv_delete(r->st, kind, s->id, key, &err);
        if (rc >= 0)
            rc = rt_store_event_add(r->st, s->id,
                                    kind == RT_KV_SECRET ? "secret-delete" : "variable-delete", key,
                                    &err);
    } else {
        if (rt__field_str(r, body, "value", true, &value) < 0 ||
            rt__field_str(r, body, "description", false, &desc) < 0)
            goto out;
        if (strlen(value) > RT_VALUE_MAX) {
            rt__reply_error(r, 413, "%s value longer than %d bytes", what, RT_VALUE_MAX);
            goto out;
        }
        if (desc && strlen(desc) > RT_DESC_MAX) {
            rt__reply_error(r, 400, "description longer than %d bytes", RT_DESC_MAX);
            goto out;
        }
        rc = rt_store_kv_set(r->st, kind, s->id, key, value, desc, &err);
        if (rc >= 0)
            rc = rt_store_event_add(
                r->st, s->id, kind == RT_KV_SECRET ? "secret-set" : "variable-set", key, &err);
    }
    if (rc < 0) {
        rt__reply_err(r, rc, &err);
        goto out;
    }
    /* As on the Hub: a running Space restarts to see its new environment. */
    if (r->api->lc)
        (void) rt_lifecycle_settings_changed(r->api->lc, s->id, &err);
    if (kind == RT_KV_SECRET)
        rt__reply_json(r, 200, json_object());
    else
        reply_kv_map(r, kind, s);
out:
    json_decref(body);
    return r->status;
}

/* --- duplicate ------------------------------------------------------------------------- */

static int duplicate(struct rt_req *r, const struct rt_space *from)
{
    json_t *body = rt__req_object(r, true);
    struct new_space n = { .copy_from = from, .sdk = from->sdk, .private_ = from->private_ };
    const char *to = NULL;
    struct rt_err err = { 0 };
    long long secs = 0;

    if (!body)
        return r->status;
    if (rt__field_str(r, body, "repository", false, &to) < 0 ||
        read_private(r, body, &n.private_) < 0 ||
        rt__field_str(r, body, "hardware", false, &n.hardware) < 0 ||
        read_sleep(r, body, "sleepTimeSeconds", &n.sleep_set, &secs) < 0)
        goto out;
    n.sleep_time = secs;
    if (to) {
        if (rt_id_split(to, n.owner, n.name, &err) < 0) {
            rt__reply_error(r, 400, "invalid repository: %s", err.msg);
            goto out;
        }
    } else {
        if (!rt_auth_is_user(&r->who)) {
            rt__reply_denied(r, "duplicate a Space");
            goto out;
        }
        (void) snprintf(n.owner, sizeof(n.owner), "%s", r->who.token.user);
        (void) snprintf(n.name, sizeof(n.name), "%s", from->name);
    }
    n.secrets = json_object_get(body, "secrets");
    n.variables = json_object_get(body, "variables");
    if (json_is_null(n.secrets))
        n.secrets = NULL;
    if (json_is_null(n.variables))
        n.variables = NULL;
    create(r, &n);
out:
    json_decref(body);
    return r->status;
}

/* --- routing --------------------------------------------------------------------------- */

static bool method_is(struct rt_req *r, const char *m)
{
    return strcmp(r->method, m) == 0;
}

static int one_space(struct rt_req *r)
{
    const char *sub = r->nseg > 3 ? r->seg[3] : NULL;
    struct rt_space s;
    bool logs = sub && strcmp(sub, "logs") == 0;

    if (load_space(r, r->seg[1], r->seg[2], &s) < 0)
        return r->status;
    if (!sub || (r->nseg == 5 && strcmp(sub, "revision") == 0)) {
        json_t *j;
        int rc;
        if (!method_is(r, "GET"))
            return rt__reply_error(r, 405, "use GET");
        j = rt__json_space(r, &s, true);
        rt_store_unlock(r->st); /* siblings run git: not under the store lock */
        rc = j ? rt__repo_add_siblings(r, &s, j) : 0;
        rt_store_lock(r->st);
        if (rc < 0) {
            json_decref(j);
            return rt__reply_coded(r, 404, "RevisionNotFound", "Invalid rev id: %.200s", r->seg[4]);
        }
        return rt__reply_json(r, 200, j);
    }
    if (logs && r->nseg == 5 &&
        (strcmp(r->seg[4], "build") == 0 || strcmp(r->seg[4], "run") == 0)) {
        if (!method_is(r, "GET"))
            return rt__reply_error(r, 405, "use GET");
        return rt__api_logs(r, &s, strcmp(r->seg[4], "build") == 0);
    }
    if (r->nseg != 4)
        return rt__reply_error(r, 404, "no such endpoint");
    if (strcmp(sub, "secrets") == 0)
        return kv(r, &s, RT_KV_SECRET);
    if (strcmp(sub, "variables") == 0)
        return kv(r, &s, RT_KV_VARIABLE);
    if (strcmp(sub, "runtime") == 0)
        return method_is(r, "GET") ? rt__reply_json(r, 200, rt__json_runtime(r, &s))
                                   : rt__reply_error(r, 405, "use GET");
    if (strcmp(sub, "settings") == 0) {
        if (!method_is(r, "PUT"))
            return rt__reply_error(r, 405, "use PUT");
        if (!rt_auth_can_write(&r->who, &s))
            return rt__reply_denied(r, "change this Space");
        return settings(r, &s);
    }
    if (strcmp(sub, "duplicate") == 0)
        return method_is(r, "POST") ? duplicate(r, &s) : rt__reply_error(r, 405, "use POST");
    if (strcmp(sub, "hardware") != 0 && strcmp(sub, "sleeptime") != 0 &&
        strcmp(sub, "pause") != 0 && strcmp(sub, "restart") != 0)
        return rt__reply_error(r, 404, "no such endpoint");
    if (!method_is(r, "POST"))
        return rt__reply_error(r, 405, "use POST");
    if (!rt_auth_can_write(&r->who, &s))
        return rt__reply_denied(r, "change this Space");
    if (strcmp(sub, "hardware") == 0)
        return set_hardware(r, &s);
    if (strcmp(sub, "sleeptime") == 0)
        return set_sleep(r, &s);
    if (strcmp(sub, "pause") == 0)
        return pause_space(r, &s);
    return restart_space(r, &s);
}

int rt__api_spaces(struct rt_req *r)
{
    int rc;

    rt_store_lock(r->st);
    if (r->nseg == 1)
        rc = method_is(r, "GET") ? list_spaces(r) : rt__reply_error(r, 405, "use GET");
    else if (r->nseg == 2 && strcmp(r->seg[1], "hardware") == 0)
        rc = method_is(r, "GET") ? rt__list_hardware(r) : rt__reply_error(r, 405, "use GET");
    else if (r->nseg >= 3)
        rc = one_space(r);
    else
        rc = rt__reply_error(r, 404, "no such endpoint");
    rt_store_unlock(r->st);
    return rc;
}
