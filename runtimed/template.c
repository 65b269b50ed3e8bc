/* SDK templates: load and validate templates/<sdk>.yaml by one table, then render the
 * build steps and the run command for one Space.  See template.h. */
#include "template.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "util.h"

#include "banned.h"

/* The names a template may use as ${NAME}.  Computed ones come from the Space and its
 * config; runtime ones must be given by the caller (they depend on the hardware tier). */
const struct rt_placeholder rt_template_placeholders[] = {
    { "SPACE_ID", false, "OWNER/NAME" },
    { "SPACE_HOST", false, "the Space's host, owner-name.DOMAIN" },
    { "SPACE_AUTHOR_NAME", false, "OWNER" },
    { "SPACE_REPO_NAME", false, "NAME" },
    { "SPACE_TITLE", false, "the README's title, or NAME" },
    { "SDK", false, "gradio, streamlit, static or docker" },
    { "SDK_VERSION", false, "the README's sdk_version, or empty" },
    { "PYTHON_VERSION", false, "the README's python_version (default 3.10)" },
    { "APP_FILE", false, "the README's app_file, or the SDK's default" },
    { "APP_FILE_DIR", false, "the folder of APP_FILE, or ." },
    { "APP_DIR", false, "the template's run.workdir" },
    { "APP_BUILD_COMMAND", false, "the README's app_build_command, or empty" },
    { "PORT", false, "the port the app listens on" },
    { "ACCELERATOR", true, "the hardware's accelerator, or none" },
    { "CPU_CORES", true, "CPUs the hardware tier gives" },
    { "MEMORY", true, "memory the hardware tier gives, e.g. 16Gi" },
    { "SPACE_CREATOR_USER_ID", true, "the id of the Space's owner" },
};
const size_t rt_template_n_placeholders = ARRAY_SIZE(rt_template_placeholders);

static const struct rt_placeholder *find_placeholder(const char *name, size_t len)
{
    for (size_t i = 0; i < rt_template_n_placeholders; i++)
        if (strlen(rt_template_placeholders[i].name) == len &&
            strncmp(rt_template_placeholders[i].name, name, len) == 0)
            return &rt_template_placeholders[i];
    return NULL;
}

/* --- value checks ------------------------------------------------------------------- */

static const char *check_placeholders(const char *s)
{
    static const char *const want = "text whose ${NAME} placeholders are known ('$$' for '$')";

    for (const char *p = s; (p = strchr(p, '$'));) {
        const char *end;

        if (p[1] == '$') {
            p += 2;
            continue;
        }
        if (p[1] != '{' || !(end = strchr(p + 2, '}')) ||
            !find_placeholder(p + 2, (size_t) (end - p - 2)))
            return want;
        p = end + 1;
    }
    return NULL;
}

static const char *check_placeholder_name(const char *s)
{
    return find_placeholder(s, strlen(s)) ? NULL : "a placeholder name such as SDK_VERSION";
}

static const char *check_env_name(const char *s)
{
    if (!((*s >= 'A' && *s <= 'Z') || *s == '_'))
        return "an environment variable name (A-Z, 0-9, _)";
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return "an environment variable name (A-Z, 0-9, _)";
    return NULL;
}

static const char *check_abs_path(const char *s)
{
    if (*s != '/' || strstr(s, "..") || strpbrk(s, " \t\n\\$"))
        return "an absolute path";
    return NULL;
}

static const char *check_repo_file(const char *s)
{
    if (!*s || *s == '/' || strstr(s, "..") || strpbrk(s, " \t\n\\$"))
        return "a file path relative to the repository root";
    return NULL;
}

static const char *check_url_path(const char *s)
{
    if (*s != '/' || strpbrk(s, " \t\r\n"))
        return "a URL path starting with '/'";
    return NULL;
}

static const char *check_name(const char *s)
{
    if (!*s || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-._") != strlen(s))
        return "a name (a-z, 0-9, -, ., _)";
    return NULL;
}

/* --- the tables --------------------------------------------------------------------- */

#define S(field) offsetof(struct rt_tpl_step, field)

static const struct rt_conf_key step_keys[] = {
    { "name", RT_CONF_STR, S(name), .required = true, .max_len = 64, .check = check_name,
      .doc = "the step's name, shown in build logs" },
    { "run", RT_CONF_STRV, S(run), .required = true, .max_items = 64, .check = check_placeholders,
      .doc = "the command, a list of arguments" },
    { "if_exists", RT_CONF_STR, S(if_exists), .check = check_repo_file,
      .doc = "run only when the repo has this file" },
    { "if_set", RT_CONF_STR, S(if_set), .check = check_placeholder_name,
      .doc = "run only when this placeholder is not empty" },
    { "unless_set", RT_CONF_STR, S(unless_set), .check = check_placeholder_name,
      .doc = "run only when this placeholder is empty" },
    { "root", RT_CONF_BOOL, S(root), .def = "false",
      .doc = "run as root in the build sandbox (apt-get)" },
};

#undef S
#define T(field) offsetof(struct rt_template, field)

static const struct rt_conf_key template_keys[] = {
    { "sdk", RT_CONF_STR, T(sdk), .required = true, .max_len = 64, .check = check_name,
      .doc = "the SDK name, the same as the file's name" },
    { "supported", RT_CONF_BOOL, T(supported), .def = "true",
      .doc = "false: the SDK is known but not built yet" },
    { "reason", RT_CONF_STR, T(reason), .max_len = 256, .doc = "why not, when supported is false" },
    { "base.image", RT_CONF_STR, T(base_image), .required = true, .max_len = 256,
      .check = check_placeholders, .doc = "the base root filesystem" },
    { "base.python", RT_CONF_STR, T(base_python), .max_len = 64, .check = check_placeholders,
      .doc = "the Python version the base needs" },
    { "base.packages", RT_CONF_STRV, T(base_packages), .max_len = 64, .check = check_name,
      .doc = "Debian packages the base must have" },
    { "build.steps", RT_CONF_LIST, T(build_steps), .max_items = 32, .sub = step_keys,
      .n_sub = ARRAY_SIZE(step_keys), .item_size = sizeof(struct rt_tpl_step),
      .doc = "in order; each one command" },
    { "run.command", RT_CONF_STRV, T(run_command), .max_items = 64, .check = check_placeholders,
      .doc = "the app, a list of arguments" },
    { "run.port", RT_CONF_INT, T(run_port), .required = true, .min = 1, .max = 65535,
      .doc = "the port the app listens on" },
    { "run.use_app_port", RT_CONF_BOOL, T(run_use_app_port), .def = "false",
      .doc = "take the port from the README's app_port" },
    { "run.workdir", RT_CONF_STR, T(run_workdir), .def = "/home/user/app", .check = check_abs_path,
      .doc = "where the repo is checked out, absolute" },
    { "run.uid", RT_CONF_INT, T(run_uid), .def = "1000", .min = 1, .max = 65535,
      .doc = "the user the app runs as, inside" },
    { "run.env", RT_CONF_STRMAP, T(run_env), .max_items = 128, .check_key = check_env_name,
      .check = check_placeholders, .doc = "the environment, NAME: value" },
    { "health.path", RT_CONF_STR, T(health_path), .def = "/", .check = check_url_path,
      .doc = "HTTP path probed until the app answers" },
    { "health.interval", RT_CONF_DURATION, T(health_interval_ms), .def = "2s", .min = 100,
      .max = 60 * 1000, .doc = "time between probes" },
    { "health.timeout", RT_CONF_DURATION, T(health_timeout_ms), .def = "5s", .min = 100,
      .max = 60 * 1000, .doc = "time one probe may take" },
};

#undef T

int rt_template_describe(FILE *out)
{
    int r = rt_conf_describe(template_keys, ARRAY_SIZE(template_keys), out);

    if (r < 0)
        return r;
    if (fprintf(out, "\n| placeholder | given by | value |\n|---|---|---|\n") < 0)
        return -EIO;
    for (size_t i = 0; i < rt_template_n_placeholders; i++)
        if (fprintf(out, "| `${%s}` | %s | %s |\n", rt_template_placeholders[i].name,
                    rt_template_placeholders[i].runtime ? "the runtime" : "the Space",
                    rt_template_placeholders[i].doc) < 0)
            return -EIO;
    return 0;
}

/* --- one template ------------------------------------------------------------------- */

void rt_template_free(struct rt_template *t)
{
    if (!t)
        return;
    rt_conf_done(template_keys, ARRAY_SIZE(template_keys), t);
    free(t->name);
    free(t);
}

void rt_template_freep(struct rt_template **t)
{
    rt_template_free(*t);
    *t = NULL;
}

/* "templates/gradio.yaml" -> "gradio"; NULL when the name is not SDK.yaml. */
static char *name_of(const char *file)
{
    const char *base = strrchr(file, '/');
    size_t l;

    base = base ? base + 1 : file;
    l = strlen(base);
    if (l <= 5 || strcmp(base + l - 5, ".yaml") != 0)
        return NULL;
    return strndup(base, l - 5);
}

int rt_template_parse(const char *file, const char *buf, size_t len, struct rt_template **ret,
                      struct rt_err *err)
{
    _cleanup_(rt_template_freep) struct rt_template *t = NULL;
    _cleanup_(rt_ynode_freep) struct rt_ynode *root = NULL;
    struct rt_conf_ctx ctx = { .file = file, .unknown_is_error = true, .err = err };
    const struct rt_ynode *sdk;
    int r;

    t = calloc(1, sizeof(*t));
    if (!t)
        return rt_err_set(err, ENOMEM, "%s: parse", file);
    t->name = name_of(file);
    if (!t->name || check_name(t->name))
        return rt_err_set(err, EINVAL,
                          "%s: a template's file name must be SDK.yaml "
                          "(a-z, 0-9, -, ., _)",
                          file);
    r = rt_yaml_parse(buf, len, file, 1, &rt_yaml_default_limits, &root, err);
    if (r < 0)
        return r;
    r = rt_conf_bind(template_keys, ARRAY_SIZE(template_keys), root, t, &ctx);
    if (r < 0)
        return r;
    sdk = rt_ynode_get(root, "sdk");
    if (strcmp(t->sdk, t->name) != 0)
        return rt_conf_fail(&ctx, sdk ? sdk->line : 0, "sdk",
                            "expected '%s' (the file's name), got '%s'", t->name, t->sdk);
    if (t->supported && t->run_command.n == 0)
        return rt_conf_fail(&ctx, 0, "run.command", "missing (a supported SDK needs one)");
    if (!t->supported && !t->reason)
        return rt_conf_fail(&ctx, 0, "reason", "missing (say why the SDK is not supported)");
    *ret = TAKE_PTR(t);
    return 0;
}

/* --- the set ------------------------------------------------------------------------ */

void rt_templates_free(struct rt_templates *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++)
        rt_template_free(set->v[i]);
    free(set->v);
    free(set);
}

void rt_templates_freep(struct rt_templates **set)
{
    rt_templates_free(*set);
    *set = NULL;
}

const struct rt_template *rt_templates_find(const struct rt_templates *set, const char *sdk)
{
    for (size_t i = 0; set && sdk && i < set->n; i++)
        if (strcmp(set->v[i]->sdk, sdk) == 0)
            return set->v[i];
    return NULL;
}

static void closedirp(DIR **d)
{
    if (*d)
        (void) closedir(*d);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

static int load_one(int dirfd, const char *dir, const char *name, struct rt_template **ret,
                    struct rt_err *err)
{
    _cleanup_close_ int fd = -1;
    _cleanup_free_ char *buf = NULL;
    char file[4096];
    struct stat st;
    ssize_t n;

    (void) snprintf(file, sizeof(file), "%s/%s", dir, name);
    fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return rt_err_set(err, errno, "open '%s'", file);
    if (fstat(fd, &st) < 0)
        return rt_err_set(err, errno, "stat '%s'", file);
    if (!S_ISREG(st.st_mode))
        return rt_err_set(err, EINVAL, "%s: not a regular file", file);
    buf = malloc(rt_yaml_default_limits.max_bytes + 1);
    if (!buf)
        return rt_err_set(err, ENOMEM, "read '%s'", file);
    n = rt_read_all(fd, buf, rt_yaml_default_limits.max_bytes + 1);
    if (n < 0)
        return rt_err_set(err, (int) -n, "read '%s'", file);
    return rt_template_parse(file, buf, (size_t) n, ret, err);
}

int rt_templates_load(const char *dir, struct rt_templates **ret, struct rt_err *err)
{
    _cleanup_(rt_templates_freep) struct rt_templates *set = NULL;
    _cleanup_(closedirp) DIR *d = NULL;
    struct rt_strv names = { 0 };
    struct dirent *e;
    int r = 0;

    d = opendir(dir); /* glibc opens directories O_CLOEXEC */
    if (!d)
        return rt_err_set(err, errno, "open templates folder '%s'", dir);
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);

        if (e->d_name[0] == '.' || l <= 5 || strcmp(e->d_name + l - 5, ".yaml") != 0)
            continue;
        if (names.n >= RT_TEMPLATES_MAX) {
            rt_strv_done(&names);
            return rt_err_set(err, E2BIG, "%s: more than %d templates", dir, RT_TEMPLATES_MAX);
        }
        if (rt_strv_push(&names, e->d_name) < 0) {
            rt_strv_done(&names);
            return rt_err_set(err, ENOMEM, "read templates folder '%s'", dir);
        }
    }
    if (names.n)
        qsort(names.v, names.n, sizeof(*names.v), cmp_str);
    set = calloc(1, sizeof(*set));
    if (set && names.n)
        set->v = calloc(names.n, sizeof(*set->v));
    if (!set || (names.n && !set->v)) {
        rt_strv_done(&names);
        return rt_err_set(err, ENOMEM, "read templates folder '%s'", dir);
    }
    for (size_t i = 0; i < names.n && r == 0; i++) {
        r = load_one(dirfd(d), dir, names.v[i], &set->v[set->n], err);
        if (r == 0)
            set->n++;
    }
    rt_strv_done(&names);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(set);
    return 0;
}

/* --- rendering ---------------------------------------------------------------------- */

#define RT_EXPAND_MAX (64 * 1024)

int rt_template_expand(const char *in, const struct rt_strmap *vars, char **ret, struct rt_err *err)
{
    _cleanup_free_ char *out = NULL;
    size_t o = 0, cap = strlen(in) + 1;
    const char *p = in;

    out = malloc(cap);
    if (!out)
        return rt_err_set(err, ENOMEM, "expand '%s'", in);
    while (*p) {
        const char *add = p, *end;
        size_t alen = 1;
        char q[200];

        if (*p == '$' && p[1] == '$') {
            p += 2;
        } else if (*p == '$') {
            char name[128];

            end = p[1] == '{' ? strchr(p + 2, '}') : NULL;
            if (!end || (size_t) (end - p - 2) >= sizeof(name))
                return rt_err_set(err, EINVAL, "expand '%s': '$' must start ${NAME} or be '$$'",
                                  rt_conf_quote(in, strlen(in), q, sizeof(q)));
            memcpy(name, p + 2, (size_t) (end - p - 2));
            name[end - p - 2] = '\0';
            add = rt_strmap_get(vars, name);
            if (!add)
                return rt_err_set(err, EINVAL, "placeholder '${%s}' has no value",
                                  rt_conf_quote(name, strlen(name), q, sizeof(q)));
            alen = strlen(add);
            p = end + 1;
        } else {
            p++;
        }
        if (o + alen + 1 > RT_EXPAND_MAX)
            return rt_err_set(err, E2BIG, "expand: result longer than %d bytes", RT_EXPAND_MAX);
        if (o + alen + 1 > cap) {
            char *n;

            cap = (o + alen + 1) * 2;
            n = realloc(out, cap);
            if (!n)
                return rt_err_set(err, ENOMEM, "expand");
            out = n;
        }
        memcpy(out + o, add, alen);
        o += alen;
    }
    out[o] = '\0';
    *ret = TAKE_PTR(out);
    return 0;
}

static int split_id(const char *id, char *owner, size_t olen, const char **ret_name)
{
    const char *slash = id ? strchr(id, '/') : NULL;

    if (!slash || slash == id || !slash[1] || strchr(slash + 1, '/') ||
        (size_t) (slash - id) >= olen)
        return -EINVAL;
    memcpy(owner, id, (size_t) (slash - id));
    owner[slash - id] = '\0';
    *ret_name = slash + 1;
    return 0;
}

static uint16_t port_of(const struct rt_template *t, const struct rt_spaceconfig *cfg)
{
    return (uint16_t) (t->run_use_app_port ? cfg->app_port : t->run_port);
}

int rt_template_vars(const struct rt_template *t, const struct rt_render_in *in,
                     struct rt_strmap *ret_vars, struct rt_err *err)
{
    const struct rt_spaceconfig *cfg = in->cfg;
    struct rt_strmap vars = { 0 };
    char owner[256], port[8], dir[256];
    const char *name, *slash;
    int r = 0;

    if (split_id(in->space_id, owner, sizeof(owner), &name) < 0)
        return rt_err_set(err, EINVAL, "render '%s': the space id must be OWNER/NAME",
                          in->space_id ? in->space_id : "");
    if (!in->host || !*in->host)
        return rt_err_set(err, EINVAL, "render '%s': no host", in->space_id);
    (void) snprintf(port, sizeof(port), "%u", port_of(t, cfg));
    slash = cfg->app_file ? strrchr(cfg->app_file, '/') : NULL;
    (void) snprintf(dir, sizeof(dir), "%.*s", slash ? (int) (slash - cfg->app_file) : 1,
                    slash ? cfg->app_file : ".");
    {
        const char *const computed[][2] = {
            { "SPACE_ID", in->space_id },
            { "SPACE_HOST", in->host },
            { "SPACE_AUTHOR_NAME", owner },
            { "SPACE_REPO_NAME", name },
            { "SPACE_TITLE", cfg->title ? cfg->title : name },
            { "SDK", rt_sdk_name(cfg->sdk) },
            { "SDK_VERSION", cfg->sdk_version ? cfg->sdk_version : "" },
            { "PYTHON_VERSION", cfg->python_version ? cfg->python_version : "" },
            { "APP_FILE", cfg->app_file ? cfg->app_file : "" },
            { "APP_FILE_DIR", dir },
            { "APP_DIR", t->run_workdir ? t->run_workdir : "" },
            { "APP_BUILD_COMMAND", cfg->app_build_command ? cfg->app_build_command : "" },
            { "PORT", port },
        };
        for (size_t i = 0; i < ARRAY_SIZE(computed) && r == 0; i++)
            r = rt_strmap_push(&vars, computed[i][0], computed[i][1]);
    }
    for (size_t i = 0; in->extra && i < in->extra->n && r == 0; i++) {
        const struct rt_placeholder *ph =
            find_placeholder(in->extra->keys[i], strlen(in->extra->keys[i]));
        if (ph && ph->runtime && !rt_strmap_get(&vars, ph->name))
            r = rt_strmap_push(&vars, ph->name, in->extra->values[i]);
    }
    if (r < 0) {
        rt_strmap_done(&vars);
        return rt_err_set(err, ENOMEM, "render '%s'", in->space_id);
    }
    *ret_vars = vars;
    return 0;
}

void rt_run_spec_free(struct rt_run_spec *s)
{
    if (!s)
        return;
    rt_strv_done(&s->argv);
    rt_strv_done(&s->env);
    free(s->workdir);
    free(s->health_path);
    free(s);
}

void rt_run_spec_freep(struct rt_run_spec **s)
{
    rt_run_spec_free(*s);
    *s = NULL;
}

static void strmap_donep(struct rt_strmap *m)
{
    rt_strmap_done(m);
}

static int push_expanded(struct rt_strv *out, const char *prefix, const char *in,
                         const struct rt_strmap *vars, struct rt_err *err)
{
    _cleanup_free_ char *val = NULL, *all = NULL;
    int r = rt_template_expand(in, vars, &val, err);

    if (r < 0)
        return r;
    if (prefix && asprintf(&all, "%s=%s", prefix, val) < 0) {
        all = NULL;
        return rt_err_set(err, ENOMEM, "render");
    }
    if (rt_strv_push(out, all ? all : val) < 0)
        return rt_err_set(err, ENOMEM, "render");
    return 0;
}

static int check_renderable(const struct rt_template *t, const struct rt_render_in *in,
                            struct rt_err *err)
{
    if (!t->supported)
        return rt_err_set(err, EOPNOTSUPP, "sdk '%s' is not supported: %s", t->sdk,
                          t->reason ? t->reason : "no reason given");
    if (!in->cfg)
        return rt_err_set(err, EINVAL, "render '%s': no config", t->sdk);
    return 0;
}

int rt_template_render_run(const struct rt_template *t, const struct rt_render_in *in,
                           struct rt_run_spec **ret, struct rt_err *err)
{
    _cleanup_(rt_run_spec_freep) struct rt_run_spec *s = NULL;
    _cleanup_(strmap_donep) struct rt_strmap vars = { 0 };
    int r;

    r = check_renderable(t, in, err);
    if (r < 0)
        return r;
    r = rt_template_vars(t, in, &vars, err);
    if (r < 0)
        return r;
    s = calloc(1, sizeof(*s));
    if (!s)
        return rt_err_set(err, ENOMEM, "render '%s'", in->space_id);
    for (size_t i = 0; i < t->run_command.n; i++) {
        r = push_expanded(&s->argv, NULL, t->run_command.v[i], &vars, err);
        if (r < 0)
            return rt_err_wrap(err, "render run.command of '%s'", in->space_id);
    }
    for (size_t i = 0; i < t->run_env.n; i++) {
        r = push_expanded(&s->env, t->run_env.keys[i], t->run_env.values[i], &vars, err);
        if (r < 0)
            return rt_err_wrap(err, "render run.env.%s of '%s'", t->run_env.keys[i], in->space_id);
    }
    s->port = port_of(t, in->cfg);
    s->uid = (uint32_t) t->run_uid;
    s->workdir = strdup(t->run_workdir);
    s->health_path = strdup(t->health_path);
    if (!s->workdir || !s->health_path)
        return rt_err_set(err, ENOMEM, "render '%s'", in->space_id);
    s->health_interval_ms = t->health_interval_ms;
    s->health_timeout_ms = t->health_timeout_ms;
    s->startup_timeout_ms = in->cfg->startup_duration_timeout_ms;
    *ret = TAKE_PTR(s);
    return 0;
}

void rt_build_plan_free(struct rt_build_plan *p)
{
    if (!p)
        return;
    free(p->base_image);
    free(p->python);
    rt_strv_done(&p->packages);
    for (size_t i = 0; i < p->n_steps; i++) {
        free(p->steps[i].name);
        rt_strv_done(&p->steps[i].argv);
    }
    free(p->steps);
    free(p);
}

void rt_build_plan_freep(struct rt_build_plan **p)
{
    rt_build_plan_free(*p);
    *p = NULL;
}

static bool step_applies(const struct rt_tpl_step *st, const struct rt_strmap *vars,
                         rt_repo_has_fn has, void *userdata)
{
    const char *v;

    if (st->if_exists && !(has && has(st->if_exists, userdata)))
        return false;
    if (st->if_set && (!(v = rt_strmap_get(vars, st->if_set)) || !*v))
        return false;
    if (st->unless_set && (v = rt_strmap_get(vars, st->unless_set)) && *v)
        return false;
    return true;
}

int rt_template_render_build(const struct rt_template *t, const struct rt_render_in *in,
                             rt_repo_has_fn has, void *userdata, struct rt_build_plan **ret,
                             struct rt_err *err)
{
    _cleanup_(rt_build_plan_freep) struct rt_build_plan *p = NULL;
    _cleanup_(strmap_donep) struct rt_strmap vars = { 0 };
    const struct rt_tpl_step *steps = t->build_steps.items;
    int r;

    r = check_renderable(t, in, err);
    if (r < 0)
        return r;
    r = rt_template_vars(t, in, &vars, err);
    if (r < 0)
        return r;
    p = calloc(1, sizeof(*p));
    if (!p || (t->build_steps.n && !(p->steps = calloc(t->build_steps.n, sizeof(*p->steps)))))
        return rt_err_set(err, ENOMEM, "render build of '%s'", in->space_id);
    r = rt_template_expand(t->base_image, &vars, &p->base_image, err);
    if (r == 0 && t->base_python)
        r = rt_template_expand(t->base_python, &vars, &p->python, err);
    for (size_t i = 0; i < t->base_packages.n && r == 0; i++)
        if (rt_strv_push(&p->packages, t->base_packages.v[i]) < 0)
            r = rt_err_set(err, ENOMEM, "render build of '%s'", in->space_id);
    if (r < 0)
        return r;
    for (size_t i = 0; i < t->build_steps.n; i++) {
        struct rt_build_cmd *c = &p->steps[p->n_steps];

        if (!step_applies(&steps[i], &vars, has, userdata))
            continue;
        p->n_steps++;
        c->root = steps[i].root;
        if (!(c->name = strdup(steps[i].name)))
            return rt_err_set(err, ENOMEM, "render build of '%s'", in->space_id);
        for (size_t j = 0; j < steps[i].run.n; j++) {
            r = push_expanded(&c->argv, NULL, steps[i].run.v[j], &vars, err);
            if (r < 0)
                return rt_err_wrap(err, "render build step '%s' of '%s'", steps[i].name,
                                   in->space_id);
        }
    }
    *ret = TAKE_PTR(p);
    return 0;
}
