/* From a Space's config and its SDK template to what the build runs: the shell script
 * that fills the dependency layer, what goes into that layer's key, and the package
 * index settings of the operator.  Kept apart from build.h so the template's plan type
 * and the build's plan type never meet in one file. */
#ifndef SP_RUNTIMED_BUILDPLAN_H
#define SP_RUNTIMED_BUILDPLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "conftable.h"
#include "error.h"
#include "spaceconfig.h"

struct rt_config;
struct rt_templates;

#define RT_BUILDPLAN_MAX_BINDS 8

/* The package index settings handed to pip inside builds. */
struct rt_pip_settings {
    char index_url[512];
    char extra_index_url[1024];
    char trusted_host[256];
    char find_links[512];
    char cert[512];
    char proxy[256];
};

/* Fills @ret from runtimed's config, and where a setting is empty there, from the
 * host's pip settings: the PIP_* variables of runtimed's environment, then
 * /etc/pip.conf ([global] and [install]).  @pip_conf names that file (tests). */
void rt_pip_settings_load(const struct rt_config *cfg, const char *pip_conf,
                          struct rt_pip_settings *ret);

struct rt_recipe {
    char *deps_script;        /* NULL: the SDK needs no dependency layer (static) */
    struct rt_strv key_files; /* repo files whose content goes into the layer key */
    char *key_extra;          /* the rest of the key: sdk, versions, python, index */
    struct rt_strv env;       /* "K=V" for the build sandbox */
    struct rt_strv ro_binds;  /* host paths the build reads (CA bundle, local indexes) */
    struct rt_strv notes;     /* lines for the build log ("python_version 3.10 asked...") */
};

struct rt_recipe_in {
    const struct rt_templates *templates; /* the one for the config's sdk is used */
    const struct rt_spaceconfig *cfg;
    const char *space_id; /* OWNER/NAME */
    const char *host;     /* owner-name.domain */
    rt_repo_has_fn has;   /* answers the template's if_exists */
    void *userdata;
    const struct rt_pip_settings *pip;
    const char *rootfs; /* the base image, "" or NULL for the host's /usr */
};

/* Renders the build steps of the template of the config's sdk into a script.  Returns
 * 0 and fills @ret (free with rt_recipe_done()); -ENOENT when no template serves that
 * sdk and -EOPNOTSUPP when it is not supported on this node (both config errors for the
 * author), -EINVAL, -ENOMEM. */
int rt_recipe_render(const struct rt_recipe_in *in, struct rt_recipe *ret, struct rt_err *err);
void rt_recipe_done(struct rt_recipe *r);

/* Loads the SDK templates: @cfg's templates_dir, else ../templates beside the running
 * binary (the source tree), else ./templates.  Free with rt_recipe_templates_free(). */
int rt_recipe_templates_load(const struct rt_config *cfg, struct rt_templates **ret,
                             struct rt_err *err);
void rt_recipe_templates_free(struct rt_templates *set);

/* Picks the python3.X of the base nearest to @asked ("3.10", "3.10.4"; NULL or "" for
 * the default).  Writes "python3.11" to @ret and returns 1 when it is not the asked
 * minor version, 0 when it is, -ENOENT when the base has no python3.X at all. */
int rt_python_pick(const char *rootfs, const char *asked, char *ret, size_t len);

/* Quotes @s for /bin/sh (single quotes).  Returns a malloc'd string or NULL. */
char *rt_sh_quote(const char *s);

#endif
