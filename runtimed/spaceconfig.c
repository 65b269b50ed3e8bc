/* The Space config: README.md front matter -> struct rt_spaceconfig.  One table below
 * drives parsing, defaults and validation; the checks keep every value that later
 * reaches a command line or a header to a narrow, safe alphabet. */
#include "spaceconfig.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"

#include "banned.h"

static const char *const sdk_names[] = { "gradio", "streamlit", "static", "docker", NULL };
static const char *const color_names[] = { "red",    "yellow", "green", "blue", "indigo",
                                           "purple", "pink",   "gray",  NULL };
static const char *const header_names[] = { "mini", "default", NULL };
static const char *const storage_names[] = { "small", "medium", "large", NULL };
/* HD: spaces-oauth.md; openid and profile are always granted, and harmless to repeat. */
static const char *const oauth_scopes[] = {
    "openid",
    "profile",
    "email",
    "read-billing",
    "read-memberships",
    "read-repos",
    "gated-repos",
    "contribute-repos",
    "write-repos",
    "manage-repos",
    "read-collections",
    "write-collections",
    "inference-api",
    "read-endpoints",
    "write-endpoints",
    "jobs",
    "webhooks",
    "write-discussions",
    NULL,
};
static const char *const coep_values[] = { "require-corp", "credentialless", "unsafe-none", NULL };
static const char *const coop_values[] = { "same-origin", "same-origin-allow-popups",
                                           "noopener-allow-popups", "unsafe-none", NULL };
static const char *const corp_values[] = { "same-site", "same-origin", "cross-origin", NULL };
/* The default app file of each SDK, by enum rt_sdk. */
static const char *const default_app_file[_RT_SDK_MAX] = {
    [RT_SDK_GRADIO] = "app.py",
    [RT_SDK_STREAMLIT] = "app.py",
    [RT_SDK_STATIC] = "index.html",
    [RT_SDK_DOCKER] = "Dockerfile",
};

const char *rt_sdk_name(int sdk)
{
    return sdk >= 0 && sdk < _RT_SDK_MAX ? sdk_names[sdk] : "unknown";
}

int rt_sdk_from_name(const char *name)
{
    for (int i = 0; i < _RT_SDK_MAX; i++)
        if (strcmp(sdk_names[i], name) == 0)
            return i;
    return -1;
}

const char *rt_color_name(int color)
{
    return color >= 0 && color < _RT_COLOR_MAX ? color_names[color] : NULL;
}

/* --- value checks: NULL when fine, else what was expected --------------------------- */

static bool only(const char *s, const char *extra)
{
    for (; *s; s++) {
        bool alnum =
            (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9');
        if (!alnum && !strchr(extra, *s))
            return false;
    }
    return true;
}

static bool printable_ascii(const char *s)
{
    for (; *s; s++)
        if (*s <= ' ' || *s >= 0x7f)
            return false;
    return true;
}

static const char *check_emoji(const char *s)
{
    bool wide = false;

    for (const char *p = s; *p; p++) {
        if ((unsigned char) *p >= 0x80)
            wide = true;
        else if ((unsigned char) *p <= ' ' || *p == 0x7f)
            return "a single emoji";
    }
    return wide ? NULL : "a single emoji";
}

static const char *check_version(const char *s)
{
    if (*s < '0' || *s > '9' || !only(s, ".+-") || strlen(s) > 64)
        return "a version such as '4.36.1'";
    return NULL;
}

static const char *check_python_version(const char *s)
{
    static const char *const want = "a Python version such as '3.10' or '3.10.4'";
    const char *p = s;
    int parts = 0;

    if (strncmp(p, "3.", 2) != 0)
        return want;
    p += 2;
    for (;;) {
        size_t digits = strspn(p, "0123456789");

        if (digits == 0 || digits > 3)
            return want;
        p += digits;
        parts++;
        if (*p == '\0')
            break;
        if (*p != '.' || parts == 2)
            return want;
        p++;
    }
    return NULL;
}

/* The app file becomes an argument of the run command: relative, inside the repo. */
static const char *check_rel_path(const char *s)
{
    static const char *const want = "a file path relative to the repository root";
    const char *p = s;

    if (!*s || *s == '/' || !printable_ascii(s) || strchr(s, '\\') || strlen(s) > 255)
        return want;
    while (*p) {
        size_t l = strcspn(p, "/");

        if (l == 0 || (l == 2 && strncmp(p, "..", 2) == 0))
            return want;
        p += l;
        if (*p == '/' && !*++p)
            return want;
    }
    return NULL;
}

static const char *check_base_path(const char *s)
{
    return *s == '/' && printable_ascii(s) ? NULL : "a URL path starting with '/'";
}

static const char *check_url(const char *s)
{
    if ((strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0) && printable_ascii(s))
        return NULL;
    return "an http:// or https:// URL";
}

static bool repo_part_ok(const char *s, size_t l)
{
    if (l == 0 || l > 96 || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < l; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
        if (i && c == '.' && s[i - 1] == '.')
            return false;
    }
    return true;
}

static const char *check_repo_id(const char *s)
{
    const char *slash = strchr(s, '/');
    static const char *const want = "a repo id such as 'owner/name'";

    if (!slash)
        return repo_part_ok(s, strlen(s)) ? NULL : want;
    if (!repo_part_ok(s, (size_t) (slash - s)) || !repo_part_ok(slash + 1, strlen(slash + 1)))
        return want;
    return NULL;
}

static const char *check_org(const char *s)
{
    return repo_part_ok(s, strlen(s)) ? NULL : "an organization name";
}

static const char *check_flavor(const char *s)
{
    if (!*s || strlen(s) > 64 || *s == '-' || !only(s, "-") ||
        strpbrk(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        return "a hardware flavor such as 't4-small'";
    return NULL;
}

static const char *check_text_line(const char *s)
{
    /* One line: a title or description must not forge extra lines in logs or HTML. */
    for (; *s; s++)
        if ((unsigned char) *s < ' ' && *s != '\t')
            return "one line of text";
    return NULL;
}

static const char *check_revision(const char *s)
{
    if (!*s || strlen(s) > 255 || *s == '-' || !only(s, "._/-") || strstr(s, ".."))
        return "a branch, tag or commit";
    return NULL;
}

/* --- preload_from_hub: "repo", "repo f1,f2", "repo f1,f2 revision" ------------------ */

static void preloads_done(void *field)
{
    struct rt_preloads *p = field;

    for (size_t i = 0; i < p->n; i++) {
        free(p->items[i].repo);
        rt_strv_done(&p->items[i].files);
        free(p->items[i].revision);
    }
    free(p->items);
    p->items = NULL;
    p->n = 0;
}

static int preload_parse_one(const struct rt_ynode *v, const char *name, struct rt_preload *out,
                             struct rt_conf_ctx *ctx)
{
    static const char *const want = "'repo', 'repo file1,file2' or 'repo file1,file2 revision'";
    _cleanup_free_ char *copy = NULL;
    char *fields[4] = { NULL }, *save = NULL, *tok, q[200];
    size_t n = 0;
    const char *why;

    if (v->kind != RT_YNODE_SCALAR)
        return rt_conf_fail(ctx, v->line, name, "expected %s, got a %s", want,
                            v->kind == RT_YNODE_MAP ? "mapping" : "list");
    copy = strdup(v->text);
    if (!copy)
        return rt_err_set(ctx->err, ENOMEM, "%s: %s", ctx->file, name);
    for (tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (n == 3)
            return rt_conf_fail(ctx, v->line, name, "expected %s, got '%s'", want,
                                rt_conf_quote(v->text, v->len, q, sizeof(q)));
        fields[n++] = tok;
    }
    if (n == 0)
        return rt_conf_fail(ctx, v->line, name, "expected %s, got an empty string", want);
    if ((why = check_repo_id(fields[0])))
        return rt_conf_fail(ctx, v->line, name, "expected %s, got '%s'", why,
                            rt_conf_quote(fields[0], strlen(fields[0]), q, sizeof(q)));
    if (!(out->repo = strdup(fields[0])))
        return rt_err_set(ctx->err, ENOMEM, "%s: %s", ctx->file, name);
    if (n >= 2) {
        char *fsave = NULL;

        for (tok = strtok_r(fields[1], ",", &fsave); tok; tok = strtok_r(NULL, ",", &fsave)) {
            if ((why = check_rel_path(tok)))
                return rt_conf_fail(ctx, v->line, name, "expected %s, got '%s'", why,
                                    rt_conf_quote(tok, strlen(tok), q, sizeof(q)));
            if (out->files.n >= 256)
                return rt_conf_fail(ctx, v->line, name, "more than 256 files");
            if (rt_strv_push(&out->files, tok) < 0)
                return rt_err_set(ctx->err, ENOMEM, "%s: %s", ctx->file, name);
        }
    }
    if (n == 3) {
        if ((why = check_revision(fields[2])))
            return rt_conf_fail(ctx, v->line, name, "expected %s, got '%s'", why,
                                rt_conf_quote(fields[2], strlen(fields[2]), q, sizeof(q)));
        if (!(out->revision = strdup(fields[2])))
            return rt_err_set(ctx->err, ENOMEM, "%s: %s", ctx->file, name);
    }
    return 0;
}

static int preloads_parse(const struct rt_conf_key *k, const struct rt_ynode *v, void *field,
                          struct rt_conf_ctx *ctx)
{
    struct rt_preloads *p = field;
    const struct rt_ynode *const *items = &v;
    size_t n = 1;
    char name[64];

    if (v->kind == RT_YNODE_SEQ) {
        items = (const struct rt_ynode *const *) v->items;
        n = v->n;
    }
    if (n > k->max_items)
        return rt_conf_fail(ctx, v->line, k->name, "more than %zu items", k->max_items);
    preloads_done(p);
    if (n == 0)
        return 0;
    p->items = calloc(n, sizeof(*p->items));
    if (!p->items)
        return rt_err_set(ctx->err, ENOMEM, "%s: %s", ctx->file, k->name);
    for (size_t i = 0; i < n; i++) {
        int r;

        p->n = i + 1;
        (void) snprintf(name, sizeof(name), "%s[%zu]", k->name, i);
        r = preload_parse_one(items[i], name, &p->items[i], ctx);
        if (r < 0)
            return r;
    }
    return 0;
}

/* --- the table ---------------------------------------------------------------------- */

#define F(field) offsetof(struct rt_spaceconfig, field)

static const struct rt_conf_key spaceconfig_keys[] = {
    { "title", RT_CONF_STR, F(title), .max_len = 256, .check = check_text_line,
      .doc = "display title, one line" },
    { "emoji", RT_CONF_STR, F(emoji), .max_len = 64, .check = check_emoji, .doc = "one emoji" },
    { "colorFrom", RT_CONF_ENUM, F(color_from), .names = color_names,
      .doc = "thumbnail gradient start" },
    { "colorTo", RT_CONF_ENUM, F(color_to), .names = color_names, .doc = "thumbnail gradient end" },
    { "sdk", RT_CONF_ENUM, F(sdk), .required = true, .names = sdk_names,
      .doc = "one of gradio, streamlit, static, docker" },
    { "sdk_version", RT_CONF_STR, F(sdk_version), .check = check_version,
      .doc = "the SDK version the build installs, such as 4.36.1" },
    { "python_version", RT_CONF_STR, F(python_version), .def = "3.10",
      .check = check_python_version, .doc = "3.x or 3.x.y (gradio, streamlit)" },
    { "app_file", RT_CONF_STR, F(app_file), .check = check_rel_path,
      .doc = "path in the repo; default app.py, index.html for static" },
    { "app_build_command", RT_CONF_STR, F(app_build_command), .check = check_text_line,
      .doc = "static only: the command that builds the site" },
    { "app_port", RT_CONF_INT, F(app_port), .def = "7860", .min = 1, .max = 65535,
      .doc = "docker only: the port the app listens on" },
    { "base_path", RT_CONF_STR, F(base_path), .check = check_base_path,
      .doc = "initial URL path, starts with /" },
    { "fullWidth", RT_CONF_BOOL, F(full_width), .def = "true",
      .doc = "full-width page rather than a fixed column" },
    { "header", RT_CONF_ENUM, F(header), .names = header_names,
      .doc = "mini: full screen with a floating header" },
    { "short_description", RT_CONF_STR, F(short_description), .check = check_text_line,
      .doc = "shown on the thumbnail" },
    { "models", RT_CONF_STRV, F(models), .check = check_repo_id,
      .doc = "model repo ids the Space uses" },
    { "datasets", RT_CONF_STRV, F(datasets), .check = check_repo_id,
      .doc = "dataset repo ids the Space uses" },
    { "tags", RT_CONF_STRV, F(tags), .max_len = 128, .check = check_text_line,
      .doc = "free-form tags" },
    { "thumbnail", RT_CONF_STR, F(thumbnail), .check = check_url,
      .doc = "http(s) URL of the social-share image" },
    { "pinned", RT_CONF_BOOL, F(pinned), .def = "false", .doc = "pin on the owner's profile" },
    { "license", RT_CONF_STR, F(license), .max_len = 128, .check = check_text_line,
      .doc = "license id, such as mit" },
    { "duplicated_from", RT_CONF_STR, F(duplicated_from), .check = check_repo_id,
      .doc = "the repo id this Space was copied from" },
    { "hf_oauth", RT_CONF_BOOL, F(hf_oauth), .def = "false",
      .doc = "sign-in with the Hub: injects OAUTH_* variables" },
    { "hf_oauth_scopes", RT_CONF_STRV, F(hf_oauth_scopes), .max_items = 32, .names = oauth_scopes,
      .doc = "extra OAuth scopes; openid and profile are always granted" },
    { "hf_oauth_expiration_minutes", RT_CONF_INT, F(hf_oauth_expiration_minutes), .def = "480",
      .min = 1, .max = 43200, .doc = "OAuth token lifetime" },
    { "hf_oauth_authorized_org", RT_CONF_STRV, F(hf_oauth_authorized_org), .max_items = 64,
      .check = check_org, .doc = "organizations whose members may sign in" },
    { "hf_oauth_redirect_path", RT_CONF_STR, F(hf_oauth_redirect_path), .deprecated = true,
      .check = check_base_path,
      .doc = "ignored: the Hub removed it in 2023-12 (any path on the Space host may be used)" },
    { "suggested_hardware", RT_CONF_STR, F(suggested_hardware), .check = check_flavor,
      .doc = "a hint for people who copy the Space; assigns nothing" },
    { "suggested_storage", RT_CONF_ENUM, F(suggested_storage), .names = storage_names,
      .deprecated = true, .doc = "ignored: persistent storage is discontinued" },
    { "disable_embedding", RT_CONF_BOOL, F(disable_embedding), .def = "false",
      .doc = "refuse to be embedded in other sites" },
    { "startup_duration_timeout", RT_CONF_DURATION, F(startup_duration_timeout_ms), .def = "30m",
      .min = 1000, .max = 24 * 3600 * 1000, .doc = "time to become healthy before RUNTIME_ERROR" },
    { "custom_headers.cross-origin-embedder-policy", RT_CONF_STR, F(custom_headers.coep),
      .names = coep_values, .doc = "added to every response" },
    { "custom_headers.cross-origin-opener-policy", RT_CONF_STR, F(custom_headers.coop),
      .names = coop_values, .doc = "added to every response" },
    { "custom_headers.cross-origin-resource-policy", RT_CONF_STR, F(custom_headers.corp),
      .names = corp_values, .doc = "added to every response" },
    { "preload_from_hub", RT_CONF_CUSTOM, F(preload_from_hub), .max_items = 64,
      .parse = preloads_parse, .done = preloads_done,
      .doc = "\"repo\", \"repo f1,f2\" or \"repo f1,f2 revision\", fetched at build time" },
};

#undef F

int rt_spaceconfig_describe(FILE *out)
{
    return rt_conf_describe(spaceconfig_keys, ARRAY_SIZE(spaceconfig_keys), out);
}

/* --- front matter ------------------------------------------------------------------- */

/* Is the line [p, end) "---" with optional trailing blanks (and CR)? */
static bool is_fence(const char *p, const char *end)
{
    if (end - p < 3 || memcmp(p, "---", 3) != 0)
        return false;
    for (p += 3; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r')
            return false;
    return true;
}

/* Finds the YAML between a first line "---" and the next "---" line. */
static int front_matter(const char *s, size_t len, const char **ret_yaml, size_t *ret_len,
                        struct rt_err *err)
{
    const char *end = s + len, *p = s, *nl, *yaml;
    unsigned line = 1;

    if (len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
        p += 3; /* a UTF-8 byte-order mark, as some editors write */
    nl = memchr(p, '\n', (size_t) (end - p));
    if (!nl || !is_fence(p, nl))
        return rt_err_set(err, EINVAL,
                          "%s: no YAML front matter (the file must start with a '---' line)",
                          RT_README_NAME);
    yaml = p = nl + 1;
    while (p < end) {
        line++;
        if ((size_t) (p - yaml) > RT_FRONT_MATTER_MAX)
            return rt_err_set(err, E2BIG, "%s: front matter is larger than %d KiB", RT_README_NAME,
                              RT_FRONT_MATTER_MAX / 1024);
        nl = memchr(p, '\n', (size_t) (end - p));
        if (!nl)
            nl = end;
        if (is_fence(p, nl)) {
            *ret_yaml = yaml;
            *ret_len = (size_t) (p - yaml);
            return 0;
        }
        if (memchr(p, '\0', (size_t) (nl - p)))
            return rt_err_set(err, EINVAL, "%s:%u: front matter contains a NUL byte",
                              RT_README_NAME, line);
        p = nl + 1;
    }
    return rt_err_set(err, EINVAL, "%s:1: front matter has no closing '---' line", RT_README_NAME);
}

/* --- the whole ---------------------------------------------------------------------- */

void rt_spaceconfig_free(struct rt_spaceconfig *cfg)
{
    if (!cfg)
        return;
    rt_conf_done(spaceconfig_keys, ARRAY_SIZE(spaceconfig_keys), cfg);
    rt_strv_done(&cfg->unknown_keys);
    rt_strv_done(&cfg->warnings);
    rt_ynode_free(cfg->tree);
    free(cfg);
}

void rt_spaceconfig_freep(struct rt_spaceconfig **cfg)
{
    rt_spaceconfig_free(*cfg);
    *cfg = NULL;
}

/* Keys the Hub reads for some SDKs only: set for another SDK, they are ignored. */
static int warn_ignored(struct rt_spaceconfig *cfg, struct rt_conf_ctx *ctx)
{
    static const struct {
        const char *key;
        int sdk;
        const char *why;
    } only_for[] = {
        { "app_port", RT_SDK_DOCKER, "only docker Spaces choose their port" },
        { "app_build_command", RT_SDK_STATIC, "only static Spaces have a build command" },
    };

    for (size_t i = 0; i < ARRAY_SIZE(only_for); i++) {
        const struct rt_ynode *v = rt_ynode_get(cfg->tree, only_for[i].key);
        int r;

        if (!v || v->kind == RT_YNODE_NULL || cfg->sdk == only_for[i].sdk)
            continue;
        r = rt_conf_warn(ctx, v->line, only_for[i].key, "ignored for sdk %s (%s)",
                         rt_sdk_name(cfg->sdk), only_for[i].why);
        if (r < 0)
            return r;
    }
    return 0;
}

int rt_spaceconfig_parse(const char *readme, size_t len, struct rt_spaceconfig **ret,
                         struct rt_err *err)
{
    _cleanup_(rt_spaceconfig_freep) struct rt_spaceconfig *cfg = NULL;
    const char *yaml = NULL;
    size_t ylen = 0;
    struct rt_conf_ctx ctx = { .file = RT_README_NAME, .err = err };
    int r;

    if (!readme)
        return rt_err_set(err, EINVAL,
                          "%s: missing (a Space needs one, with YAML front matter "
                          "that says at least 'sdk')",
                          RT_README_NAME);
    r = front_matter(readme, len, &yaml, &ylen, err);
    if (r < 0)
        return r;
    cfg = calloc(1, sizeof(*cfg));
    if (!cfg)
        return rt_err_set(err, ENOMEM, "%s: parse", RT_README_NAME);
    r = rt_yaml_parse(yaml, ylen, RT_README_NAME, 2, &rt_yaml_default_limits, &cfg->tree, err);
    if (r < 0)
        return r;
    ctx.warnings = &cfg->warnings;
    ctx.unknown = &cfg->unknown_keys;
    r = rt_conf_bind(spaceconfig_keys, ARRAY_SIZE(spaceconfig_keys), cfg->tree, cfg, &ctx);
    if (r < 0)
        return r;
    if (!cfg->app_file && !(cfg->app_file = strdup(default_app_file[cfg->sdk])))
        return rt_err_set(err, ENOMEM, "%s: parse", RT_README_NAME);
    r = warn_ignored(cfg, &ctx);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(cfg);
    return 0;
}

/* --- NO_APP_FILE -------------------------------------------------------------------- */

static const char *app_file_of(const struct rt_spaceconfig *cfg)
{
    const char *f = cfg->sdk == RT_SDK_DOCKER ? "Dockerfile" : cfg->app_file;

    while (f && strncmp(f, "./", 2) == 0)
        f += 2;
    return f;
}

int rt_spaceconfig_check_app_file(const struct rt_spaceconfig *cfg, rt_repo_has_fn has,
                                  void *userdata, struct rt_err *err)
{
    const char *f = app_file_of(cfg);

    /* A static Space with a build command serves what the build makes: its app file
     * (dist/index.html) appears only then, so the builder checks it after building. */
    if (cfg->sdk == RT_SDK_STATIC && cfg->app_build_command)
        return 0;
    if (f && has(f, userdata))
        return 0;
    if (cfg->sdk == RT_SDK_DOCKER)
        return rt_err_set(err, ENOENT,
                          "app file 'Dockerfile' not found in the repository "
                          "(sdk docker)");
    return rt_err_set(err, ENOENT,
                      "app file '%s' not found in the repository (sdk %s; "
                      "app_file in %s names another)",
                      f ? f : "", rt_sdk_name(cfg->sdk), RT_README_NAME);
}

struct file_list {
    const char *const *files;
    size_t n;
};

static bool list_has(const char *path, void *userdata)
{
    const struct file_list *l = userdata;

    for (size_t i = 0; i < l->n; i++)
        if (l->files[i] && strcmp(l->files[i], path) == 0)
            return true;
    return false;
}

int rt_spaceconfig_check_app_file_in(const struct rt_spaceconfig *cfg, const char *const *files,
                                     size_t n, struct rt_err *err)
{
    struct file_list l = { files, n };

    return rt_spaceconfig_check_app_file(cfg, list_has, &l, err);
}
