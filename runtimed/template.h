/* SDK templates: templates/<sdk>.yaml, one recipe per SDK (base, build steps, run
 * command, port, environment, health check).  Every file is read and validated at start
 * by one table of keys; unknown keys are errors, so adding an SDK is adding a file.
 *
 * Strings may hold ${NAME} placeholders ($$ is a '$'), filled per Space when rendered;
 * the names are fixed (rt_template_placeholders) and checked when the file is loaded. */
#ifndef SP_RUNTIMED_TEMPLATE_H
#define SP_RUNTIMED_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "conftable.h"
#include "error.h"
#include "spaceconfig.h"

struct rt_tpl_step {
    char *name;
    struct rt_strv run; /* argv, no shell */
    char *if_exists;    /* run only when the repository has this file */
    char *if_set;       /* run only when this placeholder is not empty */
    char *unless_set;   /* run only when this placeholder is empty */
    bool root;          /* needs root inside the build sandbox (apt-get) */
};

struct rt_template {
    char *name; /* the file name without ".yaml"; equals sdk */
    char *sdk;
    bool supported;
    char *reason; /* why not, when !supported */
    char *base_image;
    char *base_python;
    struct rt_strv base_packages;
    struct rt_conf_list build_steps; /* struct rt_tpl_step */
    struct rt_strv run_command;
    int64_t run_port;
    bool run_use_app_port; /* docker: the README's app_port decides */
    char *run_workdir;
    int64_t run_uid;
    struct rt_strmap run_env;
    char *health_path;
    uint64_t health_interval_ms;
    uint64_t health_timeout_ms;
};

struct rt_templates {
    struct rt_template **v;
    size_t n;
};

struct rt_placeholder {
    const char *name;
    bool runtime; /* supplied by the caller (extra), not computed from the config */
    const char *doc;
};

extern const struct rt_placeholder rt_template_placeholders[];
extern const size_t rt_template_n_placeholders;

#define RT_TEMPLATES_DIR "templates"
#define RT_TEMPLATES_MAX 64

/* Parses one template.  @file names it in messages ("templates/gradio.yaml") and its
 * base name must equal the sdk key.  Returns 0 and *ret (free with rt_template_free()),
 * or -EINVAL with "templates/gradio.yaml:14: run.port: expected an integer in
 * 1..65535, got 'abc'", -E2BIG, -ENOMEM. */
int rt_template_parse(const char *file, const char *buf, size_t len, struct rt_template **ret,
                      struct rt_err *err);
void rt_template_free(struct rt_template *t);

/* Writes every template key as a Markdown table, then the placeholders. */
int rt_template_describe(FILE *out);
void rt_template_freep(struct rt_template **t);

/* Reads every DIR/NAME.yaml.  Any invalid file fails the whole load (so a reload keeps
 * the old set).  Returns 0 and *ret, or -errno with a message. */
int rt_templates_load(const char *dir, struct rt_templates **ret, struct rt_err *err);
void rt_templates_free(struct rt_templates *set);
void rt_templates_freep(struct rt_templates **set);

/* Returns the template for @sdk or NULL. */
const struct rt_template *rt_templates_find(const struct rt_templates *set, const char *sdk);

/* Who and what a template is rendered for. */
struct rt_render_in {
    const struct rt_spaceconfig *cfg;
    const char *space_id;          /* "OWNER/NAME" */
    const char *host;              /* "owner-name.localhost" */
    const struct rt_strmap *extra; /* runtime placeholders: ACCELERATOR, CPU_CORES... */
};

/* Fills the placeholder values for @in into *ret_vars (free with rt_strmap_done()).
 * Computed values come first, so extra cannot override them. */
int rt_template_vars(const struct rt_template *t, const struct rt_render_in *in,
                     struct rt_strmap *ret_vars, struct rt_err *err);

/* Expands ${NAME} and $$ in @in from @vars.  Returns 0 and a malloc'd *ret, or -EINVAL
 * ("placeholder '${X}' has no value"), -E2BIG past 64 KiB, -ENOMEM. */
int rt_template_expand(const char *in, const struct rt_strmap *vars, char **ret,
                       struct rt_err *err);

/* What runs a Space: its command, environment and health check. */
struct rt_run_spec {
    struct rt_strv argv;
    struct rt_strv env; /* "KEY=VALUE", in the template's order */
    uint16_t port;
    char *workdir;
    uint32_t uid;
    char *health_path;
    uint64_t health_interval_ms;
    uint64_t health_timeout_ms;
    uint64_t startup_timeout_ms; /* the README's startup_duration_timeout */
};

/* Renders the run command and environment.  Returns 0 and *ret (free with
 * rt_run_spec_free()), -EOPNOTSUPP for a template marked unsupported, -EINVAL. */
int rt_template_render_run(const struct rt_template *t, const struct rt_render_in *in,
                           struct rt_run_spec **ret, struct rt_err *err);
void rt_run_spec_free(struct rt_run_spec *s);
void rt_run_spec_freep(struct rt_run_spec **s);

struct rt_build_cmd {
    char *name;
    struct rt_strv argv;
    bool root;
};

/* What builds a Space: the base and the steps that apply to this repository. */
struct rt_build_plan {
    char *base_image;
    char *python; /* expanded base.python, or NULL */
    struct rt_strv packages;
    struct rt_build_cmd *steps;
    size_t n_steps;
};

/* Renders the build steps, keeping those whose conditions hold (@has answers
 * if_exists).  Returns 0 and *ret (free with rt_build_plan_free()), -EOPNOTSUPP, -EINVAL. */
int rt_template_render_build(const struct rt_template *t, const struct rt_render_in *in,
                             rt_repo_has_fn has, void *userdata, struct rt_build_plan **ret,
                             struct rt_err *err);
void rt_build_plan_free(struct rt_build_plan *p);
void rt_build_plan_freep(struct rt_build_plan **p);

#endif
