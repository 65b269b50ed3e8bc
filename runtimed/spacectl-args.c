/* spacectl's command table, its argument parser and its help texts.  One table
 * drives parsing, validation of option names and every --help page. */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "spacectl-backup.h"
#include "spacectl.h"
#include "banned.h"

static const struct sc_opt no_opts[] = { { NULL, NULL, NULL } };

static const struct sc_opt user_add_opts[] = {
    { "admin", NULL, "the user may call the admin endpoints" },
    { "pro", NULL, "on the pro plan (larger daily ZeroGPU quota); default: free" },
    { NULL, NULL, NULL },
};
static const struct sc_opt user_set_opts[] = {
    { "plan", "free|pro", "the user's plan: its daily ZeroGPU quota class (required)" },
    { NULL, NULL, NULL },
};
static const struct sc_opt token_create_opts[] = {
    { "user", "NAME", "the user the token acts as (required)" },
    { "scope", "read|write", "what the token may do (required)" },
    { "space", "OWNER/NAME", "limit the token to this Space" },
    { NULL, NULL, NULL },
};
static const struct sc_opt space_create_opts[] = {
    { "sdk", "SDK", "gradio, streamlit or static (required)" },
    { "hardware", "TIER", "the hardware tier to request (see 'spacectl hardware list')" },
    { "private", NULL, "only the owner and tokens for it can see the Space" },
    { NULL, NULL, NULL },
};
static const struct sc_opt logs_opts[] = {
    { "build", NULL, "show the build log instead of the run log" },
    { "follow", NULL, "keep printing new lines until interrupted" },
    { "tail", "N", "start with the last N lines only" },
    { NULL, NULL, NULL },
};
static const struct sc_opt tier_add_opts[] = {
    { "cpus", "N", "CPUs, fractions allowed (required)" },
    { "memory", "SIZE", "memory limit such as 512M or 16G (required)" },
    { "gpus", "N", "dedicated GPUs per Space (needs --gpu-kind)" },
    { "gpu-kind", "KIND", "GPU model the tier asks for, such as a10g" },
    { "zero", NULL, "ZeroGPU: time slices of a shared GPU instead of dedicated ones" },
    { "disk", "SIZE", "disk limit such as 50G" },
    { "light-sleep", "SECONDS", "idle time before its Spaces are frozen (-1/never)" },
    { NULL, NULL, NULL },
};
static const struct sc_opt tier_set_opts[] = {
    { "sleep", "SECONDS", "idle time before its Spaces are stopped (-1/never)" },
    { "light-sleep", "SECONDS", "idle time before they are frozen (-1/never, default)" },
    { NULL, NULL, NULL },
};
static const struct sc_opt sleep_opts[] = {
    { "light", "SECONDS", "idle time before it is frozen (-1/never, default)" },
    { NULL, NULL, NULL },
};
static const struct sc_opt restart_opts[] = {
    { "factory", NULL, "rebuild from scratch, without the build cache" },
    { NULL, NULL, NULL },
};

const struct sc_cmd sc_commands[] = {
    { "user", "add", "NAME", 1, 1, user_add_opts, "create a user", NULL, sc_cmd_user_add },
    { "user", "set", "NAME", 1, 1, user_set_opts, "change a user's plan", NULL, sc_cmd_user_set },
    { "token", "create", "", 0, 0, token_create_opts, "create an API token (printed once)",
      "Prints the token alone on stdout, so TOKEN=$(spacectl token create ...) works.\n"
      "A write token may push to and manage the Spaces it covers.\n",
      sc_cmd_token_create },
    { "space", "create", "OWNER/NAME", 1, 1, space_create_opts, "create a Space", NULL,
      sc_cmd_space_create },
    { "space", "list", "", 0, 0, no_opts, "list the Spaces the token can see", NULL,
      sc_cmd_space_list },
    { "space", "status", "OWNER/NAME", 1, 1, no_opts, "show a Space and its runtime", NULL,
      sc_cmd_space_status },
    { "space", "rm", "OWNER/NAME", 1, 1, no_opts, "delete a Space, its repo and its data", NULL,
      sc_cmd_space_rm },
    { NULL, "logs", "OWNER/NAME", 1, 1, logs_opts, "print a Space's run or build log",
      "Without --follow, prints the lines the log holds and ends: it asks for them with\n"
      "?follow=0 and, should a server keep the stream open anyway, stops once nothing\n"
      "new has come for 2 seconds.  With --follow, prints new lines until interrupted.\n"
      "With --json, prints each event's JSON object on a line of its own.\n",
      sc_cmd_logs },
    { "hardware", "list", "", 0, 0, no_opts, "list the hardware tiers", NULL,
      sc_cmd_hardware_list },
    { "hardware", "set", "OWNER/NAME TIER", 2, 2, no_opts, "move a Space to another tier", NULL,
      sc_cmd_hardware_set },
    { "tier", "add", "NAME", 1, 1, tier_add_opts, "define a hardware tier",
      "Sizes take K, M, G or T suffixes (powers of 1024).  --gpus with --gpu-kind gives\n"
      "dedicated GPUs; --zero shares GPUs through ZeroGPU leases; neither: CPU only.\n",
      sc_cmd_tier_add },
    { "tier", "rm", "NAME", 1, 1, no_opts, "remove a hardware tier no Space uses", NULL,
      sc_cmd_tier_rm },
    { "tier", "set", "NAME", 1, 1, tier_set_opts, "change the sleep defaults of a tier",
      "The defaults apply to the tier's Spaces that have no setting of their own, from\n"
      "their next idle check.  --light-sleep default: the node's light_sleep_ms.\n",
      sc_cmd_tier_set },
    { NULL, "sleep", "OWNER/NAME SECONDS", 2, 2, sleep_opts,
      "set how long a Space may idle before it sleeps",
      "Two levels.  Light sleep (--light): the Space's cgroup is frozen, it uses no CPU\n"
      "and wakes in milliseconds.  Deep sleep (SECONDS): it is stopped and its memory\n"
      "freed; a visit starts it again.  SECONDS may be -1 or 'never' for a Space that\n"
      "never sleeps; --light takes -1 or 'never' too, or 'default' for its tier's.\n",
      sc_cmd_sleep },
    { NULL, "pause", "OWNER/NAME", 1, 1, no_opts, "stop a Space until it is resumed", NULL,
      sc_cmd_pause },
    { NULL, "resume", "OWNER/NAME", 1, 1, no_opts, "start a paused Space again", NULL,
      sc_cmd_resume },
    { NULL, "restart", "OWNER/NAME", 1, 1, restart_opts, "restart a Space", NULL, sc_cmd_restart },
    { "secret", "set", "OWNER/NAME KEY", 2, 2, no_opts, "set a secret (value read from stdin)",
      "The value is read from stdin; one trailing newline is dropped, so\n"
      "'echo VALUE | spacectl secret set ...' works.  On a terminal it is not echoed.\n",
      sc_cmd_secret_set },
    { "variable", "set", "OWNER/NAME KEY VALUE", 3, 3, no_opts, "set a public variable", NULL,
      sc_cmd_variable_set },
    { "gpu", "list", "", 0, 0, no_opts, "list the GPUs and what holds them", NULL,
      sc_cmd_gpu_list },
    { "gpu", "leases", "", 0, 0, no_opts, "list the ZeroGPU leases and their queue", NULL,
      sc_cmd_gpu_leases },
    { "admin", "backup", "FILE", 1, 1, sc_admin_backup_opts, "back up the whole node into FILE",
      SC_ADMIN_BACKUP_HELP, sc_cmd_admin_backup },
    { "admin", "restore", "FILE", 1, 1, sc_admin_restore_opts,
      "fill a fresh data dir from a backup (offline)", SC_ADMIN_RESTORE_HELP,
      sc_cmd_admin_restore },
    { "admin", "gc", "", 0, 0, no_opts, "remove build outputs nothing uses any more",
      "Runs the node's garbage collector now (docs/builds.md): app and dependency layers\n"
      "no Space runs or will start on, build leftovers, pip caches over their cap.\n"
      "Prints each path removed (under the data dir) and the bytes freed.\n",
      sc_cmd_admin_gc },
};
const size_t sc_n_commands = sizeof(sc_commands) / sizeof(sc_commands[0]);

static bool is_group(const char *word)
{
    for (size_t i = 0; i < sc_n_commands; i++)
        if (sc_commands[i].group && strcmp(sc_commands[i].group, word) == 0)
            return true;
    return false;
}

/* Splits "--name=value" into its name (copied into @name) and value (NULL when there
 * is no '='). */
static const char *split_opt(const char *arg, char *name, size_t len)
{
    const char *eq = strchr(arg, '=');
    size_t n = eq ? (size_t) (eq - arg) : strlen(arg);

    if (n >= len)
        n = len - 1;
    memcpy(name, arg, n);
    name[n] = '\0';
    return eq ? eq + 1 : NULL;
}

/* A word that looks like an option: "-x" or "--x", but not a negative number, which
 * "sleep" takes as a value. */
static bool looks_like_option(const char *arg)
{
    return arg[0] == '-' && arg[1] != '\0' && !(arg[1] >= '0' && arg[1] <= '9');
}

/* Handles the options every command takes.  Returns 1 when @arg was one (consuming
 * a value from argv when it needs one), 0 when it was not, or -EINVAL. */
static int global_opt(int argc, char **argv, int *i, struct sc_inv *inv, struct rt_err *err)
{
    char name[64];
    const char *val = split_opt(argv[*i], name, sizeof(name));
    const char **slot = NULL;

    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        inv->help = true;
    else if (strcmp(name, "--version") == 0)
        inv->version = true;
    else if (strcmp(name, "--json") == 0)
        inv->json = true;
    else if (strcmp(name, "--url") == 0)
        slot = &inv->url;
    else if (strcmp(name, "--token") == 0)
        slot = &inv->token;
    else
        return 0;
    if (!slot) {
        if (val)
            return rt_err_set(err, EINVAL, "option '%s' takes no value", name);
        return 1;
    }
    if (!val) {
        if (*i + 1 >= argc)
            return rt_err_set(err, EINVAL, "option '%s' needs a value", name);
        val = argv[++*i];
    }
    *slot = val;
    return 1;
}

/* Handles one option of @cmd.  Returns 0 or -EINVAL. */
static int cmd_opt(int argc, char **argv, int *i, struct sc_inv *inv, struct rt_err *err)
{
    const struct sc_cmd *cmd = inv->cmd;
    char name[64];
    const char *val = split_opt(argv[*i], name, sizeof(name));

    for (int k = 0; cmd->opts[k].name; k++) {
        const struct sc_opt *o = &cmd->opts[k];

        if (strncmp(name, "--", 2) != 0 || strcmp(name + 2, o->name) != 0)
            continue;
        if (!o->metavar) {
            if (val)
                return rt_err_set(err, EINVAL, "option '%s' takes no value", name);
            inv->optval[k] = "";
            return 0;
        }
        if (!val) {
            if (*i + 1 >= argc)
                return rt_err_set(err, EINVAL, "option '%s' needs a value (%s)", name, o->metavar);
            val = argv[++*i];
        }
        inv->optval[k] = val;
        return 0;
    }
    /* a value that starts with '-' is a legitimate argument: say how to pass one */
    return rt_err_set(err, EINVAL, "unknown option '%s' for '%s%s%s'%s", argv[*i],
                      cmd->group ? cmd->group : "", cmd->group ? " " : "", cmd->name,
                      cmd->max_pos > 0 ? "; an argument that starts with '-' goes after '--'" : "");
}

/* Finds the command named by argv[*i] (and the word after it, for groups). */
static int find_cmd(int argc, char **argv, int *i, struct sc_inv *inv, struct rt_err *err)
{
    const char *w1 = argv[(*i)++];
    int r;

    if (strcmp(w1, "help") == 0) {
        /* "spacectl help [GROUP [NAME]]" is "spacectl [GROUP [NAME]] --help" */
        inv->help = true;
        if (*i >= argc)
            return 0;
        w1 = argv[(*i)++];
    }
    if (!is_group(w1)) {
        for (size_t k = 0; k < sc_n_commands; k++)
            if (!sc_commands[k].group && strcmp(sc_commands[k].name, w1) == 0) {
                inv->cmd = &sc_commands[k];
                return 0;
            }
        return rt_err_set(err, EINVAL, "unknown command '%s'", w1);
    }
    /* a group: global options may sit between its two words */
    while (*i < argc && looks_like_option(argv[*i])) {
        r = global_opt(argc, argv, i, inv, err);
        if (r < 0)
            return r;
        if (r == 0)
            return rt_err_set(err, EINVAL, "'%s' needs a subcommand before '%s'", w1, argv[*i]);
        (*i)++;
    }
    if (*i >= argc) {
        if (inv->help) {
            inv->group_help = w1;
            return 0;
        }
        return rt_err_set(err, EINVAL, "'%s' needs a subcommand", w1);
    }
    for (size_t k = 0; k < sc_n_commands; k++)
        if (sc_commands[k].group && strcmp(sc_commands[k].group, w1) == 0 &&
            strcmp(sc_commands[k].name, argv[*i]) == 0) {
            inv->cmd = &sc_commands[k];
            (*i)++;
            return 0;
        }
    return rt_err_set(err, EINVAL, "unknown command '%s %s'", w1, argv[*i]);
}

/* Parses the options and arguments after the command's words, from argv[@i]. */
static int cmd_args(int argc, char **argv, int i, struct sc_inv *inv, struct rt_err *err)
{
    bool only_pos = false;
    int r;

    for (; inv->cmd && i < argc; i++) {
        const char *a = argv[i];

        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (!only_pos && looks_like_option(a)) {
            r = global_opt(argc, argv, &i, inv, err);
            if (r == 0)
                r = cmd_opt(argc, argv, &i, inv, err);
            if (r < 0)
                return r;
            continue;
        }
        if (inv->npos >= SC_MAX_POS)
            return rt_err_set(err, EINVAL, "too many arguments");
        inv->pos[inv->npos++] = a;
    }
    /* --help and --version win over missing or extra arguments */
    if (inv->cmd && !inv->help && !inv->version) {
        if (inv->npos < inv->cmd->min_pos)
            return rt_err_set(err, EINVAL, "missing %s", inv->cmd->args);
        if (inv->npos > inv->cmd->max_pos)
            return rt_err_set(err, EINVAL, "unexpected argument '%s'", inv->pos[inv->cmd->max_pos]);
    }
    return 0;
}

int sc_parse_args(int argc, char **argv, struct sc_inv *ret, struct rt_err *err)
{
    struct sc_inv inv = { 0 };
    int i = 1, r;

    ret->cmd = NULL;

    /* global options before the command */
    while (i < argc && looks_like_option(argv[i])) {
        r = global_opt(argc, argv, &i, &inv, err);
        if (r < 0)
            return r;
        if (r == 0)
            return rt_err_set(err, EINVAL, "unknown option '%s'", argv[i]);
        i++;
    }
    if (i >= argc) {
        if (!inv.help && !inv.version)
            return rt_err_set(err, EINVAL, "no command given");
        *ret = inv;
        return 0;
    }
    r = find_cmd(argc, argv, &i, &inv, err);
    if (r < 0)
        return r;
    r = cmd_args(argc, argv, i, &inv, err);
    if (r < 0) {
        ret->cmd = inv.cmd; /* so the message can point at the command's help */
        return r;
    }
    *ret = inv;
    return 0;
}

const char *sc_opt_value(const struct sc_inv *inv, const char *name)
{
    if (!inv->cmd)
        return NULL;
    for (int k = 0; inv->cmd->opts[k].name; k++)
        if (strcmp(inv->cmd->opts[k].name, name) == 0)
            return inv->optval[k];
    return NULL;
}

/* "space create OWNER/NAME --sdk SDK [--hardware TIER] [--private]": required options
 * are the ones whose help says so. */
static void print_synopsis(FILE *out, const struct sc_cmd *c)
{
    fprintf(out, "%s%s%s", c->group ? c->group : "", c->group ? " " : "", c->name);
    if (c->args[0])
        fprintf(out, " %s", c->args);
    for (int k = 0; c->opts[k].name; k++) {
        const struct sc_opt *o = &c->opts[k];
        bool req = strstr(o->help, "(required)") != NULL;

        fprintf(out, " %s--%s%s%s%s", req ? "" : "[", o->name, o->metavar ? " " : "",
                o->metavar ? o->metavar : "", req ? "" : "]");
    }
}

static void print_env(FILE *out)
{
    fprintf(out,
            "\nglobal options (anywhere on the line):\n"
            "  --url URL      runtimed's API (default: $SPACEPORT_URL, else %s)\n"
            "  --token TOKEN  API token (default: $SPACEPORT_TOKEN, else the admin token\n"
            "                 in %s when it is readable)\n"
            "  --json         print the API's JSON instead of text\n"
            "  --help, -h     show help;  --version  show the version\n"
            "\nexit status: 0 ok, 1 the server refused (its message is printed),\n"
            "2 usage error, 3 the server could not be reached\n",
            SC_DEFAULT_URL, SC_ADMIN_TOKEN_PATH);
}

void sc_usage(FILE *out)
{
    fprintf(out, "usage: spacectl [--url URL] [--token TOKEN] [--json] COMMAND [ARGS...]\n"
                 "\nManage a Spaceport runtime: users, tokens, Spaces, hardware tiers, GPUs.\n"
                 "\ncommands:\n");
    for (size_t i = 0; i < sc_n_commands; i++) {
        const struct sc_cmd *c = &sc_commands[i];
        char words[64];

        (void) snprintf(words, sizeof(words), "%s%s%s", c->group ? c->group : "",
                        c->group ? " " : "", c->name);
        fprintf(out, "  %-16s %s\n", words, c->summary);
    }
    fprintf(out, "\n'spacectl COMMAND --help' shows a command's arguments and options.\n");
    print_env(out);
}

int sc_group_usage(FILE *out, const char *group)
{
    if (!is_group(group))
        return -ENOENT;
    fprintf(out, "usage: spacectl %s SUBCOMMAND ...\n\n", group);
    for (size_t i = 0; i < sc_n_commands; i++) {
        const struct sc_cmd *c = &sc_commands[i];

        if (!c->group || strcmp(c->group, group) != 0)
            continue;
        fprintf(out, "  spacectl ");
        print_synopsis(out, c);
        fprintf(out, "\n      %s\n", c->summary);
    }
    print_env(out);
    return 0;
}

void sc_cmd_usage(FILE *out, const struct sc_cmd *c)
{
    fprintf(out, "usage: spacectl ");
    print_synopsis(out, c);
    fprintf(out, "\n\n%c%s.\n", toupper((unsigned char) c->summary[0]), c->summary + 1);
    if (c->details)
        fprintf(out, "%s", c->details);
    if (c->opts[0].name) {
        fprintf(out, "\noptions:\n");
        for (int k = 0; c->opts[k].name; k++) {
            const struct sc_opt *o = &c->opts[k];
            char left[64];

            (void) snprintf(left, sizeof(left), "--%s%s%s", o->name, o->metavar ? " " : "",
                            o->metavar ? o->metavar : "");
            fprintf(out, "  %-24s %s\n", left, o->help);
        }
    }
    print_env(out);
}

bool sc_valid_name(const char *s)
{
    if (!s || !*s || strlen(s) > 96 || s[0] == '.' || s[0] == '-')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

bool sc_valid_space_id(const char *id)
{
    char owner[128];
    const char *slash;

    if (!id)
        return false;
    slash = strchr(id, '/');
    if (!slash || (size_t) (slash - id) >= sizeof(owner))
        return false;
    memcpy(owner, id, (size_t) (slash - id));
    owner[slash - id] = '\0';
    return sc_valid_name(owner) && sc_valid_name(slash + 1);
}
