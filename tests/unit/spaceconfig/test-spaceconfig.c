/* Unit tests for runtimed/spaceconfig.c and runtimed/conftable.c: every README key,
 * defaults, each error message, unknown-key warnings, limits and hostile input. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "cleanup.h"
#include "runtimed/spaceconfig.h"

static struct rt_err err;

/* Parses @s as a whole README.md. */
static int parse(const char *s, struct rt_spaceconfig **cfg)
{
    *cfg = NULL;
    rt_err_clear(&err);
    return rt_spaceconfig_parse(s, strlen(s), cfg, &err);
}

/* Parses "---\n" @fm "---\n" and expects failure with exactly @want. */
static void fails(const char *fm, int code, const char *want)
{
    _cleanup_free_ char *readme = NULL;
    struct rt_spaceconfig *cfg = NULL;
    int r;

    if (asprintf(&readme, "---\n%s---\n# body\n", fm) < 0)
        abort();
    r = parse(readme, &cfg);
    if (!ok(r == -code && !cfg, "rejects: %s", want))
        printf("#   r=%d msg='%s'\n", r, err.msg);
    else
        is_str(err.msg, want, "  with the message");
    rt_spaceconfig_free(cfg);
}

/* The same, comparing only the start of the message. */
static void fails_prefix(const char *fm, int code, const char *want)
{
    _cleanup_free_ char *readme = NULL;
    struct rt_spaceconfig *cfg = NULL;
    int r;

    if (asprintf(&readme, "---\n%s---\n", fm) < 0)
        abort();
    r = parse(readme, &cfg);
    ok(r == -code && !cfg && strncmp(err.msg, want, strlen(want)) == 0, "rejects: %s...", want);
    if (strncmp(err.msg, want, strlen(want)) != 0 || r != -code)
        printf("#   r=%d msg='%s'\n", r, err.msg);
    rt_spaceconfig_free(cfg);
}

static void test_minimal_and_defaults(void)
{
    struct rt_spaceconfig *cfg;
    int r = parse("---\nsdk: gradio\n---\n# Demo\n", &cfg);

    is_int(r, 0, "minimal README parses");
    if (r < 0)
        return;
    is_int(cfg->sdk, RT_SDK_GRADIO, "sdk gradio");
    is_str(cfg->app_file, "app.py", "gradio app_file defaults to app.py");
    is_str(cfg->python_version, "3.10", "python_version defaults to 3.10");
    is_int(cfg->app_port, 7860, "app_port defaults to 7860");
    ok(cfg->full_width, "fullWidth defaults to true");
    ok(!cfg->pinned && !cfg->hf_oauth && !cfg->disable_embedding, "bools default to false");
    is_int(cfg->startup_duration_timeout_ms, 30 * 60 * 1000, "startup timeout defaults to 30m");
    is_int(cfg->hf_oauth_expiration_minutes, 480, "oauth expiration defaults to 480");
    is_int(cfg->color_from, -1, "colorFrom unset");
    is_int(cfg->header, -1, "header unset");
    is_int(cfg->suggested_storage, -1, "suggested_storage unset");
    ok(!cfg->title && !cfg->sdk_version && !cfg->custom_headers.coep, "strings unset");
    is_int(cfg->tags.n + cfg->models.n + cfg->preload_from_hub.n, 0, "lists empty");
    is_int(cfg->warnings.n, 0, "no warnings");
    rt_spaceconfig_free(cfg);

    static const struct {
        const char *sdk;
        int want;
        const char *app_file;
    } sdks[] = {
        { "streamlit", RT_SDK_STREAMLIT, "app.py" },
        { "static", RT_SDK_STATIC, "index.html" },
        { "docker", RT_SDK_DOCKER, "Dockerfile" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(sdks); i++) {
        char buf[100];

        (void) snprintf(buf, sizeof(buf), "---\nsdk: %s\n---\n", sdks[i].sdk);
        r = parse(buf, &cfg);
        is_int(r, 0, sdks[i].sdk);
        if (r < 0)
            continue;
        is_int(cfg->sdk, sdks[i].want, "  sdk enum");
        is_str(cfg->app_file, sdks[i].app_file, "  default app_file");
        is_str(rt_sdk_name(cfg->sdk), sdks[i].sdk, "  rt_sdk_name");
        is_int(rt_sdk_from_name(sdks[i].sdk), sdks[i].want, "  rt_sdk_from_name");
        rt_spaceconfig_free(cfg);
    }
    is_int(rt_sdk_from_name("gradoo"), -1, "unknown sdk name");
}

static const char full_readme[] =
    "---\n"
    "title: My Demo\n"
    "emoji: \xf0\x9f\x94\xa5\n"
    "colorFrom: indigo\n"
    "colorTo: gray\n"
    "sdk: gradio\n"
    "sdk_version: 4.36.1\n"
    "python_version: 3.11\n"
    "app_file: src/main.py\n"
    "base_path: /ui\n"
    "fullWidth: false\n"
    "header: mini\n"
    "short_description: A short demo\n"
    "models:\n  - openai/whisper-large-v3\n  - gpt2\n"
    "datasets: [mozilla-foundation/common_voice_11_0]\n"
    "tags: [audio, asr]\n"
    "thumbnail: https://example.com/t.png\n"
    "pinned: true\n"
    "license: apache-2.0\n"
    "duplicated_from: someone/original\n"
    "hf_oauth: true\n"
    "hf_oauth_scopes:\n  - email\n  - read-repos\n"
    "hf_oauth_expiration_minutes: 60\n"
    "hf_oauth_authorized_org: my-org\n"
    "suggested_hardware: t4-small\n"
    "disable_embedding: yes\n"
    "startup_duration_timeout: 1h\n"
    "custom_headers:\n"
    "  cross-origin-embedder-policy: require-corp\n"
    "  cross-origin-opener-policy: same-origin\n"
    "  cross-origin-resource-policy: cross-origin\n"
    "preload_from_hub:\n"
    "  - warp-ai/wuerstchen-prior text_encoder/model.safetensors,prior/model.safetensors\n"
    "  - gpt2\n"
    "  - xai-org/grok-1 tokenizer.model 0123456789abcdef0123456789abcdef01234567\n"
    "---\n"
    "# My Demo\n";

static void test_every_key(void)
{
    struct rt_spaceconfig *cfg;
    int r = parse(full_readme, &cfg);

    is_int(r, 0, "README with every key parses");
    if (r < 0) {
        printf("#   %s\n", err.msg);
        return;
    }
    is_str(cfg->title, "My Demo", "title");
    is_str(cfg->emoji, "\xf0\x9f\x94\xa5", "emoji");
    is_int(cfg->color_from, RT_COLOR_INDIGO, "colorFrom");
    is_int(cfg->color_to, RT_COLOR_GRAY, "colorTo");
    is_str(rt_color_name(cfg->color_to), "gray", "rt_color_name");
    is_str(cfg->sdk_version, "4.36.1", "sdk_version");
    is_str(cfg->python_version, "3.11", "python_version kept as text");
    is_str(cfg->app_file, "src/main.py", "app_file");
    is_str(cfg->base_path, "/ui", "base_path");
    ok(!cfg->full_width, "fullWidth false");
    is_int(cfg->header, RT_HEADER_MINI, "header mini");
    is_str(cfg->short_description, "A short demo", "short_description");
    is_int(cfg->models.n, 2, "models: two");
    is_str(cfg->models.v[1], "gpt2", "models[1]");
    is_int(cfg->datasets.n, 1, "datasets: flow list");
    is_str(cfg->tags.v[0], "audio", "tags[0]");
    is_str(cfg->thumbnail, "https://example.com/t.png", "thumbnail");
    ok(cfg->pinned, "pinned");
    is_str(cfg->license, "apache-2.0", "license");
    is_str(cfg->duplicated_from, "someone/original", "duplicated_from");
    ok(cfg->hf_oauth, "hf_oauth");
    is_int(cfg->hf_oauth_scopes.n, 2, "hf_oauth_scopes");
    is_str(cfg->hf_oauth_scopes.v[1], "read-repos", "hf_oauth_scopes[1]");
    is_int(cfg->hf_oauth_expiration_minutes, 60, "hf_oauth_expiration_minutes");
    is_int(cfg->hf_oauth_authorized_org.n, 1, "authorized_org: one string is a list of one");
    is_str(cfg->suggested_hardware, "t4-small", "suggested_hardware");
    ok(cfg->disable_embedding, "disable_embedding: yes (YAML 1.1)");
    is_int(cfg->startup_duration_timeout_ms, 3600 * 1000, "startup_duration_timeout 1h");
    is_str(cfg->custom_headers.coep, "require-corp", "COEP");
    is_str(cfg->custom_headers.coop, "same-origin", "COOP");
    is_str(cfg->custom_headers.corp, "cross-origin", "CORP");
    is_int(cfg->preload_from_hub.n, 3, "preload_from_hub: three");
    if (cfg->preload_from_hub.n == 3) {
        const struct rt_preload *p = cfg->preload_from_hub.items;

        is_str(p[0].repo, "warp-ai/wuerstchen-prior", "preload[0].repo");
        is_int(p[0].files.n, 2, "preload[0]: two files");
        is_str(p[0].files.v[1], "prior/model.safetensors", "preload[0].files[1]");
        ok(!p[0].revision, "preload[0]: no revision");
        is_int(p[1].files.n, 0, "preload[1]: whole repo");
        is_str(p[2].revision, "0123456789abcdef0123456789abcdef01234567", "preload[2].revision");
    }
    is_int(cfg->warnings.n, 0, "no warnings");
    ok(cfg->tree && rt_ynode_get(cfg->tree, "title"), "the tree is kept for cardData");
    rt_spaceconfig_free(cfg);
}

static void test_values(void)
{
    struct rt_spaceconfig *cfg;

    is_int(parse("---\nsdk: gradio\npython_version: 3.10\n---\n", &cfg), 0, "python 3.10");
    if (cfg)
        is_str(cfg->python_version, "3.10", "3.10 stays 3.10 (not the float 3.1)");
    rt_spaceconfig_free(cfg);
    is_int(parse("---\nsdk: \"gradio\"\napp_port: '8080'\n---\n", &cfg), 0, "quoted values");
    if (cfg)
        is_int(cfg->app_port, 8080, "a quoted integer is accepted");
    rt_spaceconfig_free(cfg);
    is_int(parse("---\nsdk: gradio\ntitle:\nemoji: ~\ntags: null\n---\n", &cfg), 0,
           "empty and null values");
    if (cfg)
        ok(!cfg->title && !cfg->emoji && cfg->tags.n == 0, "null keeps the default");
    rt_spaceconfig_free(cfg);
    is_int(parse("---\nsdk: static\napp_file: ./dist/index.html\napp_build_command: npm run "
                 "build\n---\n",
                 &cfg),
           0, "static with a build command");
    if (cfg) {
        is_str(cfg->app_build_command, "npm run build", "app_build_command");
        is_int(cfg->warnings.n, 0, "no warning for static");
    }
    rt_spaceconfig_free(cfg);
    is_int(parse("---\nsdk: gradio\nstartup_duration_timeout: 1h30m\n---\n", &cfg), 0,
           "compound duration");
    if (cfg)
        is_int(cfg->startup_duration_timeout_ms, 90 * 60 * 1000, "1h30m");
    rt_spaceconfig_free(cfg);
    is_int(parse("---\nsdk: gradio\ntags: single\nhf_oauth_authorized_org: [a, b]\n---\n", &cfg), 0,
           "scalar or list");
    if (cfg)
        ok(cfg->tags.n == 1 && cfg->hf_oauth_authorized_org.n == 2, "both forms");
    rt_spaceconfig_free(cfg);
    is_int(parse("---\nsdk: gradio\n\"null\": 1\nTrue: 2\n---\n", &cfg), 0,
           "keys spelled null/True are text");
    if (cfg)
        is_int(cfg->unknown_keys.n, 2, "  and unknown");
    rt_spaceconfig_free(cfg);
}

static void test_front_matter(void)
{
    struct rt_spaceconfig *cfg;

    is_int(parse("\xef\xbb\xbf---\nsdk: gradio\n---\n", &cfg), 0, "UTF-8 BOM");
    rt_spaceconfig_free(cfg);
    is_int(parse("---\r\nsdk: gradio\r\ntitle: x\r\n---\r\nbody", &cfg), 0, "CRLF lines");
    if (cfg)
        is_str(cfg->title, "x", "  title without CR");
    rt_spaceconfig_free(cfg);
    is_int(parse("---  \nsdk: gradio\n---\t\n", &cfg), 0, "fences with trailing blanks");
    rt_spaceconfig_free(cfg);
    is_int(parse("---\nsdk: gradio\n---", &cfg), 0, "closing fence at end of file");
    rt_spaceconfig_free(cfg);
    is_int(parse("---\nsdk: gradio\ntitle: '---'\n---\n---\n", &cfg), 0,
           "a quoted '---' is a value");
    rt_spaceconfig_free(cfg);

    is_int(parse("# Just a readme\n", &cfg), -EINVAL, "no front matter");
    is_str(err.msg, "README.md: no YAML front matter (the file must start with a '---' line)",
           "  message");
    is_int(parse("", &cfg), -EINVAL, "empty README");
    is_int(parse("---", &cfg), -EINVAL, "only a fence, no newline");
    is_int(parse("---\nsdk: gradio\n", &cfg), -EINVAL, "missing closing ---");
    is_str(err.msg, "README.md:1: front matter has no closing '---' line", "  message");
    is_int(parse("---\n---\n", &cfg), -EINVAL, "empty front matter");
    is_str(err.msg, "README.md: sdk: missing (one of gradio, streamlit, static, docker)",
           "  says sdk is missing");
    is_int(rt_spaceconfig_parse(NULL, 0, &cfg, &err), -EINVAL, "no README.md at all");
    ok(strstr(err.msg, "README.md: missing") == err.msg, "  message: %s", err.msg);
    {
        static const char nul[] = "---\nsdk: gradio\ntitle: a\0b\n---\n";
        is_int(rt_spaceconfig_parse(nul, sizeof(nul) - 1, &cfg, &err), -EINVAL, "NUL byte");
        is_str(err.msg, "README.md:3: front matter contains a NUL byte", "  message");
    }
    {
        static const char nul_after[] = "---\nsdk: gradio\n---\nbinary\0body";
        is_int(rt_spaceconfig_parse(nul_after, sizeof(nul_after) - 1, &cfg, &err), 0,
               "a NUL byte after the front matter is not our business");
        rt_spaceconfig_free(cfg);
    }
}

static void test_errors(void)
{
    fails("sdk: gradoo\n", EINVAL,
          "README.md:2: sdk: expected one of gradio, streamlit, static, docker, got 'gradoo'");
    fails("title: x\n", EINVAL,
          "README.md: sdk: missing (one of gradio, streamlit, static, "
          "docker)");
    fails("sdk: [gradio]\n", EINVAL,
          "README.md:2: sdk: expected one of gradio, streamlit, static, docker, got a list");
    fails("sdk: docker\napp_port: abc\n", EINVAL,
          "README.md:3: app_port: expected an integer in 1..65535, got 'abc'");
    fails("sdk: docker\napp_port: 70000\n", EINVAL,
          "README.md:3: app_port: expected an integer in 1..65535, got '70000'");
    fails("sdk: docker\napp_port: -1\n", EINVAL,
          "README.md:3: app_port: expected an integer in 1..65535, got '-1'");
    fails("sdk: docker\napp_port: 99999999999999999999999\n", EINVAL,
          "README.md:3: app_port: expected an integer in 1..65535, got '99999999999999999999999'");
    fails("sdk: gradio\ncolorFrom: orange\n", EINVAL,
          "README.md:3: colorFrom: expected one of red, yellow, green, blue, indigo, purple, "
          "pink, gray, got 'orange'");
    fails("sdk: gradio\ncolorTo: {a: b}\n", EINVAL,
          "README.md:3: colorTo: expected one of red, yellow, green, blue, indigo, purple, "
          "pink, gray, got a mapping");
    fails("sdk: gradio\nfullWidth: maybe\n", EINVAL,
          "README.md:3: fullWidth: expected true or false, got 'maybe'");
    fails("sdk: gradio\npinned: [1]\n", EINVAL,
          "README.md:3: pinned: expected true or false, got a list");
    fails("sdk: gradio\npython_version: 2.7\n", EINVAL,
          "README.md:3: python_version: expected a Python version such as '3.10' or '3.10.4', "
          "got '2.7'");
    fails("sdk: gradio\npython_version: 3.10.4.1\n", EINVAL,
          "README.md:3: python_version: expected a Python version such as '3.10' or '3.10.4', "
          "got '3.10.4.1'");
    fails("sdk: gradio\nsdk_version: 4.0; rm -rf /\n", EINVAL,
          "README.md:3: sdk_version: expected a version such as '4.36.1', got '4.0; rm -rf /'");
    fails("sdk: gradio\napp_file: ../../etc/passwd\n", EINVAL,
          "README.md:3: app_file: expected a file path relative to the repository root, got "
          "'../../etc/passwd'");
    fails("sdk: gradio\napp_file: /etc/passwd\n", EINVAL,
          "README.md:3: app_file: expected a file path relative to the repository root, got "
          "'/etc/passwd'");
    fails("sdk: gradio\napp_file: \"a\\nb\"\n", EINVAL,
          "README.md:3: app_file: expected a file path relative to the repository root, got "
          "'a\\x0ab'");
    fails("sdk: gradio\napp_file: src/\n", EINVAL,
          "README.md:3: app_file: expected a file path relative to the repository root, got "
          "'src/'");
    fails("sdk: gradio\nbase_path: ui\n", EINVAL,
          "README.md:3: base_path: expected a URL path starting with '/', got 'ui'");
    fails("sdk: gradio\nheader: big\n", EINVAL,
          "README.md:3: header: expected one of mini, default, got 'big'");
    fails("sdk: gradio\nemoji: abc\n", EINVAL,
          "README.md:3: emoji: expected a single emoji, got 'abc'");
    fails("sdk: gradio\nthumbnail: ftp://x/y.png\n", EINVAL,
          "README.md:3: thumbnail: expected an http:// or https:// URL, got 'ftp://x/y.png'");
    fails("sdk: gradio\ntitle: [a, b]\n", EINVAL,
          "README.md:3: title: expected a string, got a list");
    fails("sdk: gradio\ntitle: \"two\\nlines\"\n", EINVAL,
          "README.md:3: title: expected one line of text, got 'two\\x0alines'");
    fails("sdk: gradio\ntags: {a: b}\n", EINVAL,
          "README.md:3: tags: expected a list of strings, got a mapping");
    fails("sdk: gradio\ntags: [ok, [nested]]\n", EINVAL,
          "README.md:3: tags[1]: expected a string, got a list");
    fails("sdk: gradio\nmodels: [\"bad id!\"]\n", EINVAL,
          "README.md:3: models[0]: expected a repo id such as 'owner/name', got 'bad id!'");
    fails("sdk: gradio\ndatasets: [a/b/c]\n", EINVAL,
          "README.md:3: datasets[0]: expected a repo id such as 'owner/name', got 'a/b/c'");
    fails("sdk: gradio\nduplicated_from: ../x\n", EINVAL,
          "README.md:3: duplicated_from: expected a repo id such as 'owner/name', got '../x'");
    fails_prefix("sdk: gradio\nhf_oauth_scopes: [email, root]\n", EINVAL,
                 "README.md:3: hf_oauth_scopes[1]: expected one of openid, profile, email,");
    fails("sdk: gradio\nhf_oauth: 1\n", EINVAL,
          "README.md:3: hf_oauth: expected true or false, got '1'");
    fails("sdk: gradio\nhf_oauth_expiration_minutes: 50000\n", EINVAL,
          "README.md:3: hf_oauth_expiration_minutes: expected an integer in 1..43200, got "
          "'50000'");
    fails("sdk: gradio\nhf_oauth_authorized_org: [\"a b\"]\n", EINVAL,
          "README.md:3: hf_oauth_authorized_org[0]: expected an organization name, got 'a b'");
    fails("sdk: gradio\nsuggested_hardware: T4 Small\n", EINVAL,
          "README.md:3: suggested_hardware: expected a hardware flavor such as 't4-small', got "
          "'T4 Small'");
    fails("sdk: gradio\nsuggested_storage: huge\n", EINVAL,
          "README.md:3: suggested_storage: expected one of small, medium, large, got 'huge'");
    fails("sdk: gradio\nstartup_duration_timeout: 30x\n", EINVAL,
          "README.md:3: startup_duration_timeout: expected a duration between 1s and 1d such "
          "as '30m' or '1h', got '30x'");
    fails("sdk: gradio\nstartup_duration_timeout: 25h\n", EINVAL,
          "README.md:3: startup_duration_timeout: expected a duration between 1s and 1d such "
          "as '30m' or '1h', got '25h'");
    fails("sdk: gradio\nstartup_duration_timeout: 30\n", EINVAL,
          "README.md:3: startup_duration_timeout: expected a duration between 1s and 1d such "
          "as '30m' or '1h', got '30'");
    fails_prefix("sdk: gradio\ncustom_headers:\n  cross-origin-opener-policy: evil\n", EINVAL,
                 "README.md:4: custom_headers.cross-origin-opener-policy: expected one of "
                 "same-origin, ");
    fails("sdk: gradio\ncustom_headers:\n  cross-origin-opener-policy: \"same-origin\\r\\nX: "
          "y\"\n",
          EINVAL,
          "README.md:4: custom_headers.cross-origin-opener-policy: expected one of same-origin, "
          "same-origin-allow-popups, noopener-allow-popups, unsafe-none, got "
          "'same-origin\\x0d\\x0aX: y'");
    fails("sdk: gradio\ncustom_headers: [a]\n", EINVAL,
          "README.md:3: custom_headers: expected a mapping, got a list");
    fails("sdk: gradio\npreload_from_hub: [\"a/b c d e\"]\n", EINVAL,
          "README.md:3: preload_from_hub[0]: expected 'repo', 'repo file1,file2' or 'repo "
          "file1,file2 revision', got 'a/b c d e'");
    fails("sdk: gradio\npreload_from_hub: [\"a/b ../x\"]\n", EINVAL,
          "README.md:3: preload_from_hub[0]: expected a file path relative to the repository "
          "root, got '../x'");
    fails("sdk: gradio\npreload_from_hub: [\"a/b f -rf\"]\n", EINVAL,
          "README.md:3: preload_from_hub[0]: expected a branch, tag or commit, got '-rf'");
    fails("sdk: gradio\npreload_from_hub: [{a: b}]\n", EINVAL,
          "README.md:3: preload_from_hub[0]: expected 'repo', 'repo file1,file2' or 'repo "
          "file1,file2 revision', got a mapping");
    fails("sdk: gradio\npreload_from_hub: \"   \"\n", EINVAL,
          "README.md:3: preload_from_hub[0]: expected 'repo', 'repo file1,file2' or 'repo "
          "file1,file2 revision', got an empty string");
    fails("sdk: gradio\ntitle: a\ntitle: b\n", EINVAL, "README.md:4: duplicate key 'title'");
    fails("sdk: gradio\ncustom_headers:\n  cross-origin-opener-policy: same-origin\n"
          "  cross-origin-opener-policy: unsafe-none\n",
          EINVAL, "README.md:5: duplicate key 'cross-origin-opener-policy'");
    fails("- sdk\n- gradio\n", EINVAL, "README.md:2: expected a mapping of keys, got a list");
    fails("just text\n", EINVAL, "README.md:2: expected a mapping of keys, got a string");
    fails_prefix("sdk: [gradio\n", EINVAL, "README.md:3: invalid YAML: ");
    fails_prefix("sdk: gradio\n  bad: indent\n", EINVAL, "README.md:3: invalid YAML: ");
    fails("sdk: gradio\n\"\": novalue\n", EINVAL,
          "README.md:3: mapping keys must be non-empty strings");
    fails("sdk: gradio\n[a]: b\n", EINVAL, "README.md:3: mapping keys must be non-empty strings");
    fails("sdk: gradio\n--- a: b\n", EINVAL, "README.md:3: only one YAML document is allowed");
    fails_prefix("sdk: gradio\n...\nx: 1\n", EINVAL, "README.md:4: invalid YAML: ");
}

static void test_warnings(void)
{
    struct rt_spaceconfig *cfg;
    int r;

    r = parse("---\nsdk: gradio\ncolour: red\napp_port: 8080\nsuggested_storage: small\n"
              "hf_oauth_redirect_path: /cb\ncustom_headers:\n  x-frame-options: deny\n"
              "app_build_command: make\n---\n",
              &cfg);
    is_int(r, 0, "unknown and ignored keys are not fatal");
    if (r < 0)
        return;
    is_int(cfg->unknown_keys.n, 2, "two unknown keys kept");
    is_str(cfg->unknown_keys.v[0], "colour", "  colour");
    is_str(cfg->unknown_keys.v[1], "custom_headers.x-frame-options", "  the nested one");
    is_int(cfg->warnings.n, 6, "six warnings");
    if (cfg->warnings.n == 6) {
        is_str(cfg->warnings.v[0], "README.md:3: colour: unknown key, ignored", "unknown key");
        is_str(cfg->warnings.v[1],
               "README.md:5: suggested_storage: ignored: persistent storage "
               "is discontinued",
               "deprecated key");
        ok(strstr(cfg->warnings.v[2], "README.md:6: hf_oauth_redirect_path: ignored") ==
               cfg->warnings.v[2],
           "legacy redirect path");
        is_str(cfg->warnings.v[3],
               "README.md:8: custom_headers.x-frame-options: unknown key, "
               "ignored",
               "nested unknown key");
        is_str(cfg->warnings.v[4],
               "README.md:4: app_port: ignored for sdk gradio (only docker "
               "Spaces choose their port)",
               "app_port for gradio");
        is_str(cfg->warnings.v[5],
               "README.md:9: app_build_command: ignored for sdk gradio "
               "(only static Spaces have a build command)",
               "app_build_command for gradio");
    }
    is_int(cfg->suggested_storage, RT_STORAGE_SMALL, "deprecated value still read");
    rt_spaceconfig_free(cfg);

    {
        char buf[8192];
        size_t o = (size_t) snprintf(buf, sizeof(buf), "---\nsdk: gradio\n");

        for (int i = 0; i < 100; i++)
            o += (size_t) snprintf(buf + o, sizeof(buf) - o, "unknown%d: x\n", i);
        (void) snprintf(buf + o, sizeof(buf) - o, "---\n");
        r = parse(buf, &cfg);
        is_int(r, 0, "100 unknown keys");
        if (r == 0) {
            is_int(cfg->warnings.n, RT_CONF_MAX_WARNINGS + 1, "warnings are capped");
            is_str(cfg->warnings.v[RT_CONF_MAX_WARNINGS], "README.md: more warnings not shown",
                   "  with a last line saying so");
            is_int(cfg->unknown_keys.n, 100, "every unknown key is kept");
        }
        rt_spaceconfig_free(cfg);
    }
}

static char *repeat(const char *head, const char *unit, size_t n, const char *tail)
{
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    char *s = malloc(hl + ul * n + tl + 1), *p;

    if (!s)
        abort();
    memcpy(s, head, hl);
    p = s + hl;
    for (size_t i = 0; i < n; i++, p += ul)
        memcpy(p, unit, ul);
    memcpy(p, tail, tl + 1);
    return s;
}

static void test_limits(void)
{
    struct rt_spaceconfig *cfg = NULL;
    char *s;
    int r;

    s = repeat("---\nsdk: gradio\ntitle: x\n", "# padding padding padding padding padding\n", 2000,
               "---\n");
    is_int(parse(s, &cfg), -E2BIG, "front matter over 64 KiB");
    is_str(err.msg, "README.md: front matter is larger than 64 KiB", "  message");
    free(s);

    s = repeat("---\nsdk: gradio\nx: ", "[", 40, "\n---\n");
    is_int(parse(s, &cfg), -E2BIG, "deep flow nesting refused");
    is_str(err.msg, "README.md:3: YAML is nested deeper than 16 levels", "  message");
    free(s);

    s = repeat("---\nsdk: gradio\nx: ", "{a: ", 5000, "\n---\n");
    r = parse(s, &cfg);
    ok(r == -E2BIG && !cfg, "5000 nested mappings refused early (r=%d)", r);
    free(s);

    s = repeat("---\nsdk: gradio\ntags:\n", "  - t\n", 300, "---\n");
    is_int(parse(s, &cfg), -EINVAL, "300 tags");
    is_str(err.msg, "README.md:4: tags: more than 256 items", "  message");
    free(s);

    s = repeat("---\nsdk: gradio\npreload_from_hub:\n", "  - gpt2\n", 65, "---\n");
    is_int(parse(s, &cfg), -EINVAL, "65 preloads");
    is_str(err.msg, "README.md:4: preload_from_hub: more than 64 items", "  message");
    free(s);

    s = repeat("---\nsdk: gradio\npreload_from_hub: [\"gpt2 ", "f,", 300, "f\"]\n---\n");
    is_int(parse(s, &cfg), -EINVAL, "a preload of 301 files");
    is_str(err.msg, "README.md:3: preload_from_hub[0]: more than 256 files", "  message");
    free(s);

    s = repeat("---\nsdk: gradio\ntags: [", "t", 200, "]\n---\n");
    is_int(parse(s, &cfg), -EINVAL, "a 200-byte tag");
    is_str(err.msg, "README.md:3: tags[0]: longer than 128 bytes", "  message");
    free(s);

    s = repeat("---\nsdk: gradio\nx: [", "1,", 12000, "1]\n---\n");
    is_int(parse(s, &cfg), -E2BIG, "12000 nodes");
    ok(strstr(err.msg, "YAML has more than 10000 nodes") != NULL, "  message: %s", err.msg);
    free(s);

    s = repeat("---\nsdk: gradio\ntitle: ", "a", 9000, "\n---\n");
    is_int(parse(s, &cfg), -E2BIG, "a 9000-byte value");
    is_str(err.msg, "README.md:3: a value is longer than 8192 bytes", "  message");
    free(s);

    s = repeat("---\nsdk: gradio\ntitle: ", "a", 300, "\n---\n");
    is_int(parse(s, &cfg), -EINVAL, "a 300-byte title");
    is_str(err.msg, "README.md:3: title: longer than 256 bytes", "  message");
    free(s);

    /* The classic "billion laughs": each alias would multiply the one before. */
    is_int(parse("---\nsdk: gradio\na: &a [x, x, x, x, x, x, x, x, x]\n"
                 "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                 "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n---\n",
                 &cfg),
           -EINVAL, "alias bomb refused");
    is_str(err.msg, "README.md:4: YAML aliases ('*name') are not supported", "  message");
    is_int(parse("---\nsdk: &s gradio\n---\n", &cfg), 0, "an anchor alone is harmless");
    rt_spaceconfig_free(cfg);

    is_int(parse("---\nsdk: gradio\ntitle: \"a\\0b\"\n---\n", &cfg), -EINVAL,
           "an escaped NUL in a value");
    is_str(err.msg, "README.md:3: a value contains a NUL byte", "  message");
    r = parse("---\nsdk: gradio\ntitle: caf\xe9\n---\n", &cfg);
    ok(r == -EINVAL && strstr(err.msg, "invalid YAML: ") && strncmp(err.msg, "README.md:", 10) == 0,
       "Latin-1 (not UTF-8) refused: %s", err.msg);
    r = parse("---\nsdk: gradio\ntitle: \xed\xa0\x80\n---\n", &cfg);
    ok(r == -EINVAL && !cfg, "a UTF-8 surrogate refused: %s", err.msg);
    {
        static const char utf16[] = "---\n\xff\xfes\0d\0k\0:\0 \0g\0\n---\n";
        r = rt_spaceconfig_parse(utf16, sizeof(utf16) - 1, &cfg, &err);
        ok(r == -EINVAL && !cfg, "UTF-16 refused: %s", err.msg);
    }
    r = parse("---\nsdk: gradio\ntitle: \x01\n---\n", &cfg);
    ok(r == -EINVAL && !cfg, "a control character refused: %s", err.msg);
}

static bool has_in(const char *path, void *userdata)
{
    return strcmp(path, (const char *) userdata) == 0;
}

static void test_app_file(void)
{
    static const char *const files[] = { "README.md", "app.py", "dist/index.html" };
    struct rt_spaceconfig *cfg;

    if (parse("---\nsdk: gradio\n---\n", &cfg) == 0) {
        is_int(rt_spaceconfig_check_app_file_in(cfg, files, 3, &err), 0, "app.py is there");
        is_int(rt_spaceconfig_check_app_file_in(cfg, files, 1, &err), -ENOENT,
               "NO_APP_FILE when app.py is missing");
        is_str(err.msg,
               "app file 'app.py' not found in the repository (sdk gradio; app_file "
               "in README.md names another)",
               "  message");
        is_int(rt_spaceconfig_check_app_file(cfg, has_in, (void *) "app.py", &err), 0,
               "callback form");
        rt_spaceconfig_free(cfg);
    }
    if (parse("---\nsdk: static\napp_file: ./dist/index.html\n---\n", &cfg) == 0) {
        is_int(rt_spaceconfig_check_app_file_in(cfg, files, 3, &err), 0,
               "./dist/index.html matches dist/index.html");
        rt_spaceconfig_free(cfg);
    }
    if (parse("---\nsdk: static\n---\n", &cfg) == 0) {
        is_int(rt_spaceconfig_check_app_file_in(cfg, files, 3, &err), -ENOENT,
               "static without index.html");
        rt_spaceconfig_free(cfg);
    }
    if (parse("---\nsdk: static\napp_file: out/index.html\napp_build_command: make\n---\n", &cfg) ==
        0) {
        is_int(rt_spaceconfig_check_app_file_in(cfg, files, 3, &err), 0,
               "static with a build command: its app file comes from the build");
        rt_spaceconfig_free(cfg);
    }
    if (parse("---\nsdk: docker\napp_file: app.py\n---\n", &cfg) == 0) {
        is_int(rt_spaceconfig_check_app_file_in(cfg, files, 3, &err), -ENOENT,
               "docker needs a Dockerfile, whatever app_file says");
        is_str(err.msg, "app file 'Dockerfile' not found in the repository (sdk docker)",
               "  message");
        rt_spaceconfig_free(cfg);
    }
}

static void test_scalar_types(void)
{
    static const struct {
        const char *value;
        enum rt_yscalar want;
    } cases[] = {
        { "true", RT_YSCALAR_BOOL },     { "False", RT_YSCALAR_BOOL },
        { "yes", RT_YSCALAR_STRING },    { "42", RT_YSCALAR_INT },
        { "-7", RT_YSCALAR_INT },        { "3.10", RT_YSCALAR_FLOAT },
        { "1e5", RT_YSCALAR_FLOAT },     { ".5", RT_YSCALAR_FLOAT },
        { "4.36.1", RT_YSCALAR_STRING }, { "\"42\"", RT_YSCALAR_STRING },
        { "'true'", RT_YSCALAR_STRING }, { ".inf", RT_YSCALAR_STRING },
        { "1e", RT_YSCALAR_STRING },     { ".", RT_YSCALAR_STRING },
        { "+", RT_YSCALAR_STRING },      { "0x1f", RT_YSCALAR_STRING },
        { "1.", RT_YSCALAR_FLOAT },      { "+1", RT_YSCALAR_INT },
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct rt_ynode *root = NULL;
        char doc[64];

        (void) snprintf(doc, sizeof(doc), "v: %s\n", cases[i].value);
        if (rt_yaml_parse(doc, strlen(doc), "t", 1, NULL, &root, &err) < 0) {
            ok(0, "parse %s: %s", doc, err.msg);
            continue;
        }
        is_int(rt_ynode_scalar_type(rt_ynode_get(root, "v")), cases[i].want, cases[i].value);
        rt_ynode_free(root);
    }
    is_int(rt_ynode_scalar_type(NULL), RT_YSCALAR_STRING, "NULL is a string");
}

static void test_helpers(void)
{
    static const struct {
        const char *in;
        int r;
        uint64_t ms;
    } durations[] = {
        { "500ms", 0, 500 },
        { "90s", 0, 90000 },
        { "30m", 0, 1800000 },
        { "1h", 0, 3600000 },
        { "2d", 0, 172800000 },
        { "1h30m", 0, 5400000 },
        { "0s", 0, 0 },
        { "", -EINVAL, 0 },
        { "30", -EINVAL, 0 },
        { "m", -EINVAL, 0 },
        { "1x", -EINVAL, 0 },
        { "1 h", -EINVAL, 0 },
        { "-1s", -EINVAL, 0 },
        { "1mss", -EINVAL, 0 },
        { "1.5h", -EINVAL, 0 },
        { "99999999999999999999d", -ERANGE, 0 },
        { "9999999999999999d", -ERANGE, 0 },
    };
    char q[64];

    for (size_t i = 0; i < ARRAY_SIZE(durations); i++) {
        uint64_t ms = 12345;
        int r = rt_parse_duration_ms(durations[i].in, &ms);

        is_int(r, durations[i].r, durations[i].in);
        if (r == 0)
            is_int(ms, durations[i].ms, "  value");
        else
            is_int(ms, 12345, "  untouched on failure");
    }
    is_str(rt_conf_quote("a\nb\x80'", 5, q, sizeof(q)), "a\\x0ab\\x80'", "quote escapes");
    is_str(rt_conf_quote("0123456789012345678901234567890123456789abc", 43, q, sizeof(q)),
           "0123456789012345678901234567890123456789...", "quote truncates");
}

int main(void)
{
    tap_start();
    test_minimal_and_defaults();
    test_every_key();
    test_values();
    test_front_matter();
    test_errors();
    test_warnings();
    test_limits();
    test_app_file();
    test_helpers();
    test_scalar_types();
    return tap_done();
}
