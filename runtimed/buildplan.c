#include "buildplan.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "template.h"
#include "banned.h"

/* --- templates --------------------------------------------------------------------------- */

int rt_recipe_templates_load(const struct rt_config *cfg, struct rt_templates **ret,
                             struct rt_err *err)
{
    char exe[PATH_MAX], dir[PATH_MAX + 16];
    ssize_t n;
    struct stat st;

    if (cfg->templates_dir[0])
        return rt_templates_load(cfg->templates_dir, ret, err);
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        char *slash;
        exe[n] = '\0';
        slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            (void) snprintf(dir, sizeof(dir), "%s/../templates", exe);
            if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
                return rt_templates_load(dir, ret, err);
        }
    }
    return rt_templates_load(RT_TEMPLATES_DIR, ret, err);
}

void rt_recipe_templates_free(struct rt_templates *set)
{
    rt_templates_free(set);
}

/* --- the operator's package index ----------------------------------------------------- */

static void set_if_empty(char *dst, size_t len, const char *v)
{
    if (!dst[0] && v && *v)
        (void) snprintf(dst, len, "%s", v);
}

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

/* pip.conf is INI: "key = value", continuation lines indented (a list of URLs). */
static void read_pip_conf(const char *path, struct rt_pip_settings *p)
{
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    char line[1024], section[64] = "", key[64] = "", val[1024] = "";

    if (!f)
        return;
    for (bool more = true; more;) {
        bool cont;
        more = fgets(line, sizeof(line), f) != NULL;
        cont = more && (line[0] == ' ' || line[0] == '\t') && trim(line)[0];
        if (cont && key[0]) {
            size_t n = strlen(val);
            (void) snprintf(val + n, sizeof(val) - n, "%s%s", n ? " " : "", trim(line));
            continue;
        }
        if (key[0] && (strcmp(section, "global") == 0 || strcmp(section, "install") == 0)) {
            if (strcmp(key, "index-url") == 0)
                set_if_empty(p->index_url, sizeof(p->index_url), val);
            else if (strcmp(key, "extra-index-url") == 0)
                set_if_empty(p->extra_index_url, sizeof(p->extra_index_url), val);
            else if (strcmp(key, "trusted-host") == 0)
                set_if_empty(p->trusted_host, sizeof(p->trusted_host), val);
            else if (strcmp(key, "find-links") == 0)
                set_if_empty(p->find_links, sizeof(p->find_links), val);
            else if (strcmp(key, "cert") == 0)
                set_if_empty(p->cert, sizeof(p->cert), val);
            else if (strcmp(key, "proxy") == 0)
                set_if_empty(p->proxy, sizeof(p->proxy), val);
        }
        key[0] = val[0] = '\0';
        if (!more)
            break;
        {
            char *t = trim(line), *eq;
            if (t[0] == '#' || t[0] == ';' || !t[0])
                continue;
            if (t[0] == '[') {
                (void) snprintf(section, sizeof(section), "%.*s", (int) strcspn(t + 1, "]"), t + 1);
                continue;
            }
            eq = strchr(t, '=');
            if (!eq)
                continue;
            *eq = '\0';
            (void) snprintf(key, sizeof(key), "%s", trim(t));
            (void) snprintf(val, sizeof(val), "%s", trim(eq + 1));
        }
    }
}

void rt_pip_settings_load(const struct rt_config *cfg, const char *pip_conf,
                          struct rt_pip_settings *ret)
{
    struct rt_pip_settings p = { 0 };

    if (cfg) {
        set_if_empty(p.index_url, sizeof(p.index_url), cfg->pip_index_url);
        set_if_empty(p.extra_index_url, sizeof(p.extra_index_url), cfg->pip_extra_index_url);
        set_if_empty(p.trusted_host, sizeof(p.trusted_host), cfg->pip_trusted_host);
        set_if_empty(p.find_links, sizeof(p.find_links), cfg->pip_find_links);
        set_if_empty(p.cert, sizeof(p.cert), cfg->pip_cert);
        set_if_empty(p.proxy, sizeof(p.proxy), cfg->pip_proxy);
    }
    set_if_empty(p.index_url, sizeof(p.index_url), getenv("PIP_INDEX_URL"));
    set_if_empty(p.extra_index_url, sizeof(p.extra_index_url), getenv("PIP_EXTRA_INDEX_URL"));
    set_if_empty(p.trusted_host, sizeof(p.trusted_host), getenv("PIP_TRUSTED_HOST"));
    set_if_empty(p.find_links, sizeof(p.find_links), getenv("PIP_FIND_LINKS"));
    set_if_empty(p.cert, sizeof(p.cert), getenv("PIP_CERT"));
    set_if_empty(p.proxy, sizeof(p.proxy), getenv("PIP_PROXY"));
    read_pip_conf(pip_conf ? pip_conf : "/etc/pip.conf", &p);
    *ret = p;
}

/* --- python ----------------------------------------------------------------------------- */

static void closedirp(DIR **d)
{
    if (*d)
        (void) closedir(*d);
}

static int parse_minor(const char *v)
{
    char *end;
    long m;

    if (strncmp(v, "3.", 2) != 0)
        return -1;
    m = strtol(v + 2, &end, 10);
    if (end == v + 2 || (*end && *end != '.') || m < 0 || m > 99)
        return -1;
    return (int) m;
}

int rt_python_pick(const char *rootfs, const char *asked, char *ret, size_t len)
{
    char dir[PATH_MAX];
    _cleanup_(closedirp) DIR *d = NULL;
    struct dirent *e;
    int want = asked && *asked ? parse_minor(asked) : -1, best = -1;

    (void) snprintf(dir, sizeof(dir), "%s/usr/bin", rootfs && *rootfs ? rootfs : "");
    d = opendir(dir);
    if (!d)
        return -ENOENT;
    while ((e = readdir(d))) {
        char *end;
        long m;

        if (strncmp(e->d_name, "python3.", 8) != 0)
            continue;
        m = strtol(e->d_name + 8, &end, 10);
        if (end == e->d_name + 8 || *end || m < 0 || m > 99)
            continue;
        /* Nearest to the asked one; on a tie, the newer.  No asked version: the newest. */
        if (best < 0 || (want < 0 && m > best) ||
            (want >= 0 && (labs(m - want) < labs(best - want) ||
                           (labs(m - want) == labs(best - want) && m > best))))
            best = (int) m;
    }
    if (best < 0)
        return -ENOENT;
    (void) snprintf(ret, len, "python3.%d", best);
    return want >= 0 && want != best ? 1 : 0;
}

/* --- the script --------------------------------------------------------------------------- */

char *rt_sh_quote(const char *s)
{
    size_t n = 2;
    char *out, *o;

    for (const char *p = s; *p; p++)
        n += *p == '\'' ? 4 : 1;
    out = malloc(n + 1);
    if (!out)
        return NULL;
    o = out;
    *o++ = '\'';
    for (const char *p = s; *p; p++) {
        if (*p == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        } else {
            *o++ = *p;
        }
    }
    *o++ = '\'';
    *o = '\0';
    return out;
}

void rt_recipe_done(struct rt_recipe *r)
{
    free(r->deps_script);
    free(r->key_extra);
    rt_strv_done(&r->key_files);
    rt_strv_done(&r->env);
    rt_strv_done(&r->ro_binds);
    rt_strv_done(&r->notes);
    memset(r, 0, sizeof(*r));
}

static void recipe_donep(struct rt_recipe *r)
{
    rt_recipe_done(r);
}

static int push_env(struct rt_recipe *r, const char *k, const char *v)
{
    char buf[1400];

    if (!v || !*v)
        return 0;
    (void) snprintf(buf, sizeof(buf), "%s=%s", k, v);
    return rt_strv_push(&r->env, buf);
}

/* A local folder or file:// URL in a pip setting has to be visible in the build. */
static int push_local_paths(struct rt_recipe *r, const char *list)
{
    char buf[1024], *save = NULL;

    (void) snprintf(buf, sizeof(buf), "%s", list);
    for (char *w = strtok_r(buf, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
        const char *path = strncmp(w, "file://", 7) == 0 ? w + 7 : w;
        struct stat st;

        if (path[0] != '/' || strchr(path, ':') || stat(path, &st) < 0)
            continue;
        if (r->ro_binds.n >= RT_BUILDPLAN_MAX_BINDS)
            break;
        if (rt_strv_push(&r->ro_binds, path) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int pip_env(struct rt_recipe *r, const struct rt_pip_settings *p)
{
    if (!p)
        return 0;
    if (push_env(r, "PIP_INDEX_URL", p->index_url) < 0 ||
        push_env(r, "PIP_EXTRA_INDEX_URL", p->extra_index_url) < 0 ||
        push_env(r, "PIP_TRUSTED_HOST", p->trusted_host) < 0 ||
        push_env(r, "PIP_FIND_LINKS", p->find_links) < 0 || push_env(r, "PIP_CERT", p->cert) < 0 ||
        push_env(r, "PIP_PROXY", p->proxy) < 0 || push_env(r, "SSL_CERT_FILE", p->cert) < 0)
        return -ENOMEM;
    if (push_local_paths(r, p->index_url) < 0 || push_local_paths(r, p->extra_index_url) < 0 ||
        push_local_paths(r, p->find_links) < 0 || push_local_paths(r, p->cert) < 0)
        return -ENOMEM;
    return 0;
}

static int write_step(FILE *f, const struct rt_build_cmd *c, const char *python)
{
    _cleanup_free_ char *name = rt_sh_quote(c->name);

    if (!name)
        return -ENOMEM;
    fprintf(f, "echo '--> '%s\n", name);
    for (size_t i = 0; i < c->argv.n; i++) {
        /* The templates say python3; the base's nearest python3.X is what runs. */
        const char *a = i == 0 && strcmp(c->argv.v[i], "python3") == 0 ? python : c->argv.v[i];
        _cleanup_free_ char *q = NULL;
        /* The Hub's recipe keeps pip's cache out of its image layers; here the cache is
         * the owner's own folder outside the layer, and it is what makes a second Space
         * of the same owner build fast. */
        if (i > 0 && strcmp(a, "--no-cache-dir") == 0)
            continue;
        if (!(q = rt_sh_quote(a)))
            return -ENOMEM;
        fprintf(f, "%s%s", i ? " " : "", q);
    }
    fputc('\n', f);
    return 0;
}

int rt_recipe_render(const struct rt_recipe_in *in, struct rt_recipe *ret, struct rt_err *err)
{
    _cleanup_(recipe_donep) struct rt_recipe r = { 0 };
    _cleanup_(rt_build_plan_freep) struct rt_build_plan *plan = NULL;
    struct rt_render_in rin = { .cfg = in->cfg, .space_id = in->space_id, .host = in->host };
    _cleanup_free_ char *script = NULL;
    size_t script_len = 0;
    _cleanup_fclose_ FILE *f = NULL;
    char python[32] = "python3", note[256];
    const char *asked = in->cfg->python_version;
    bool needs_python = false;
    const struct rt_template *tpl = rt_templates_find(in->templates, rt_sdk_name(in->cfg->sdk));
    int rc;

    if (!tpl)
        return rt_err_set(err, ENOENT, "sdk '%s' has no template on this node",
                          rt_sdk_name(in->cfg->sdk));
    rc = rt_template_render_build(tpl, &rin, in->has, in->userdata, &plan, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < plan->n_steps; i++)
        needs_python = needs_python ||
                       (plan->steps[i].argv.n && strcmp(plan->steps[i].argv.v[0], "python3") == 0);
    /* Static Spaces: no dependency layer.  Their app_build_command would have to write
     * into the app files, which the build mounts read-only. */
    if (!needs_python) {
        for (size_t i = 0; i < plan->n_steps; i++) {
            (void) snprintf(note, sizeof(note), "build step '%s' is not run on this node (skipped)",
                            plan->steps[i].name);
            if (rt_strv_push(&r.notes, note) < 0)
                return rt_err_set(err, ENOMEM, "render the build");
        }
        *ret = r;
        memset(&r, 0, sizeof(r));
        return 0;
    }
    rc = rt_python_pick(in->rootfs, asked, python, sizeof(python));
    if (rc < 0)
        return rt_err_set(err, ENOENT, "the base image has no python3.X");
    if (rc == 1) {
        (void) snprintf(note, sizeof(note), "python_version %s asked, using %s", asked,
                        python + strlen("python"));
        if (rt_strv_push(&r.notes, note) < 0)
            return rt_err_set(err, ENOMEM, "render the build");
    }

    f = open_memstream(&script, &script_len);
    if (!f)
        return rt_err_set(err, ENOMEM, "render the build");
    for (size_t i = 0; i < plan->n_steps; i++) {
        const struct rt_build_cmd *c = &plan->steps[i];
        /* Builds run as the unprivileged Space user: system packages need an image
         * that has them (rootfs), never root inside a build. */
        if (c->root) {
            (void) snprintf(note, sizeof(note),
                            "build step '%s' needs root: not run here (use a base image "
                            "that has these packages)",
                            c->name);
            if (rt_strv_push(&r.notes, note) < 0)
                return rt_err_set(err, ENOMEM, "render the build");
            continue;
        }
        if (write_step(f, c, python) < 0)
            return rt_err_set(err, ENOMEM, "render the build");
    }
    if (fflush(f) != 0 || ferror(f))
        return rt_err_set(err, ENOMEM, "render the build");
    f = (fclose(f), NULL);
    r.deps_script = TAKE_PTR(script);

    if (rt_strv_push(&r.key_files, "pre-requirements.txt") < 0 ||
        rt_strv_push(&r.key_files, "requirements.txt") < 0 ||
        rt_strv_push(&r.key_files, "packages.txt") < 0 || pip_env(&r, in->pip) < 0)
        return rt_err_set(err, ENOMEM, "render the build");
    {
        const struct rt_pip_settings *p = in->pip;
        if (asprintf(&r.key_extra,
                     "template=%s\nsdk_version=%s\npython=%s\nrootfs=%s\nindex=%s\nextra=%s\n"
                     "links=%s\n",
                     tpl->name, in->cfg->sdk_version ? in->cfg->sdk_version : "", python,
                     in->rootfs ? in->rootfs : "", p ? p->index_url : "",
                     p ? p->extra_index_url : "", p ? p->find_links : "") < 0) {
            r.key_extra = NULL;
            return rt_err_set(err, ENOMEM, "render the build");
        }
    }
    *ret = r;
    memset(&r, 0, sizeof(r));
    return 0;
}
