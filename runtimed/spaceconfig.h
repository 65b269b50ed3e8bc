/* The Space config: the YAML front matter of a Space's README.md, typed and validated.
 *
 * Every key of the Hub's config reference is known (docs/REFERENCE §1.1).  A README that
 * cannot be read as a config gives an error the build turns into CONFIG_ERROR, with a
 * message that names the line, the key and the problem:
 *   README.md:4: sdk: expected one of gradio, streamlit, static, docker, got 'gradoo'
 * Unknown keys are kept (in the tree and by name) and reported as warnings. */
#ifndef SP_RUNTIMED_SPACECONFIG_H
#define SP_RUNTIMED_SPACECONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "conftable.h"
#include "error.h"

enum rt_sdk {
    RT_SDK_GRADIO,
    RT_SDK_STREAMLIT,
    RT_SDK_STATIC,
    RT_SDK_DOCKER,
    _RT_SDK_MAX,
};

enum rt_color {
    RT_COLOR_RED,
    RT_COLOR_YELLOW,
    RT_COLOR_GREEN,
    RT_COLOR_BLUE,
    RT_COLOR_INDIGO,
    RT_COLOR_PURPLE,
    RT_COLOR_PINK,
    RT_COLOR_GRAY,
    _RT_COLOR_MAX,
};

enum rt_header {
    RT_HEADER_MINI,
    RT_HEADER_DEFAULT,
    _RT_HEADER_MAX,
};

enum rt_storage {
    RT_STORAGE_SMALL,
    RT_STORAGE_MEDIUM,
    RT_STORAGE_LARGE,
    _RT_STORAGE_MAX,
};

/* custom_headers: the only three the Hub allows; NULL when not set. */
struct rt_custom_headers {
    char *coep; /* cross-origin-embedder-policy */
    char *coop; /* cross-origin-opener-policy */
    char *corp; /* cross-origin-resource-policy */
};

/* One preload_from_hub item: "repo", "repo f1,f2" or "repo f1,f2 revision". */
struct rt_preload {
    char *repo;           /* "owner/name" or "name" */
    struct rt_strv files; /* empty: the whole repo */
    char *revision;       /* NULL: the default branch */
};

struct rt_preloads {
    struct rt_preload *items;
    size_t n;
};

struct rt_spaceconfig {
    /* Enums are -1 when the README does not set them (and they have no default). */
    char *title;
    char *emoji;
    int color_from; /* enum rt_color */
    int color_to;
    int sdk; /* enum rt_sdk; always set after a successful parse */
    char *sdk_version;
    char *python_version; /* default "3.10" */
    char *app_file;       /* default by sdk: app.py, app.py, index.html, Dockerfile */
    char *app_build_command;
    int64_t app_port; /* default 7860; only docker Spaces choose it */
    char *base_path;
    bool full_width; /* fullWidth, default true */
    int header;      /* enum rt_header */
    char *short_description;
    struct rt_strv models;
    struct rt_strv datasets;
    struct rt_strv tags;
    char *thumbnail;
    bool pinned;
    char *license;
    char *duplicated_from;
    bool hf_oauth;
    struct rt_strv hf_oauth_scopes;
    int64_t hf_oauth_expiration_minutes; /* default 480 */
    struct rt_strv hf_oauth_authorized_org;
    char *hf_oauth_redirect_path; /* legacy, ignored by the Hub since 2023-12 */
    char *suggested_hardware;
    int suggested_storage; /* enum rt_storage; ignored: the Hub discontinued it */
    bool disable_embedding;
    uint64_t startup_duration_timeout_ms; /* default 30m */
    struct rt_custom_headers custom_headers;
    struct rt_preloads preload_from_hub;

    struct rt_strv unknown_keys; /* names of keys no table knows, as written */
    struct rt_strv warnings;     /* "README.md:9: colour: unknown key, ignored", ... */
    struct rt_ynode *tree;       /* the whole front matter, for the API's cardData: scalars are
                            * text; rt_ynode_scalar_type() says which are bools/numbers */
};

#define RT_README_NAME "README.md"
#define RT_FRONT_MATTER_MAX (64 * 1024)

/* Reads the front matter of @readme (@len bytes; NULL means the repo has no README.md).
 * Returns 0 and the config in *ret (free with rt_spaceconfig_free()), or -EINVAL with a
 * message for CONFIG_ERROR, -E2BIG past a limit, -ENOMEM. */
int rt_spaceconfig_parse(const char *readme, size_t len, struct rt_spaceconfig **ret,
                         struct rt_err *err);

void rt_spaceconfig_free(struct rt_spaceconfig *cfg);
void rt_spaceconfig_freep(struct rt_spaceconfig **cfg);

/* Writes every README key as a Markdown table (from the parser's own table). */
int rt_spaceconfig_describe(FILE *out);

const char *rt_sdk_name(int sdk);
/* Returns the enum rt_sdk for @name, or -1. */
int rt_sdk_from_name(const char *name);
const char *rt_color_name(int color);

/* Answers whether the repository has @path (a path relative to its root). */
typedef bool (*rt_repo_has_fn)(const char *path, void *userdata);

/* Decides NO_APP_FILE: returns 0 when the repository has the config's app file, or
 * -ENOENT with a message ("app file 'app.py' not found in the repository").
 * For docker Spaces the app file is the Dockerfile.  A static Space with an
 * app_build_command passes: its app file is made by the build, so check it after. */
int rt_spaceconfig_check_app_file(const struct rt_spaceconfig *cfg, rt_repo_has_fn has,
                                  void *userdata, struct rt_err *err);

/* The same against a list of the repository's file paths. */
int rt_spaceconfig_check_app_file_in(const struct rt_spaceconfig *cfg, const char *const *files,
                                     size_t n, struct rt_err *err);

#endif
