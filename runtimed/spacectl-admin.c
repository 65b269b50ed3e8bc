/* spacectl commands for the operator: users, tokens, hardware tiers, GPUs
 * and garbage collection. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "spacectl.h"
#include "spacectl-fmt.h"
#include "cleanup.h"
#include "util.h"
#include "banned.h"

int sc_cmd_user_add(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    _cleanup_json_ json_t *body = NULL, *resp = NULL;
    bool admin = sc_opt_value(inv, "admin") != NULL, pro = sc_opt_value(inv, "pro") != NULL;
    const char *name = inv->pos[0];
    int r;

    if (!sc_valid_name(name))
        return sc_usage_error(
            ctx, inv, "'%s' is not a user name: use letters, digits, '-', '_' and '.'", name);
    body = json_pack("{s:s, s:b, s:s}", "name", name, "admin", admin, "plan", pro ? "pro" : "free");
    if (!body)
        return sc_out_of_memory(ctx);
    r = sc_api(ctx, "POST", "/api/admin/users", body, &resp);
    if (r)
        return r;
    if (ctx->json)
        sc_print_json(ctx->out, resp);
    else
        fprintf(ctx->out, "created user '%s'%s%s\n", name, admin ? " (admin)" : "",
                pro ? " on the pro plan" : "");
    return SC_EXIT_OK;
}

int sc_cmd_user_set(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    _cleanup_json_ json_t *body = NULL, *resp = NULL;
    const char *name = inv->pos[0], *plan = sc_opt_value(inv, "plan");
    char path[256];
    int r;

    if (!sc_valid_name(name))
        return sc_usage_error(
            ctx, inv, "'%s' is not a user name: use letters, digits, '-', '_' and '.'", name);
    if (!plan || !*plan)
        return sc_usage_error(ctx, inv, "--plan is required");
    if (strcmp(plan, "free") != 0 && strcmp(plan, "pro") != 0)
        return sc_usage_error(ctx, inv, "--plan must be 'free' or 'pro'");
    body = json_pack("{s:s}", "plan", plan);
    if (!body)
        return sc_out_of_memory(ctx);
    (void) snprintf(path, sizeof(path), "/api/admin/users/%s", name);
    r = sc_api(ctx, "PATCH", path, body, &resp);
    if (r)
        return r;
    if (ctx->json)
        sc_print_json(ctx->out, resp);
    else
        fprintf(ctx->out, "user '%s' is on the %s plan\n", name, plan);
    return SC_EXIT_OK;
}

int sc_cmd_token_create(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    const char *user = sc_opt_value(inv, "user"), *scope = sc_opt_value(inv, "scope");
    const char *space = sc_opt_value(inv, "space");
    _cleanup_json_ json_t *body = NULL, *resp = NULL;
    const json_t *token;
    int r;

    if (!user || !*user)
        return sc_usage_error(ctx, inv, "--user is required");
    if (!sc_valid_name(user))
        return sc_usage_error(ctx, inv, "'%s' is not a user name", user);
    if (!scope || (strcmp(scope, "read") != 0 && strcmp(scope, "write") != 0))
        return sc_usage_error(ctx, inv, "--scope must be 'read' or 'write'");
    if (space && !sc_valid_space_id(space))
        return sc_usage_error(ctx, inv, "'%s' is not a Space id: expected OWNER/NAME", space);
    body = json_pack("{s:s, s:s}", "user", user, "role", scope);
    if (!body || (space && json_object_set_new(body, "spaces", json_pack("[s]", space)) < 0))
        return sc_out_of_memory(ctx);
    r = sc_api(ctx, "POST", "/api/admin/tokens", body, &resp);
    if (r)
        return r;
    if (ctx->json) {
        sc_print_json(ctx->out, resp);
        return SC_EXIT_OK;
    }
    token = json_object_get(resp, "token");
    if (!json_is_string(token)) {
        fprintf(ctx->errf, "spacectl: POST /api/admin/tokens: the answer holds no token\n");
        return SC_EXIT_API;
    }
    /* stdout gets the token alone, so scripts can capture it */
    fprintf(ctx->out, "%s\n", json_string_value(token));
    fprintf(ctx->errf, "spacectl: %s token for '%s'%s%s; it is shown only this once\n", scope, user,
            space ? " on " : "", space ? space : "");
    return SC_EXIT_OK;
}

/* --- hardware tiers -------------------------------------------------------------- */

/* "1x a10g", "zero (a10g)", or the Hub's accelerator object, or NULL for CPU only. */
static char *tier_gpu(const json_t *tier)
{
    const json_t *acc = json_object_get(tier, "accelerator");
    const char *kind = json_string_value(json_object_get(tier, "gpuKind"));
    json_int_t n = json_integer_value(json_object_get(tier, "gpus"));
    char buf[160];

    if (json_is_true(json_object_get(tier, "zero")))
        (void) snprintf(buf, sizeof(buf), "zero%s%s%s", kind ? " (" : "", kind ? kind : "",
                        kind ? ")" : "");
    else if (n > 0)
        (void) snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT "x %s", n, kind ? kind : "gpu");
    else if (json_is_object(acc))
        (void) snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT "x %s",
                        json_integer_value(json_object_get(acc, "quantity")),
                        json_string_value(json_object_get(acc, "model"))
                            ? json_string_value(json_object_get(acc, "model"))
                            : "gpu");
    else
        return strdup("-");
    return strdup(buf);
}

int sc_cmd_hardware_list(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    static const char *const headers[] = { "NAME", "CPUS", "MEMORY", "DISK", "GPU", "DESCRIPTION" };
    _cleanup_json_ json_t *resp = NULL;
    struct sc_table t;
    json_t *tier;
    size_t i;
    int r;

    r = sc_api(ctx, "GET", "/api/spaces/hardware", NULL, &resp);
    if (r)
        return r;
    if (ctx->json) {
        sc_print_json(ctx->out, resp);
        return SC_EXIT_OK;
    }
    if (!json_is_array(resp)) {
        fprintf(ctx->errf, "spacectl: GET /api/spaces/hardware: expected a JSON array\n");
        return SC_EXIT_API;
    }
    r = sc_table_init(&t, ARRAY_SIZE(headers), headers);
    json_array_foreach(resp, i, tier)
    {
        /* Spaceport's exact fields first, the Hub's display strings otherwise */
        const json_t *cpus = json_object_get(tier, "cpus");
        _cleanup_free_ char *c = sc_fmt_value(cpus ? cpus : json_object_get(tier, "cpu"));
        _cleanup_free_ char *m = json_object_get(tier, "memory")
                                     ? sc_fmt_bytes(json_object_get(tier, "memory"))
                                     : sc_fmt_value(json_object_get(tier, "ram"));
        const json_t *disk = json_object_get(tier, "disk");
        /* a disk of 0 means no limit */
        _cleanup_free_ char *d =
            json_is_number(disk) && json_number_value(disk) == 0 ? strdup("-") : sc_fmt_bytes(disk);
        _cleanup_free_ char *g = tier_gpu(tier);
        const char *row[] = { json_string_value(json_object_get(tier, "name")),      c, m, d, g,
                              json_string_value(json_object_get(tier, "prettyName")) };

        if (r == 0 && (!c || !m || !d || !g))
            r = -ENOMEM;
        if (r == 0)
            r = sc_table_add(&t, row);
    }
    if (r == 0)
        sc_table_print(&t, ctx->out);
    sc_table_done(&t);
    return r < 0 ? sc_out_of_memory(ctx) : SC_EXIT_OK;
}

/* Parses a size option into *ret.  Returns 0 or a usage error's exit status. */
static int size_opt(struct sc_ctx *ctx, const struct sc_inv *inv, const char *name, uint64_t *ret)
{
    const char *v = sc_opt_value(inv, name);

    if (rt_parse_size(v, ret) < 0 || *ret == 0)
        return sc_usage_error(ctx, inv, "--%s '%s' is not a size such as 512M or 16G", name,
                              v ? v : "");
    return 0;
}

int sc_cmd_tier_add(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    const char *name = inv->pos[0], *cpus_s = sc_opt_value(inv, "cpus");
    const char *gpus_s = sc_opt_value(inv, "gpus"), *kind = sc_opt_value(inv, "gpu-kind");
    const char *light_s = sc_opt_value(inv, "light-sleep");
    bool zero = sc_opt_value(inv, "zero") != NULL;
    long long light = 0;
    _cleanup_json_ json_t *body = NULL, *resp = NULL;
    uint64_t memory, disk = 0, gpus = 0;
    char *end = NULL, mem_s[32];
    double cpus;
    int r;

    if (!sc_valid_name(name))
        return sc_usage_error(
            ctx, inv, "'%s' is not a tier name: use letters, digits, '-', '_' and '.'", name);
    if (!cpus_s)
        return sc_usage_error(ctx, inv, "--cpus is required");
    errno = 0;
    cpus = strtod(cpus_s, &end);
    if (errno || end == cpus_s || *end || !isfinite(cpus) || cpus <= 0 || cpus > 4096)
        return sc_usage_error(ctx, inv, "--cpus '%s' is not a positive number such as 2 or 0.5",
                              cpus_s);
    if (!sc_opt_value(inv, "memory"))
        return sc_usage_error(ctx, inv, "--memory is required");
    r = size_opt(ctx, inv, "memory", &memory);
    if (r)
        return r;
    if (sc_opt_value(inv, "disk")) {
        r = size_opt(ctx, inv, "disk", &disk);
        if (r)
            return r;
    }
    if (gpus_s && (rt_parse_u64(gpus_s, &gpus) < 0 || gpus > 64))
        return sc_usage_error(ctx, inv, "--gpus '%s' is not a GPU count (0 to 64)", gpus_s);
    if (zero && (gpus_s || kind))
        return sc_usage_error(ctx, inv,
                              "--zero shares GPUs: it does not go with --gpus or "
                              "--gpu-kind");
    if (gpus > 0 && (!kind || !*kind))
        return sc_usage_error(ctx, inv, "--gpus needs --gpu-kind (such as a10g)");
    if (kind && gpus == 0)
        return sc_usage_error(ctx, inv, "--gpu-kind needs --gpus N with N > 0");
    if (light_s && sc_parse_sleep(light_s, false, &light) < 0)
        return sc_usage_error(
            ctx, inv, "--light-sleep '%s' is not a number of seconds (or -1/never)", light_s);
    body = json_pack("{s:s, s:f, s:I, s:I, s:b}", "name", name, "cpus", cpus, "memory",
                     (json_int_t) memory, "gpus", (json_int_t) gpus, "zero", zero);
    if (!body || (kind && json_object_set_new(body, "gpuKind", json_string(kind)) < 0) ||
        (light_s &&
         json_object_set_new(body, "lightSleepSeconds", json_integer((json_int_t) light)) < 0) ||
        (disk && json_object_set_new(body, "disk", json_integer((json_int_t) disk)) < 0))
        return sc_out_of_memory(ctx);
    r = sc_api(ctx, "POST", "/api/admin/hardware", body, &resp);
    if (r)
        return r;
    if (ctx->json) {
        sc_print_json(ctx->out, resp);
        return SC_EXIT_OK;
    }
    fprintf(ctx->out, "added tier '%s': %g CPUs, %s memory", name, cpus,
            rt_format_size(memory, mem_s, sizeof(mem_s)));
    if (disk)
        fprintf(ctx->out, ", %s disk", rt_format_size(disk, mem_s, sizeof(mem_s)));
    if (gpus)
        fprintf(ctx->out, ", %llu %s GPU%s", (unsigned long long) gpus, kind, gpus > 1 ? "s" : "");
    if (zero)
        fprintf(ctx->out, ", ZeroGPU");
    if (light_s && light < 0)
        fprintf(ctx->out, ", never frozen");
    else if (light_s)
        fprintf(ctx->out, ", frozen after %lld s idle", light);
    fputc('\n', ctx->out);
    return SC_EXIT_OK;
}

int sc_cmd_tier_set(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    _cleanup_json_ json_t *body = NULL, *resp = NULL;
    const char *name = inv->pos[0], *sleep_s = sc_opt_value(inv, "sleep");
    const char *light_s = sc_opt_value(inv, "light-sleep");
    long long sleep = 0, light = 0;
    char path[256];
    int r;

    if (!sc_valid_name(name))
        return sc_usage_error(ctx, inv, "'%s' is not a tier name", name);
    if (!sleep_s && !light_s)
        return sc_usage_error(ctx, inv, "give --sleep, --light-sleep or both");
    if (sleep_s && sc_parse_sleep(sleep_s, false, &sleep) < 0)
        return sc_usage_error(ctx, inv, "--sleep '%s' is not a number of seconds (or -1/never)",
                              sleep_s);
    if (light_s && sc_parse_sleep(light_s, true, &light) < 0)
        return sc_usage_error(ctx, inv,
                              "--light-sleep '%s' is not a number of seconds (or -1/never, "
                              "default)",
                              light_s);
    body = json_object();
    if (!body ||
        (sleep_s &&
         json_object_set_new(body, "sleepTimeSeconds", json_integer((json_int_t) sleep)) < 0) ||
        (light_s &&
         json_object_set_new(body, "lightSleepSeconds",
                             light == SC_SLEEP_DEFAULT ? json_null()
                                                       : json_integer((json_int_t) light)) < 0))
        return sc_out_of_memory(ctx);
    (void) snprintf(path, sizeof(path), "/api/admin/hardware/%s", name);
    r = sc_api(ctx, "PATCH", path, body, &resp);
    if (r)
        return r;
    if (ctx->json) {
        sc_print_json(ctx->out, resp);
        return SC_EXIT_OK;
    }
    {
        const json_t *ds = json_object_get(resp, "sleepTimeSeconds");
        const json_t *ls = json_object_get(resp, "lightSleepSeconds");
        char deep[48] = "never", lights[64] = "as the node says";

        if (json_is_integer(ds) && json_integer_value(ds) >= 0)
            (void) snprintf(deep, sizeof(deep), "after %" JSON_INTEGER_FORMAT " s idle",
                            json_integer_value(ds));
        if (json_is_integer(ls) && json_integer_value(ls) < 0)
            (void) snprintf(lights, sizeof(lights), "never");
        else if (json_is_integer(ls))
            (void) snprintf(lights, sizeof(lights), "after %" JSON_INTEGER_FORMAT " s idle",
                            json_integer_value(ls));
        fprintf(ctx->out, "tier '%s': Spaces sleep %s, freeze %s\n", name, deep, lights);
    }
    return SC_EXIT_OK;
}

int sc_cmd_tier_rm(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    _cleanup_json_ json_t *resp = NULL;
    const char *name = inv->pos[0];
    char path[256];
    int r;

    if (!sc_valid_name(name))
        return sc_usage_error(ctx, inv, "'%s' is not a tier name", name);
    (void) snprintf(path, sizeof(path), "/api/admin/hardware/%s", name);
    r = sc_api(ctx, "DELETE", path, NULL, &resp);
    if (r)
        return r;
    if (ctx->json)
        sc_print_json(ctx->out, resp);
    else
        fprintf(ctx->out, "removed tier '%s'\n", name);
    return SC_EXIT_OK;
}

/* --- GPUs: the shapes belong to gpu-sched, so they print generically ------------- */

/* Counts of bytes read better as sizes. */
static bool is_bytes_key(const char *key)
{
    return strcasestr(key, "memory") || strcasestr(key, "vram") || strcasestr(key, "bytes");
}

/* Prints an array of objects as a table whose columns are the first object's keys. */
static int print_object_table(struct sc_ctx *ctx, const json_t *arr)
{
    const char *headers[SC_TABLE_MAX_COLS], *keys[SC_TABLE_MAX_COLS];
    char upper[SC_TABLE_MAX_COLS][64];
    const json_t *first = json_array_get(arr, 0), *row, *v;
    const char *key;
    struct sc_table t;
    size_t n = 0, i;
    int r;

    json_object_foreach((json_t *) first, key, v)
    {
        size_t k;

        if (n == SC_TABLE_MAX_COLS)
            break;
        for (k = 0; key[k] && k + 1 < sizeof(upper[n]); k++)
            upper[n][k] = (char) (key[k] >= 'a' && key[k] <= 'z' ? key[k] - 'a' + 'A' : key[k]);
        upper[n][k] = '\0';
        keys[n] = key;
        headers[n] = upper[n];
        n++;
    }
    if (n == 0) {
        fprintf(ctx->errf, "spacectl: the server answered with objects that have no fields\n");
        return SC_EXIT_API;
    }
    r = sc_table_init(&t, n, headers);
    json_array_foreach(arr, i, row)
    {
        char *cells[SC_TABLE_MAX_COLS] = { 0 };

        for (size_t c = 0; c < n && r == 0; c++) {
            v = json_object_get(row, keys[c]);
            cells[c] = is_bytes_key(keys[c]) ? sc_fmt_bytes(v) : sc_fmt_value(v);
            if (!cells[c])
                r = -ENOMEM;
        }
        if (r == 0)
            r = sc_table_add(&t, (const char *const *) cells);
        for (size_t c = 0; c < n; c++)
            free(cells[c]);
    }
    if (r == 0)
        sc_table_print(&t, ctx->out);
    sc_table_done(&t);
    return r < 0 ? sc_out_of_memory(ctx) : SC_EXIT_OK;
}

/* An array prints as one table; an object prints each of its arrays under its name
 * ("leases:", "queue:"), and its other members as "name: value" lines. */
static int print_generic(struct sc_ctx *ctx, const json_t *j, const char *what)
{
    const char *key;
    json_t *v;
    int r;

    if (json_is_array(j)) {
        if (json_array_size(j) == 0) {
            fprintf(ctx->out, "no %s\n", what);
            return SC_EXIT_OK;
        }
        if (!json_is_object(json_array_get(j, 0))) {
            sc_print_json(ctx->out, j);
            return SC_EXIT_OK;
        }
        return print_object_table(ctx, j);
    }
    if (!json_is_object(j)) {
        sc_print_json(ctx->out, j);
        return SC_EXIT_OK;
    }
    json_object_foreach((json_t *) j, key, v)
    {
        if (json_is_array(v)) {
            fprintf(ctx->out, "%s:\n", key);
            r = print_generic(ctx, v, key);
            if (r)
                return r;
        } else {
            _cleanup_free_ char *s = is_bytes_key(key) ? sc_fmt_bytes(v) : sc_fmt_value(v);

            if (!s)
                return sc_out_of_memory(ctx);
            fprintf(ctx->out, "%s: %s\n", key, s);
        }
    }
    return SC_EXIT_OK;
}

static int gpu_get(struct sc_ctx *ctx, const char *path, const char *what)
{
    _cleanup_json_ json_t *resp = NULL;
    int r;

    r = sc_api(ctx, "GET", path, NULL, &resp);
    if (r)
        return r;
    if (ctx->json) {
        sc_print_json(ctx->out, resp);
        return SC_EXIT_OK;
    }
    return print_generic(ctx, resp, what);
}

int sc_cmd_gpu_list(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    return gpu_get(ctx, "/api/admin/gpus", "GPUs");
}

int sc_cmd_gpu_leases(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    return gpu_get(ctx, "/api/admin/gpu-leases", "leases");
}

/* --- garbage collection ------------------------------------------------------------- */

int sc_cmd_admin_gc(struct sc_ctx *ctx, const struct sc_inv *inv)
{
    _cleanup_json_ json_t *resp = NULL;
    _cleanup_free_ char *freed = NULL;
    const json_t *removed, *v;
    size_t i;
    int r;

    (void) inv;
    r = sc_api(ctx, "POST", "/api/admin/gc", NULL, &resp);
    if (r)
        return r;
    if (ctx->json) {
        sc_print_json(ctx->out, resp);
        return SC_EXIT_OK;
    }
    removed = json_object_get(resp, "removed");
    freed = sc_fmt_bytes(json_object_get(resp, "freedBytes"));
    if (!freed)
        return sc_out_of_memory(ctx);
    json_array_foreach(removed, i, v)
    {
        fprintf(ctx->out, "removed %s\n", json_string_value(v) ? json_string_value(v) : "?");
    }
    fprintf(ctx->out, "%zu removed, %s freed\n", json_array_size(removed), freed);
    return SC_EXIT_OK;
}
