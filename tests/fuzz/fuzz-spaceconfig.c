/* Fuzz target: README.md front matter and SDK templates, the untrusted YAML Spaceport
 * reads.  Each input is parsed as a README (then checked for its app file and rendered
 * with the real templates) and as a template (then rendered).
 *
 *   make fuzz-spaceconfig FUZZ_TIME=300    libFuzzer (clang), ASan + UBSan
 *   build/<variant>/tests/unit/spaceconfig/test-fuzz-replay   corpus replay + mutations
 *   FUZZ_BIN FILE|DIR...                   replay, when built without libFuzzer
 *
 * Built with -DSP_LIBFUZZER the libFuzzer main runs; otherwise main() replays files.
 * Define SP_FUZZ_NO_MAIN to include this file from a test. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "runtimed/spaceconfig.h"
#include "runtimed/template.h"
#include "util.h"

#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct rt_templates *fuzz_templates(void)
{
    static struct rt_templates *set;
    static bool tried;
    struct rt_err err = { 0 };

    if (!tried) {
        tried = true;
        if (rt_templates_load(RT_TEMPLATES_DIR, &set, &err) < 0)
            set = NULL; /* run from elsewhere: fuzz the parsers only */
    }
    return set;
}

static bool fuzz_has(const char *path, void *userdata)
{
    (void) userdata;
    return path[0] && (path[0] & 1);
}

static const struct rt_strmap *fuzz_extra(void)
{
    static struct rt_strmap m;
    static const char *const kv[][2] = {
        { "ACCELERATOR", "none" },
        { "CPU_CORES", "2" },
        { "MEMORY", "16Gi" },
        { "SPACE_CREATOR_USER_ID", "u1" },
    };

    for (size_t i = m.n; i < ARRAY_SIZE(kv); i++)
        if (rt_strmap_push(&m, kv[i][0], kv[i][1]) < 0)
            abort();
    return &m;
}

static void fuzz_render(const struct rt_template *t, const struct rt_spaceconfig *cfg)
{
    struct rt_render_in in = { cfg, "fuzz/space", "fuzz-space.localhost", fuzz_extra() };
    struct rt_run_spec *run = NULL;
    struct rt_build_plan *plan = NULL;
    struct rt_err err = { 0 };

    if (rt_template_render_run(t, &in, &run, &err) == 0)
        rt_run_spec_free(run);
    else if (!err.msg[0])
        abort(); /* every failure must say why */
    if (rt_template_render_build(t, &in, fuzz_has, NULL, &plan, &err) == 0)
        rt_build_plan_free(plan);
}

/* Names the input after its own sdk key, so that every template can parse to the end. */
static const char *fuzz_template_file(const char *text, size_t size, char *buf, size_t len)
{
    struct rt_ynode *root = NULL;
    struct rt_err err = { 0 };
    const struct rt_ynode *sdk;

    (void) snprintf(buf, len, "templates/gradio.yaml");
    if (rt_yaml_parse(text, size, "fuzz", 1, NULL, &root, &err) < 0)
        return buf;
    sdk = rt_ynode_get(root, "sdk");
    if (sdk && sdk->kind == RT_YNODE_SCALAR && sdk->len < 32 && !strchr(sdk->text, '/'))
        (void) snprintf(buf, len, "templates/%s.yaml", sdk->text);
    rt_ynode_free(root);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *) data;
    struct rt_spaceconfig *cfg = NULL;
    struct rt_template *t = NULL;
    struct rt_err err = { 0 };
    static const char *const files[] = { "app.py", "index.html", "Dockerfile" };
    char file[128];

    if (rt_spaceconfig_parse(text, size, &cfg, &err) == 0) {
        const struct rt_template *tpl = rt_templates_find(fuzz_templates(), rt_sdk_name(cfg->sdk));

        (void) rt_spaceconfig_check_app_file_in(cfg, files, ARRAY_SIZE(files), &err);
        if (tpl)
            fuzz_render(tpl, cfg);
        rt_spaceconfig_free(cfg);
    } else if (cfg || !err.msg[0]) {
        abort();
    }

    err.msg[0] = '\0';
    if (rt_template_parse(fuzz_template_file(text, size, file, sizeof(file)), text, size, &t,
                          &err) == 0) {
        static const char readme[] = "---\nsdk: gradio\ntitle: t\n---\n";

        if (rt_spaceconfig_parse(readme, sizeof(readme) - 1, &cfg, &err) == 0) {
            fuzz_render(t, cfg);
            rt_spaceconfig_free(cfg);
        }
        rt_template_free(t);
    } else if (t || !err.msg[0]) {
        abort();
    }
    return 0;
}

/* --- replay ------------------------------------------------------------------------- */

#define FUZZ_MAX_INPUT (1024 * 1024)

/* Runs one file through the target.  Returns 1 when run, 0 when skipped. */
static int fuzz_replay_file(int dirfd, const char *name)
{
    _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    _cleanup_free_ char *buf = NULL;
    ssize_t n;

    if (fd < 0 || !(buf = malloc(FUZZ_MAX_INPUT)))
        return 0;
    n = rt_read_all(fd, buf, FUZZ_MAX_INPUT);
    if (n < 0)
        return 0;
    (void) LLVMFuzzerTestOneInput((const uint8_t *) buf, (size_t) n);
    return 1;
}

/* Replays @path, a file or a folder of files.  Returns the number of inputs run. */
static int fuzz_replay(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;

    if (!d)
        return fuzz_replay_file(AT_FDCWD, path);
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n += fuzz_replay_file(dirfd(d), e->d_name);
    (void) closedir(d);
    return n;
}

#if !defined(SP_LIBFUZZER) && !defined(SP_FUZZ_NO_MAIN)
int main(int argc, char **argv)
{
    int n = 0;

    for (int i = 1; i < argc; i++)
        n += fuzz_replay(argv[i]);
    printf("replayed %d inputs\n", n);
    return 0;
}
#endif
