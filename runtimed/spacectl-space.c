/* spacectl commands about one Space or all of them: create, list, status, rm, logs,
 * hardware set, sleep, pause, resume, restart, secrets and variables. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "spacectl.h"
#include "spacectl-fmt.h"
#include "cleanup.h"
#include "util.h"
#include "banned.h"

#define SC_SECRET_MAX (64u << 10)
/* Without --follow, the log has ended when nothing new came for this long. */
#define SC_LOGS_IDLE_MS 2000

/* Checks @id and writes "/api/spaces/OWNER/NAME@suffix" into @buf.  Returns 0 or
 * the usage error's exit status. */
static int space_path(struct sc_ctx *ctx, const struct sc_inv *inv, const char *id,
                      const char *suffix, char *buf, size_t len)
{
    if (!sc_valid_space_id(id))
        return sc_usage_error(ctx, inv,
                              "'%s' is not a Space id: expected OWNER/NAME (letters, digits, "
                              "'-', '_', '.')",
                              id);
    (void) snprintf(buf, len, "/api/spaces/%s%s", id, suffix);
    return 0;
}

static const char *str_or(const json_t *obj, const char *key, const char *def)
{
    const json_t *v = json_object_get(obj, key);

    return json_is_string(v) ? json_string_value(v) : def;
}

/* "alice/demo: paused (stage PAUSED)" for the commands that answer a SpaceRuntime. */
static void print_runtime_line(struct sc_ctx *ctx, const char *id, const char *what,
                               const json_t *runtime)
{
    const char *stage = str_or(runtime, "stage", NULL);

    if (ctx->json) {
        sc_print_json(ctx->out, runtime);
        return;
    }
    if (stage)
        fprintf(ctx->out, "%s: %s (stage %s)\n", id, what, stage);
    else
        fprintf(ctx->out, "%s: %s\n", id, what);
}

/* Splits "OWNER/NAME" (already checked) into its parts. */
static void split_id(const char *id, char *owner, size_t olen, const char **name)
{
    const char *slash = strchr(id, '/');

    (void) snprintf(owner, olen, "%.*s", (int) (slash - id), id);
    *name = slash + 1;
}

int sc_cmd_space_create(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    const char *id = inv->pos[0], *sdk = sc_opt_value(inv, "sdk");
    const char *hw = sc_opt_value(inv, "hardware"), *name;
    _cleanup_json_ json_t *body = NULL, *resp = NULL;
    char owner[128], push[1200];
    int r;

    if (!sc_valid_space_id(id))
        return sc_usage_error(ctx, inv, "'%s' is not a Space id: expected OWNER/NAME", id);
    if (!sdk || !*sdk)
        return sc_usage_error(ctx, inv, "--sdk is required (gradio, streamlit or static)");
    if (hw && !sc_valid_name(hw))
        return sc_usage_error(ctx, inv, "'%s' is not a hardware tier name", hw);
    split_id(id, owner, sizeof(owner), &name);
    body = json_pack("{s:s, s:s, s:s, s:s, s:b}", "type", "space", "organization", owner, "name",
                     name, "sdk", sdk, "private", sc_opt_value(inv, "private") != NULL);
    if (!body || (hw && json_object_set_new(body, "hardware", json_string(hw)) < 0))
        return sc_out_of_memory(ctx);
    r = sc_api(ctx, "POST", "/api/repos/create", body, &resp);
    if (r)
        return r;
    if (ctx->json) {
        sc_print_json(ctx->out, resp);
        return SC_EXIT_OK;
    }
    fprintf(ctx->out, "created Space %s", id);
    if (str_or(resp, "url", NULL))
        fprintf(ctx->out, ": %s", str_or(resp, "url", NULL));
    fputc('\n', ctx->out);
    /* the push URL carries the user and token in its authority, as the Hub's does */
    {
        const char *sep = strstr(ctx->url, "://");

        (void) snprintf(push, sizeof(push), "%.*s://%s:TOKEN@%s/spaces/%s", (int) (sep - ctx->url),
                        ctx->url, owner, sep + 3, id);
        fprintf(ctx->out, "push its code with: git push %s main\n", push);
    }
    return SC_EXIT_OK;
}

/* The hardware a runtime shows: current, else requested. */
static const char *runtime_hardware(const json_t *runtime)
{
    const json_t *hw = json_object_get(runtime, "hardware");

    if (json_is_string(hw))
        return json_string_value(hw);
    return str_or(hw, "current", str_or(hw, "requested", NULL));
}

int sc_cmd_space_list(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    static const char *const headers[] = { "ID", "SDK", "STAGE", "HARDWARE", "PRIVATE" };
    _cleanup_json_ json_t *resp = NULL;
    struct sc_table t;
    size_t i;
    json_t *sp;
    int r;

    /* full=true: each Space with its runtime, so the stage needs no call per Space */
    r = sc_api_list(ctx, "/api/spaces?full=true", &resp);
    if (r)
        return r;
    if (ctx->json) {
        sc_print_json(ctx->out, resp);
        return SC_EXIT_OK;
    }
    if (json_array_size(resp) == 0) {
        fprintf(ctx->errf, "spacectl: no Spaces (or none this token can see)\n");
        return SC_EXIT_OK;
    }
    r = sc_table_init(&t, ARRAY_SIZE(headers), headers);
    json_array_foreach(resp, i, sp)
    {
        const json_t *rt = json_object_get(sp, "runtime");
        _cleanup_free_ char *priv = sc_fmt_value(json_object_get(sp, "private"));
        const char *row[] = { str_or(sp, "id", NULL), str_or(sp, "sdk", NULL),
                              str_or(rt, "stage", NULL), runtime_hardware(rt), priv };

        if (r == 0)
            r = sc_table_add(&t, row);
    }
    if (r == 0)
        sc_table_print(&t, ctx->out);
    sc_table_done(&t);
    return r < 0 ? sc_out_of_memory(ctx) : SC_EXIT_OK;
}

static void print_field(struct sc_ctx *ctx, const char *label, const char *value)
{
    if (value)
        fprintf(ctx->out, "%-10s %s\n", label, value);
}

int sc_cmd_space_status(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    _cleanup_json_ json_t *info = NULL, *runtime = NULL;
    char path[512], sleeps[64] = "", freezes[64] = "", hw[256] = "";
    const json_t *gc, *hwobj, *light;
    const char *cur, *req, *host = NULL;
    int r;

    r = space_path(ctx, inv, inv->pos[0], "", path, sizeof(path));
    if (r)
        return r;
    r = sc_api(ctx, "GET", path, NULL, &info);
    if (r)
        return r;
    if (!json_is_object(info)) {
        fprintf(ctx->errf, "spacectl: GET %s: expected a JSON object\n", path);
        return SC_EXIT_API;
    }
    (void) snprintf(path + strlen(path), sizeof(path) - strlen(path), "/runtime");
    r = sc_api(ctx, "GET", path, NULL, &runtime);
    if (r)
        return r;
    /* --json: the Space as the API shows it, with the runtime just read */
    if (ctx->json) {
        if (json_object_set(info, "runtime", runtime) < 0)
            return sc_out_of_memory(ctx);
        sc_print_json(ctx->out, info);
        return SC_EXIT_OK;
    }
    hwobj = json_object_get(runtime, "hardware");
    cur = str_or(hwobj, "current", NULL);
    req = str_or(hwobj, "requested", NULL);
    if (cur && req && strcmp(cur, req) != 0)
        (void) snprintf(hw, sizeof(hw), "%s (requested %s)", cur, req);
    else if (cur || req)
        (void) snprintf(hw, sizeof(hw), "%s%s", cur ? cur : req, cur ? "" : " (requested)");
    gc = json_object_get(runtime, "gcTimeout");
    if (json_is_integer(gc) && json_integer_value(gc) >= 0)
        (void) snprintf(sleeps, sizeof(sleeps), "after %" JSON_INTEGER_FORMAT " s idle",
                        json_integer_value(gc));
    else if (json_is_null(gc) || (json_is_integer(gc) && json_integer_value(gc) < 0))
        (void) snprintf(sleeps, sizeof(sleeps), "never");
    light = json_object_get(runtime, "lightSleepTime");
    if (json_is_number(light))
        (void) snprintf(freezes, sizeof(freezes), "after %g s idle", json_number_value(light));
    else if (json_is_null(light))
        (void) snprintf(freezes, sizeof(freezes), "never");
    host = str_or(info, "host", NULL);
    if (!host) {
        const json_t *domains = json_object_get(runtime, "domains");

        host = str_or(json_array_get(domains, 0), "domain", NULL);
    }
    print_field(ctx, "id:", str_or(info, "id", inv->pos[0]));
    print_field(ctx, "sdk:", str_or(info, "sdk", NULL));
    print_field(ctx, "private:", json_is_true(json_object_get(info, "private")) ? "yes" : "no");
    print_field(ctx, "stage:", str_or(runtime, "stage", NULL));
    print_field(ctx, "hardware:", hw[0] ? hw : NULL);
    print_field(ctx, "sleeps:", sleeps[0] ? sleeps : NULL);
    print_field(ctx, "freezes:", freezes[0] ? freezes : NULL);
    print_field(ctx, "host:", host);
    print_field(ctx, "sha:", str_or(runtime, "sha", str_or(info, "sha", NULL)));
    print_field(ctx, "error:", str_or(runtime, "errorMessage", NULL));
    return SC_EXIT_OK;
}

int sc_cmd_space_rm(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    _cleanup_json_ json_t *body = NULL, *resp = NULL;
    const char *id = inv->pos[0], *name;
    char owner[128];
    int r;

    if (!sc_valid_space_id(id))
        return sc_usage_error(ctx, inv, "'%s' is not a Space id: expected OWNER/NAME", id);
    split_id(id, owner, sizeof(owner), &name);
    body = json_pack("{s:s, s:s, s:s}", "type", "space", "organization", owner, "name", name);
    if (!body)
        return sc_out_of_memory(ctx);
    r = sc_api(ctx, "DELETE", "/api/repos/delete", body, &resp);
    if (r)
        return r;
    if (ctx->json)
        sc_print_json(ctx->out, resp);
    else
        fprintf(ctx->out, "deleted Space %s\n", id);
    return SC_EXIT_OK;
}

/* --- logs ------------------------------------------------------------------------ */

struct log_out {
    struct sc_ctx *ctx;
    bool follow;
};

/* Prints one event: the "data" member of its JSON, else the data as it came. */
static void on_log_event(const char *data, size_t len, void *userdata)
{
    struct log_out *lo = userdata;
    FILE *out = lo->ctx->out;
    _cleanup_json_ json_t *j = NULL;
    const char *line = data;
    size_t n = len;

    if (!lo->ctx->json) {
        j = json_loadb(data, len, 0, NULL);
        if (json_is_string(json_object_get(j, "data"))) {
            line = json_string_value(json_object_get(j, "data"));
            n = json_string_length(json_object_get(j, "data"));
        }
    }
    (void) fwrite(line, 1, n, out);
    if (n == 0 || line[n - 1] != '\n')
        fputc('\n', out);
    if (lo->follow)
        (void) fflush(out); /* so "spacectl logs --follow | grep" sees lines as they come */
}

int sc_cmd_logs(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    struct log_out lo = { .ctx = ctx, .follow = sc_opt_value(inv, "follow") != NULL };
    const char *which = sc_opt_value(inv, "build") ? "/logs/build" : "/logs/run";
    const char *tail = sc_opt_value(inv, "tail");
    char path[512], suffix[64];
    uint64_t n = 0;
    int r;

    if (tail && (rt_parse_u64(tail, &n) < 0 || n > 100000))
        return sc_usage_error(ctx, inv, "--tail '%s' is not a line count (0 to 100000)", tail);
    /* follow=0 is the server's "stored lines only"; the idle gap below covers a server
     * that keeps the stream open anyway, as the Hub does */
    (void) snprintf(suffix, sizeof(suffix), "%s%s%s", which, lo.follow ? "" : "?follow=0",
                    tail ? (lo.follow ? "?tail=" : "&tail=") : "");
    if (tail)
        (void) snprintf(suffix + strlen(suffix), sizeof(suffix) - strlen(suffix), "%llu",
                        (unsigned long long) n);
    r = space_path(ctx, inv, inv->pos[0], suffix, path, sizeof(path));
    if (r)
        return r;
    return sc_api_stream(ctx, path, lo.follow, SC_LOGS_IDLE_MS, on_log_event, &lo);
}

/* --- runtime changes ------------------------------------------------------------- */

int sc_cmd_hardware_set(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    _cleanup_json_ json_t *body = NULL, *resp = NULL;
    const char *tier = inv->pos[1];
    char path[512], what[200];
    int r;

    r = space_path(ctx, inv, inv->pos[0], "/hardware", path, sizeof(path));
    if (r)
        return r;
    if (!sc_valid_name(tier))
        return sc_usage_error(ctx, inv, "'%s' is not a hardware tier name", tier);
    body = json_pack("{s:s}", "flavor", tier);
    if (!body)
        return sc_out_of_memory(ctx);
    r = sc_api(ctx, "POST", path, body, &resp);
    if (r)
        return r;
    (void) snprintf(what, sizeof(what), "hardware %s requested", tier);
    print_runtime_line(ctx, inv->pos[0], what, resp);
    return SC_EXIT_OK;
}

int sc_parse_sleep(const char *s, bool allow_default, long long *ret)
{
    uint64_t v;

    if (allow_default && strcmp(s, "default") == 0) {
        *ret = SC_SLEEP_DEFAULT;
        return 0;
    }
    if (strcmp(s, "never") == 0 || strcmp(s, "-1") == 0) {
        *ret = -1;
        return 0;
    }
    if (rt_parse_u64(s, &v) < 0 || v > (uint64_t) 100 * 365 * 86400)
        return -EINVAL;
    *ret = (long long) v;
    return 0;
}

int sc_cmd_sleep(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    _cleanup_json_ json_t *body = NULL, *resp = NULL;
    const char *light_s = sc_opt_value(inv, "light");
    char path[512], what[128];
    long long secs, light = 0;
    int r;

    r = space_path(ctx, inv, inv->pos[0], "/sleeptime", path, sizeof(path));
    if (r)
        return r;
    if (sc_parse_sleep(inv->pos[1], false, &secs) < 0)
        return sc_usage_error(ctx, inv, "'%s' is not a number of seconds (or -1/never)",
                              inv->pos[1]);
    if (light_s && sc_parse_sleep(light_s, true, &light) < 0)
        return sc_usage_error(
            ctx, inv, "--light '%s' is not a number of seconds (or -1/never, default)", light_s);
    body = json_pack("{s:I}", "seconds", (json_int_t) secs);
    if (!body || (light_s && json_object_set_new(body, "lightSeconds",
                                                 light == SC_SLEEP_DEFAULT
                                                     ? json_null()
                                                     : json_integer((json_int_t) light)) < 0))
        return sc_out_of_memory(ctx);
    r = sc_api(ctx, "POST", path, body, &resp);
    if (r)
        return r;
    if (secs < 0)
        (void) snprintf(what, sizeof(what), "never sleeps");
    else
        (void) snprintf(what, sizeof(what), "sleeps after %lld s idle", secs);
    if (light_s && light == SC_SLEEP_DEFAULT)
        (void) snprintf(what + strlen(what), sizeof(what) - strlen(what),
                        ", freezes as its tier says");
    else if (light_s && light < 0)
        (void) snprintf(what + strlen(what), sizeof(what) - strlen(what), ", never freezes");
    else if (light_s)
        (void) snprintf(what + strlen(what), sizeof(what) - strlen(what),
                        ", freezes after %lld s idle", light);
    print_runtime_line(ctx, inv->pos[0], what, resp);
    return SC_EXIT_OK;
}

/* POSTs to a runtime action with no body and reports the new stage. */
static int runtime_action(struct sc_ctx *ctx, const struct sc_inv *inv, const char *suffix,
                          const char *what)
{
    _cleanup_json_ json_t *resp = NULL;
    char path[512];
    int r;

    r = space_path(ctx, inv, inv->pos[0], suffix, path, sizeof(path));
    if (r)
        return r;
    r = sc_api(ctx, "POST", path, NULL, &resp);
    if (r)
        return r;
    print_runtime_line(ctx, inv->pos[0], what, resp);
    return SC_EXIT_OK;
}

int sc_cmd_pause(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    return runtime_action(ctx, inv, "/pause", "paused");
}

int sc_cmd_resume(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    return runtime_action(ctx, inv, "/restart", "resuming");
}

int sc_cmd_restart(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    if (sc_opt_value(inv, "factory"))
        return runtime_action(ctx, inv, "/restart?factory=true", "factory rebuild started");
    return runtime_action(ctx, inv, "/restart", "restarting");
}

/* --- secrets and variables -------------------------------------------------------- */

/* Reads the secret from stdin, without echo on a terminal.  Drops one trailing
 * newline.  Returns a malloc'd string or NULL with @err set. */
static char *read_secret(const char *key, struct rt_err *err)
{
    _cleanup_free_ char *buf = malloc(SC_SECRET_MAX + 1);
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    ssize_t n;

    if (!buf) {
        rt_err_set(err, ENOMEM, "read the value");
        return NULL;
    }
    if (tty) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t) ECHO;
        /* echo off before the prompt: what is typed after the prompt must not be flushed */
        (void) tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        fprintf(stderr, "value for %s (input hidden, end with Enter): ", key);
        /* one line on a terminal: read() returns at the newline */
        n = read(STDIN_FILENO, buf, SC_SECRET_MAX);
        (void) tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    } else {
        n = rt_read_all(STDIN_FILENO, buf, SC_SECRET_MAX + 1);
    }
    if (n < 0) {
        rt_err_set(err, errno, "read the value from stdin");
        return NULL;
    }
    if ((size_t) n > SC_SECRET_MAX) {
        rt_err_set(err, E2BIG, "the value on stdin is larger than %u bytes", SC_SECRET_MAX);
        return NULL;
    }
    buf[n] = '\0';
    if (strlen(buf) != (size_t) n) {
        rt_err_set(err, EINVAL, "the value on stdin contains a NUL byte");
        return NULL;
    }
    if (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    if (n > 0 && buf[n - 1] == '\r')
        buf[--n] = '\0';
    return TAKE_PTR(buf);
}

/* POSTs {"key", "value"} to the Space's @kind ("secrets" or "variables"). */
static int set_key(struct sc_ctx *ctx, const struct sc_inv *inv, const char *kind, const char *key,
                   const char *value)
{
    _cleanup_json_ json_t *body = NULL, *resp = NULL;
    char path[512], suffix[32];
    int r;

    (void) snprintf(suffix, sizeof(suffix), "/%s", kind);
    r = space_path(ctx, inv, inv->pos[0], suffix, path, sizeof(path));
    if (r)
        return r;
    body = json_pack("{s:s, s:s}", "key", key, "value", value);
    if (!body)
        return sc_usage_error(ctx, inv, "the value is not valid UTF-8");
    r = sc_api(ctx, "POST", path, body, &resp);
    if (r)
        return r;
    if (ctx->json)
        sc_print_json(ctx->out, resp);
    else
        fprintf(ctx->out, "%s: %s %s set\n", inv->pos[0],
                strcmp(kind, "secrets") == 0 ? "secret" : "variable", key);
    return SC_EXIT_OK;
}

int sc_cmd_secret_set(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    _cleanup_free_ char *value = NULL;
    struct rt_err err = { 0 };
    char msg[600];

    if (!sc_valid_space_id(inv->pos[0]))
        return sc_usage_error(ctx, inv, "'%s' is not a Space id: expected OWNER/NAME", inv->pos[0]);
    if (!inv->pos[1][0])
        return sc_usage_error(ctx, inv, "the key must not be empty");
    value = read_secret(inv->pos[1], &err);
    if (!value) {
        /* a value refused for its size or content needs no errno text */
        fprintf(ctx->errf, "spacectl: %s\n",
                err.code == E2BIG || err.code == EINVAL ? err.msg
                                                        : rt_err_str(&err, msg, sizeof(msg)));
        return SC_EXIT_USAGE;
    }
    return set_key(ctx, inv, "secrets", inv->pos[1], value);
}

int sc_cmd_variable_set(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    if (!inv->pos[1][0])
        return sc_usage_error(ctx, inv, "the key must not be empty");
    return set_key(ctx, inv, "variables", inv->pos[1], inv->pos[2]);
}
