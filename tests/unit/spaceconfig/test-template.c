/* Unit tests for runtimed/template.c: the real templates/ load and render; each error
 * message of a bad template; placeholders.  Runs from the repository root. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tap.h"
#include "cleanup.h"
#include "runtimed/template.h"

static struct rt_err err;

static struct rt_spaceconfig *config(const char *readme)
{
    struct rt_spaceconfig *cfg = NULL;

    if (rt_spaceconfig_parse(readme, strlen(readme), &cfg, &err) < 0) {
        printf("# config: %s\n", err.msg);
        abort();
    }
    return cfg;
}

static bool strv_has(const struct rt_strv *v, const char *s)
{
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->v[i], s) == 0)
            return true;
    return false;
}

static const struct rt_strmap *runtime_extra(void)
{
    static struct rt_strmap m;

    if (!m.n &&
        (rt_strmap_push(&m, "ACCELERATOR", "none") < 0 ||
         rt_strmap_push(&m, "CPU_CORES", "2") < 0 || rt_strmap_push(&m, "MEMORY", "16Gi") < 0 ||
         rt_strmap_push(&m, "SPACE_CREATOR_USER_ID", "u1") < 0 ||
         rt_strmap_push(&m, "SPACE_ID", "evil/override") < 0))
        abort();
    return &m;
}

static void test_real_templates(void)
{
    _cleanup_(rt_templates_freep) struct rt_templates *set = NULL;
    const struct rt_template *g, *s, *st, *d;
    int r = rt_templates_load(RT_TEMPLATES_DIR, &set, &err);

    is_int(r, 0, "templates/ loads");
    if (r < 0) {
        printf("#   %s\n", err.msg);
        return;
    }
    is_int(set->n, 4, "four templates");
    g = rt_templates_find(set, "gradio");
    s = rt_templates_find(set, "streamlit");
    st = rt_templates_find(set, "static");
    d = rt_templates_find(set, "docker");
    ok(g && s && st && d, "gradio, streamlit, static and docker are there");
    ok(!rt_templates_find(set, "gradoo") && !rt_templates_find(set, NULL), "lookup misses");
    if (!(g && s && st && d))
        return;
    is_int(g->run_port, 7860, "gradio port 7860");
    is_int(s->run_port, 8501, "streamlit port 8501");
    ok(g->supported && s->supported && st->supported, "three supported");
    ok(!d->supported && d->reason && d->run_use_app_port, "docker holds the place");
    is_str(g->health_path, "/", "health path");
    is_int(g->health_interval_ms, 2000, "health interval");
    is_int(g->health_timeout_ms, 5000, "health timeout");
    is_str(g->run_workdir, "/home/user/app", "workdir");
    is_int(g->run_uid, 1000, "uid 1000");
    ok(g->build_steps.n >= 5, "gradio has build steps");
    is_str(rt_strmap_get(&g->run_env, "SYSTEM"), "spaces", "SYSTEM=spaces");
    is_str(rt_strmap_get(&g->run_env, "GRADIO_SERVER_NAME"), "0.0.0.0", "GRADIO_SERVER_NAME");
    is_str(g->base_python, "${PYTHON_VERSION}", "placeholders are kept until rendering");
}

static void test_render_gradio(void)
{
    _cleanup_(rt_templates_freep) struct rt_templates *set = NULL;
    _cleanup_(rt_spaceconfig_freep) struct rt_spaceconfig *cfg = NULL;
    _cleanup_(rt_run_spec_freep) struct rt_run_spec *run = NULL;
    _cleanup_(rt_build_plan_freep) struct rt_build_plan *plan = NULL;
    const struct rt_template *g;
    struct rt_render_in in;
    int r;

    if (rt_templates_load(RT_TEMPLATES_DIR, &set, &err) < 0 ||
        !(g = rt_templates_find(set, "gradio")))
        return;
    cfg = config("---\ntitle: Demo\nsdk: gradio\nsdk_version: 4.36.1\npython_version: 3.11\n"
                 "app_file: src/app.py\n---\n");
    in = (struct rt_render_in){ cfg, "Alice/my_demo", "alice-my-demo.localhost", NULL };

    r = rt_template_render_run(g, &in, &run, &err);
    is_int(r, -EINVAL, "runtime placeholders must be given");
    is_str(err.msg,
           "render run.env.SPACE_CREATOR_USER_ID of 'Alice/my_demo': placeholder "
           "'${SPACE_CREATOR_USER_ID}' has no value",
           "  message");

    in.extra = runtime_extra();
    r = rt_template_render_run(g, &in, &run, &err);
    is_int(r, 0, "gradio renders");
    if (r < 0) {
        printf("#   %s\n", err.msg);
        return;
    }
    is_int(run->argv.n, 2, "python app");
    is_str(run->argv.v[0], "/home/user/.venv/bin/python", "argv[0]");
    is_str(run->argv.v[1], "src/app.py", "argv[1] is the app file");
    ok(strv_has(&run->env, "SPACE_ID=Alice/my_demo"), "SPACE_ID (computed wins over extra)");
    ok(strv_has(&run->env, "SPACE_HOST=alice-my-demo.localhost"), "SPACE_HOST");
    ok(strv_has(&run->env, "SPACE_AUTHOR_NAME=Alice"), "SPACE_AUTHOR_NAME");
    ok(strv_has(&run->env, "SPACE_REPO_NAME=my_demo"), "SPACE_REPO_NAME");
    ok(strv_has(&run->env, "SPACE_TITLE=Demo"), "SPACE_TITLE");
    ok(strv_has(&run->env, "SYSTEM=spaces"), "SYSTEM");
    ok(strv_has(&run->env, "GRADIO_SERVER_NAME=0.0.0.0"), "GRADIO_SERVER_NAME");
    ok(strv_has(&run->env, "GRADIO_SERVER_PORT=7860"), "GRADIO_SERVER_PORT");
    ok(strv_has(&run->env, "CPU_CORES=2") && strv_has(&run->env, "MEMORY=16Gi"), "runtime values");
    is_int(run->port, 7860, "port");
    is_int(run->uid, 1000, "uid");
    is_str(run->workdir, "/home/user/app", "workdir");
    is_str(run->health_path, "/", "health path");
    is_int(run->startup_timeout_ms, 1800000, "startup timeout from the README");

    r = rt_template_render_build(g, &in, NULL, NULL, &plan, &err);
    is_int(r, 0, "build renders with no repo files");
    if (r == 0) {
        is_str(plan->base_image, "python", "base image");
        is_str(plan->python, "3.11", "python version expanded");
        ok(strv_has(&plan->packages, "git-lfs"), "base packages");
        is_int(plan->n_steps, 3, "venv, pip, sdk");
        if (plan->n_steps == 3) {
            is_str(plan->steps[2].name, "sdk", "the pinned SDK step");
            ok(strv_has(&plan->steps[2].argv, "gradio[oauth]==4.36.1"), "  pins sdk_version");
        }
    }
    rt_build_plan_freep(&plan);
}

static bool has_reqs(const char *path, void *userdata)
{
    return strcmp(path, "requirements.txt") == 0 || strcmp(path, "packages.txt") == 0;
}

static void test_render_others(void)
{
    _cleanup_(rt_templates_freep) struct rt_templates *set = NULL;
    struct rt_spaceconfig *cfg;
    struct rt_run_spec *run = NULL;
    struct rt_build_plan *plan = NULL;
    struct rt_render_in in = { NULL, "bob/app", "bob-app.localhost", runtime_extra() };
    int r;

    if (rt_templates_load(RT_TEMPLATES_DIR, &set, &err) < 0)
        return;

    in.cfg = cfg = config("---\nsdk: gradio\n---\n");
    r = rt_template_render_build(rt_templates_find(set, "gradio"), &in, has_reqs, NULL, &plan,
                                 &err);
    is_int(r, 0, "gradio build with requirements.txt and packages.txt");
    if (r == 0) {
        const char *want[] = { "venv", "pip", "packages.txt", "requirements.txt", "sdk-latest" };

        is_int(plan->n_steps, 5, "five steps");
        for (size_t i = 0; i < plan->n_steps && i < 5; i++)
            is_str(plan->steps[i].name, want[i], want[i]);
        ok(plan->n_steps == 5 && plan->steps[2].root && !plan->steps[3].root,
           "only apt-get runs as root");
        ok(plan->n_steps == 5 && strv_has(&plan->steps[4].argv, "gradio[oauth]"),
           "  the latest SDK when sdk_version is unset");
    }
    rt_build_plan_free(plan);
    rt_spaceconfig_free(cfg);

    in.cfg = cfg = config("---\nsdk: streamlit\napp_file: main.py\n---\n");
    r = rt_template_render_run(rt_templates_find(set, "streamlit"), &in, &run, &err);
    is_int(r, 0, "streamlit renders");
    if (r == 0) {
        is_str(run->argv.v[0], "/home/user/.venv/bin/streamlit", "streamlit argv[0]");
        is_str(run->argv.v[1], "run", "streamlit run");
        is_str(run->argv.v[2], "main.py", "  the app file");
        ok(strv_has(&run->argv, "8501") && strv_has(&run->argv, "--server.headless"),
           "  port and headless");
        is_int(run->port, 8501, "  port 8501");
        ok(strv_has(&run->env, "SPACE_TITLE=app"), "  title defaults to the repo name");
    }
    rt_run_spec_free(run);
    rt_spaceconfig_free(cfg);

    in.cfg = cfg = config("---\nsdk: static\napp_file: dist/index.html\napp_build_command: npm "
                          "run build\n---\n");
    r = rt_template_render_run(rt_templates_find(set, "static"), &in, &run, &err);
    is_int(r, 0, "static renders");
    if (r == 0) {
        ok(strv_has(&run->argv, "http.server") && strv_has(&run->argv, "dist"),
           "  serves the app file's folder");
    }
    rt_run_spec_free(run);
    r = rt_template_render_build(rt_templates_find(set, "static"), &in, NULL, NULL, &plan, &err);
    is_int(r, 0, "static build");
    if (r == 0) {
        is_int(plan->n_steps, 1, "  one step");
        ok(plan->n_steps == 1 && strv_has(&plan->steps[0].argv, "npm run build"),
           "  runs app_build_command");
    }
    rt_build_plan_free(plan);
    rt_spaceconfig_free(cfg);

    in.cfg = cfg = config("---\nsdk: docker\napp_port: 3000\n---\n");
    r = rt_template_render_run(rt_templates_find(set, "docker"), &in, &run, &err);
    is_int(r, -EOPNOTSUPP, "docker is not supported yet");
    is_str(err.msg,
           "sdk 'docker' is not supported: docker Spaces need an image builder, which "
           "Spaceport does not have yet",
           "  message");
    r = rt_template_render_build(rt_templates_find(set, "docker"), &in, NULL, NULL, &plan, &err);
    is_int(r, -EOPNOTSUPP, "  nor its build");
    rt_spaceconfig_free(cfg);

    in.cfg = cfg = config("---\nsdk: gradio\n---\n");
    in.space_id = "no-slash";
    r = rt_template_render_run(rt_templates_find(set, "gradio"), &in, &run, &err);
    is_int(r, -EINVAL, "a bad space id");
    is_str(err.msg, "render 'no-slash': the space id must be OWNER/NAME", "  message");
    in.space_id = "a/b/c";
    is_int(rt_template_render_run(rt_templates_find(set, "gradio"), &in, &run, &err), -EINVAL,
           "a/b/c");
    in.space_id = "a/b";
    in.host = "";
    is_int(rt_template_render_run(rt_templates_find(set, "gradio"), &in, &run, &err), -EINVAL,
           "no host");
    rt_spaceconfig_free(cfg);
}

static const char good[] = "sdk: gradio\n"
                           "base:\n"
                           "  image: python\n"
                           "run:\n"
                           "  command: [python, \"${APP_FILE}\"]\n"
                           "  port: 7860\n";

/* Parses @text as templates/@name and expects @want. */
static void tpl_fails(const char *name, const char *text, const char *want)
{
    struct rt_template *t = NULL;
    char file[128];
    int r;

    (void) snprintf(file, sizeof(file), "templates/%s", name);
    r = rt_template_parse(file, text, strlen(text), &t, &err);
    if (!ok(r < 0 && !t, "rejects: %s", want))
        printf("#   r=%d\n", r);
    else
        is_str(err.msg, want, "  with the message");
    rt_template_free(t);
}

static void test_template_errors(void)
{
    struct rt_template *t = NULL;
    int r = rt_template_parse("templates/gradio.yaml", good, strlen(good), &t, &err);

    is_int(r, 0, "a minimal template");
    if (t) {
        is_int(t->health_interval_ms, 2000, "  default health interval");
        ok(t->supported, "  supported by default");
    }
    rt_template_free(t);

    tpl_fails("gradio.yaml",
              "sdk: gradio\nbase:\n  image: python\nrun:\n  command: [python, app.py]\n"
              "  port: abc\n",
              "templates/gradio.yaml:6: run.port: expected an integer in 1..65535, got 'abc'");
    tpl_fails("gradio.yaml", "sdk: gradio\ncolour: red\n",
              "templates/gradio.yaml:2: colour: unknown key");
    tpl_fails("gradio.yaml",
              "sdk: gradio\nbase:\n  image: python\nrun:\n  command: [x]\n  prot: 1\n",
              "templates/gradio.yaml:6: run.prot: unknown key");
    tpl_fails("gradio.yaml",
              "sdk: streamlit\nbase:\n  image: python\nrun:\n  command: [x]\n"
              "  port: 1\n",
              "templates/gradio.yaml:1: sdk: expected 'gradio' (the file's name), got "
              "'streamlit'");
    tpl_fails("gradio.yaml", "sdk: gradio\nbase:\n  image: python\nrun:\n  port: 1\n",
              "templates/gradio.yaml: run.command: missing (a supported SDK needs one)");
    tpl_fails("gradio.yaml",
              "sdk: gradio\nsupported: false\nbase:\n  image: python\nrun:\n"
              "  port: 1\n",
              "templates/gradio.yaml: reason: missing (say why the SDK is not supported)");
    tpl_fails("gradio.yaml", "sdk: gradio\nbase:\n  image: python\n",
              "templates/gradio.yaml: run.port: missing (the port the app listens on)");
    tpl_fails("gradio.yaml", "base:\n  image: python\n",
              "templates/gradio.yaml: sdk: missing (the SDK name, the same as the file's name)");
    tpl_fails("gradio.yaml",
              "sdk: gradio\nbase:\n  image: python\nrun:\n  command: [python, \"${APP_FLE}\"]\n"
              "  port: 1\n",
              "templates/gradio.yaml:5: run.command[1]: expected text whose ${NAME} "
              "placeholders are known ('$$' for '$'), got '${APP_FLE}'");
    tpl_fails("gradio.yaml",
              "sdk: gradio\nbase:\n  image: python\nrun:\n  command: [\"$HOME\"]\n  port: 1\n",
              "templates/gradio.yaml:5: run.command[0]: expected text whose ${NAME} "
              "placeholders are known ('$$' for '$'), got '$HOME'");
    tpl_fails("gradio.yaml",
              "sdk: gradio\nbase:\n  image: python\nrun:\n  command: [x]\n  port: 1\n"
              "  env:\n    lower: x\n",
              "templates/gradio.yaml:8: run.env: expected an environment variable name (A-Z, "
              "0-9, _) as a key, got 'lower'");
    tpl_fails("gradio.yaml",
              "sdk: gradio\nbase:\n  image: python\nrun:\n  command: [x]\n  port: 1\n"
              "  env:\n    A: [x]\n",
              "templates/gradio.yaml:8: run.env.A: expected a string, got a list");
    tpl_fails(
        "gradio.yaml",
        "sdk: gradio\nbase:\n  image: python\nrun:\n  command: [x]\n  port: 1\n"
        "build:\n  steps:\n    - run: [x]\n",
        "templates/gradio.yaml: build.steps[0].name: missing (the step's name, shown in build "
        "logs)");
    tpl_fails("gradio.yaml",
              "sdk: gradio\nbase:\n  image: python\nrun:\n  command: [x]\n  port: 1\n"
              "build:\n  steps:\n    - name: a\n      run: [x]\n      when: always\n",
              "templates/gradio.yaml:11: build.steps[0].when: unknown key");
    tpl_fails("gradio.yaml",
              "sdk: gradio\nbase:\n  image: python\nrun:\n  command: [x]\n  port: 1\n"
              "build:\n  steps:\n    - name: a\n      run: [x]\n      if_set: NOPE\n",
              "templates/gradio.yaml:11: build.steps[0].if_set: expected a placeholder name "
              "such as SDK_VERSION, got 'NOPE'");
    tpl_fails("gradio.yaml",
              "sdk: gradio\nbase:\n  image: python\nrun:\n  command: [x]\n  port: 1\n"
              "build:\n  steps: [x]\n",
              "templates/gradio.yaml:8: build.steps: item 0: expected a mapping, got a string");
    tpl_fails("gradio.yaml",
              "sdk: gradio\nbase:\n  image: python\nrun:\n  command: [x]\n  port: 1\n"
              "health:\n  interval: 0s\n",
              "templates/gradio.yaml:8: health.interval: expected a duration between 100ms and "
              "1m such as '30m' or '1h', got '0s'");
    tpl_fails("gradio.yaml",
              "sdk: gradio\nbase:\n  image: python\nrun:\n  command: [x]\n  port: 1\n"
              "  workdir: relative\n",
              "templates/gradio.yaml:7: run.workdir: expected an absolute path, got 'relative'");
    tpl_fails("gradio.yaml", "sdk: gradio\nrun: 5\n",
              "templates/gradio.yaml:2: run: expected a mapping, got a string");
    tpl_fails("gradio.yaml", "sdk: gradio\nrun.port: 5\n",
              "templates/gradio.yaml:2: run.port: unknown key");
    tpl_fails("Gradio.yaml", good,
              "templates/Gradio.yaml: a template's file name must be SDK.yaml (a-z, 0-9, -, ., "
              "_)");
    tpl_fails("gradio.yml", good,
              "templates/gradio.yml: a template's file name must be SDK.yaml (a-z, 0-9, -, ., "
              "_)");
    tpl_fails("gradio.yaml", "sdk: gradio\n  x: [\n",
              "templates/gradio.yaml:2: invalid YAML: mapping values are not allowed in this "
              "context");
}

static void test_template_limits(void)
{
    static const char nul[] = "sdk: gradio\0\nbase:\n  image: x\n";
    struct rt_template *t = NULL;
    char *big = malloc(70 * 1024);

    is_int(rt_template_parse("templates/gradio.yaml", nul, sizeof(nul) - 1, &t, &err), -EINVAL,
           "a NUL byte in a template");
    is_str(err.msg, "templates/gradio.yaml: YAML contains a NUL byte", "  message");
    if (!big)
        abort();
    memset(big, '#', 70 * 1024);
    is_int(rt_template_parse("templates/gradio.yaml", big, 70 * 1024, &t, &err), -E2BIG,
           "a 70 KiB template");
    is_str(err.msg, "templates/gradio.yaml: YAML is larger than 65536 bytes", "  message");
    is_int(rt_template_parse("templates/gradio.yaml", "", 0, &t, &err), -EINVAL,
           "an empty template");
    is_str(err.msg,
           "templates/gradio.yaml: sdk: missing (the SDK name, the same as the file's "
           "name)",
           "  message");
    ok(!t, "nothing returned");
    free(big);
}

static int write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    _cleanup_close_ int fd = -1;

    (void) snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    return write(fd, text, strlen(text)) == (ssize_t) strlen(text) ? 0 : -1;
}

static void remove_tree(const char *dir)
{
    static const char *const names[] = { "gradio.yaml", "extra.yaml", "notes.txt", ".hidden.yaml",
                                         "sub.yaml" };
    char path[512];

    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        (void) snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (unlink(path) < 0)
            (void) rmdir(path);
    }
    (void) rmdir(dir);
}

static void test_load_dir(void)
{
    char dir[] = "/tmp/sp-templates-XXXXXX";
    struct rt_templates *set = NULL;
    char path[512];

    if (!mkdtemp(dir)) {
        ok(0, "mkdtemp");
        return;
    }
    write_file(dir, "gradio.yaml", good);
    write_file(dir, "notes.txt", "not a template");
    write_file(dir, ".hidden.yaml", "junk: [");
    is_int(rt_templates_load(dir, &set, &err), 0, "other files are skipped");
    ok(set && set->n == 1 && rt_templates_find(set, "gradio"), "  one template");
    rt_templates_free(set);
    set = NULL;

    /* Adding an SDK is adding a file. */
    write_file(dir, "extra.yaml",
               "sdk: extra\nbase:\n  image: x\nrun:\n  command: [serve]\n"
               "  port: 9000\n");
    is_int(rt_templates_load(dir, &set, &err), 0, "a new SDK file");
    ok(set && set->n == 2 && rt_templates_find(set, "extra") &&
           rt_templates_find(set, "extra")->run_port == 9000,
       "  is found by name");
    rt_templates_free(set);
    set = NULL;

    write_file(dir, "extra.yaml", "sdk: extra\nrun:\n  port: no\n");
    is_int(rt_templates_load(dir, &set, &err), -EINVAL, "one bad file fails the whole load");
    ok(!set && strncmp(err.msg, dir, strlen(dir)) == 0 && strstr(err.msg, "/extra.yaml:3: "),
       "  the message names the file: %s", err.msg);

    (void) snprintf(path, sizeof(path), "%s/extra.yaml", dir);
    (void) unlink(path);
    (void) snprintf(path, sizeof(path), "%s/sub.yaml", dir);
    (void) mkdir(path, 0755);
    is_int(rt_templates_load(dir, &set, &err), -EINVAL, "a folder named like a template");
    remove_tree(dir);

    is_int(rt_templates_load("/nonexistent/templates", &set, &err), -ENOENT, "no folder");
    is_str(err.msg, "open templates folder '/nonexistent/templates'", "  message");
}

static void test_expand(void)
{
    struct rt_strmap vars = { 0 };
    char *out = NULL;

    if (rt_strmap_push(&vars, "A", "1") < 0 || rt_strmap_push(&vars, "B", "${A}") < 0)
        abort();
    is_int(rt_template_expand("x${A}y$$z${B}", &vars, &out, &err), 0, "expand");
    is_str(out, "x1y$z${A}", "  values are not expanded again");
    free(out);
    out = NULL;
    is_int(rt_template_expand("${A", &vars, &out, &err), -EINVAL, "unclosed placeholder");
    is_int(rt_template_expand("$A", &vars, &out, &err), -EINVAL, "bare $");
    is_int(rt_template_expand("${C}", &vars, &out, &err), -EINVAL, "unknown name");
    is_str(err.msg, "placeholder '${C}' has no value", "  message");
    {
        struct rt_strmap big = { 0 };
        char *blob = malloc(40000);
        const char *many;

        if (!blob)
            abort();
        memset(blob, 'x', 39999);
        blob[39999] = '\0';
        many = "${X}${X}";
        if (rt_strmap_push(&big, "X", blob) < 0)
            abort();
        is_int(rt_template_expand(many, &big, &out, &err), -E2BIG, "expansion is capped");
        free(blob);
        rt_strmap_done(&big);
    }
    ok(out == NULL, "nothing returned on failure");
    rt_strmap_done(&vars);
    ok(rt_template_n_placeholders > 10, "placeholders are listed");
}

static void test_describe(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (!f)
        abort();
    is_int(rt_spaceconfig_describe(f), 0, "describe the README keys");
    is_int(rt_template_describe(f), 0, "describe the template keys");
    (void) fclose(f);
    ok(buf && strstr(buf, "| `sdk` | one of gradio, streamlit, static, docker | required | "),
       "  sdk row");
    ok(buf && strstr(buf, "| `app_port` | integer in 1..65535 | 7860 | "), "  app_port row");
    ok(buf && strstr(buf, "| `startup_duration_timeout` | duration in 1s..1d | 30m | "),
       "  duration row");
    ok(buf && strstr(buf, "| `build.steps[].if_exists` | string | - | "), "  nested list keys");
    ok(buf && strstr(buf, "| `${SPACE_HOST}` | the Space | "), "  placeholders");
    free(buf);
}

int main(void)
{
    tap_start();
    test_real_templates();
    test_render_gradio();
    test_render_others();
    test_template_errors();
    test_template_limits();
    test_load_dir();
    test_expand();
    test_describe();
    rt_strmap_done((struct rt_strmap *) runtime_extra());
    return tap_done();
}
