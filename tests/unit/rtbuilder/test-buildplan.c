/* Unit tests for runtimed/buildplan.c: the operator's pip settings (runtimed config over
 * the PIP_* environment over pip.conf), the nearest python3.X, shell quoting, and the
 * script the real templates render to. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tap.h"
#include "runtimed/buildplan.h"
#include "runtimed/config.h"
#include "runtimed/template.h"
#include "spawn.h"

static char tmp[PATH_MAX];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");
    if (!f)
        abort();
    fputs(text, f);
    fclose(f);
}

static void test_pip_settings(void)
{
    struct rt_config c;
    struct rt_pip_settings p;
    char conf[PATH_MAX + 16];

    (void) snprintf(conf, sizeof(conf), "%s/pip.conf", tmp);
    write_file(conf, "# a comment\n[global]\nindex-url = https://mirror.example/simple\n"
                     "extra-index-url =\n    https://a.example/simple\n"
                     "    https://b.example/simple\ntrusted-host = mirror.example\n"
                     "[install]\nfind-links = /srv/wheels\n[other]\ncert = /ignored\n");
    rt_config_defaults(&c);
    unsetenv("PIP_INDEX_URL");
    unsetenv("PIP_EXTRA_INDEX_URL");
    unsetenv("PIP_TRUSTED_HOST");
    unsetenv("PIP_FIND_LINKS");
    unsetenv("PIP_CERT");
    unsetenv("PIP_PROXY");
    rt_pip_settings_load(&c, conf, &p);
    is_str(p.index_url, "https://mirror.example/simple", "index-url from pip.conf");
    is_str(p.extra_index_url, "https://a.example/simple https://b.example/simple",
           "a continued list is joined");
    is_str(p.trusted_host, "mirror.example", "trusted-host");
    is_str(p.find_links, "/srv/wheels", "[install] counts too");
    is_str(p.cert, "", "other sections do not");

    setenv("PIP_INDEX_URL", "https://env.example/simple", 1);
    rt_pip_settings_load(&c, conf, &p);
    is_str(p.index_url, "https://env.example/simple", "the environment wins over pip.conf");
    (void) snprintf(c.pip_index_url, sizeof(c.pip_index_url), "https://conf.example/simple");
    rt_pip_settings_load(&c, conf, &p);
    is_str(p.index_url, "https://conf.example/simple", "runtimed's config wins over both");
    unsetenv("PIP_INDEX_URL");
}

static void test_python_pick(void)
{
    char root[PATH_MAX + 16], bin[PATH_MAX + 32], py[32];

    (void) snprintf(root, sizeof(root), "%s/root", tmp);
    (void) snprintf(bin, sizeof(bin), "%s/usr", root);
    mkdir(root, 0755);
    mkdir(bin, 0755);
    (void) snprintf(bin, sizeof(bin), "%s/usr/bin", root);
    mkdir(bin, 0755);
    is_int(rt_python_pick(root, "3.10", py, sizeof(py)), -ENOENT, "no python3.X at all");
    (void) snprintf(bin, sizeof(bin), "%s/usr/bin/python3.11", root);
    write_file(bin, "");
    (void) snprintf(bin, sizeof(bin), "%s/usr/bin/python3.8", root);
    write_file(bin, "");
    (void) snprintf(bin, sizeof(bin), "%s/usr/bin/python3.11-config", root);
    write_file(bin, "");
    is_int(rt_python_pick(root, "3.11", py, sizeof(py)), 0, "3.11 is there");
    is_str(py, "python3.11", "and picked");
    is_int(rt_python_pick(root, "3.10.4", py, sizeof(py)), 1, "3.10 is not: says so");
    is_str(py, "python3.11", "the nearest, the newer on a tie");
    is_int(rt_python_pick(root, "3.7", py, sizeof(py)), 1, "3.7 is not");
    is_str(py, "python3.8", "the nearest");
    is_int(rt_python_pick(root, NULL, py, sizeof(py)), 0, "no version asked");
    is_str(py, "python3.11", "the newest");
}

static void test_quote(void)
{
    char *q = rt_sh_quote("it's $HOME `x`");

    is_str(q, "'it'\\''s $HOME `x`'", "single quotes, a quote escaped");
    free(q);
}

static bool has_requirements(const char *path, void *userdata)
{
    return strcmp(path, "requirements.txt") == 0;
}

static void test_render(void)
{
    struct rt_templates *set = NULL;
    struct rt_spaceconfig *cfg = NULL;
    struct rt_recipe r = { 0 };
    struct rt_pip_settings pip = { 0 };
    struct rt_config c;
    struct rt_err err = { 0 };
    static const char readme[] = "---\nsdk: gradio\nsdk_version: 6.31.0\n---\n";
    static const char readme_static[] = "---\nsdk: static\n---\n";

    rt_config_defaults(&c);
    (void) snprintf(c.templates_dir, sizeof(c.templates_dir), "templates");
    (void) snprintf(pip.cert, sizeof(pip.cert), "/etc/hostname");
    if (rt_recipe_templates_load(&c, &set, &err) < 0) {
        ok(0, "load templates: %s", err.msg);
        return;
    }
    is_int(rt_spaceconfig_parse(readme, sizeof(readme) - 1, &cfg, &err), 0, "parse");
    {
        struct rt_recipe_in in = { .templates = set,
                                   .cfg = cfg,
                                   .space_id = "a/b",
                                   .host = "a-b.localhost",
                                   .has = has_requirements,
                                   .pip = &pip };
        is_int(rt_recipe_render(&in, &r, &err), 0, "render gradio");
    }
    ok(r.deps_script && strstr(r.deps_script, "'-m' 'venv' '/home/user/.venv'"),
       "the venv is the layer");
    ok(r.deps_script && strstr(r.deps_script, "'gradio[oauth]==6.31.0'"), "the pinned SDK");
    ok(r.deps_script && strstr(r.deps_script, "'install' '-r' 'requirements.txt'"),
       "requirements, with the owner's pip cache");
    ok(r.deps_script && !strstr(r.deps_script, "pre-requirements"), "absent files: no step");
    ok(r.key_extra && strstr(r.key_extra, "sdk_version=6.31.0"), "the key has the version");
    ok(r.ro_binds.n == 1 && strcmp(r.ro_binds.v[0], "/etc/hostname") == 0,
       "the CA bundle is bound into the build");
    rt_recipe_done(&r);
    rt_spaceconfig_free(cfg);
    cfg = NULL;

    is_int(rt_spaceconfig_parse(readme_static, sizeof(readme_static) - 1, &cfg, &err), 0,
           "parse static");
    {
        struct rt_recipe_in in = { .templates = set,
                                   .cfg = cfg,
                                   .space_id = "a/b",
                                   .host = "a-b.localhost",
                                   .has = has_requirements };
        is_int(rt_recipe_render(&in, &r, &err), 0, "render static");
    }
    ok(!r.deps_script, "static Spaces have no dependency layer");
    rt_recipe_done(&r);
    rt_spaceconfig_free(cfg);
    rt_recipe_templates_free(set);
}

int main(void)
{
    struct rt_err err = { 0 };

    tap_start();
    (void) snprintf(tmp, sizeof(tmp), "/tmp/test-buildplan-XXXXXX");
    if (!mkdtemp(tmp))
        return 1;
    test_pip_settings();
    test_python_pick();
    test_quote();
    test_render();
    (void) rt_run_capture((const char *const[]){ "rm", "-rf", "--", tmp, NULL }, NULL, NULL, 0,
                          NULL, 0, &err);
    return tap_done();
}
