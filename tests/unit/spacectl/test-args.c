/* Unit tests for spacectl's command table and argument parser (runtimed/spacectl-args.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "runtimed/spacectl.h"
#include "cleanup.h"

/* Parses a NULL-terminated list of words as if they followed "spacectl". */
static int parse(struct sc_inv *inv, struct rt_err *err, const char *const *words)
{
    char *argv[32] = { (char *) "spacectl" };
    int argc = 1;

    while (words[argc - 1])
        argv[argc] = (char *) words[argc - 1], argc++;
    memset(inv, 0x5a, sizeof(*inv)); /* garbage: the parser must set what it reports */
    rt_err_clear(err);
    return sc_parse_args(argc, argv, inv, err);
}

#define PARSE(inv, err, ...) parse((inv), (err), (const char *const[]){ __VA_ARGS__, NULL })

static void test_commands(void)
{
    struct sc_inv inv;
    struct rt_err err;

    is_int(PARSE(&inv, &err, "space", "create", "alice/demo", "--sdk", "gradio", "--private"), 0,
           "space create parses");
    is_str(inv.cmd->group, "space", "group word");
    is_str(inv.cmd->name, "create", "command word");
    is_int(inv.npos, 1, "one positional");
    is_str(inv.pos[0], "alice/demo", "the Space id");
    is_str(sc_opt_value(&inv, "sdk"), "gradio", "--sdk value");
    is_str(sc_opt_value(&inv, "private"), "", "a given flag reads as \"\"");
    ok(sc_opt_value(&inv, "hardware") == NULL, "an absent option reads as NULL");
    ok(!inv.json && !inv.help && !inv.version, "no global flags");

    is_int(PARSE(&inv, &err, "space", "create", "--sdk=static", "a/b", "--hardware=cpu-basic"), 0,
           "--opt=value form and options before positionals");
    is_str(sc_opt_value(&inv, "sdk"), "static", "--sdk=static");
    is_str(sc_opt_value(&inv, "hardware"), "cpu-basic", "--hardware=cpu-basic");
    is_str(inv.pos[0], "a/b", "positional after an option");

    is_int(PARSE(&inv, &err, "logs", "a/b", "--build", "--follow"), 0, "one-word command");
    ok(inv.cmd && inv.cmd->group == NULL, "logs has no group");
    is_str(sc_opt_value(&inv, "build"), "", "--build");
    is_str(sc_opt_value(&inv, "follow"), "", "--follow");

    is_int(PARSE(&inv, &err, "sleep", "a/b", "-1"), 0, "a negative number is an argument");
    is_str(inv.pos[1], "-1", "sleep takes -1");

    is_int(PARSE(&inv, &err, "variable", "set", "a/b", "K", "--", "--not-an-option"), 0,
           "-- ends the options");
    is_str(inv.pos[2], "--not-an-option", "value after --");

    is_int(PARSE(&inv, &err, "tier", "add", "gpu", "--cpus", "4", "--memory", "16G", "--gpus", "1",
                 "--gpu-kind", "a10g", "--disk", "50G"),
           0, "tier add with every value option");
    is_str(sc_opt_value(&inv, "gpu-kind"), "a10g", "--gpu-kind");
    is_str(sc_opt_value(&inv, "disk"), "50G", "--disk");
}

static void test_global_options(void)
{
    struct sc_inv inv;
    struct rt_err err;

    is_int(PARSE(&inv, &err, "--json", "--url", "http://h:1", "space", "list"), 0,
           "global options before the command");
    ok(inv.json, "--json before the command");
    is_str(inv.url, "http://h:1", "--url value");
    is_int(PARSE(&inv, &err, "space", "--token=abc", "list", "--json"), 0,
           "global options between and after the words");
    ok(inv.json, "--json after the command");
    is_str(inv.token, "abc", "--token=abc between the group and its subcommand");
    is_int(PARSE(&inv, &err, "gpu", "leases", "--url=http://x:2"), 0, "--url= after");
    is_str(inv.url, "http://x:2", "--url=value");

    is_int(PARSE(&inv, &err, "--version"), 0, "--version alone");
    ok(inv.version && inv.cmd == NULL, "version set, no command");
    is_int(PARSE(&inv, &err, "--help"), 0, "--help alone");
    ok(inv.help && inv.cmd == NULL && inv.group_help == NULL, "program help");
    is_int(PARSE(&inv, &err, "space", "--help"), 0, "group --help");
    is_str(inv.group_help, "space", "group help names the group");
    is_int(PARSE(&inv, &err, "space", "create", "--help"), 0, "--help wins over missing args");
    ok(inv.help && inv.cmd && strcmp(inv.cmd->name, "create") == 0, "command help");
    is_int(PARSE(&inv, &err, "help", "tier", "add"), 0, "help TIER ADD");
    ok(inv.help && inv.cmd && strcmp(inv.cmd->group, "tier") == 0, "help word form");
    is_int(PARSE(&inv, &err, "-h", "logs"), 0, "-h before a command");
    ok(inv.help && inv.cmd && strcmp(inv.cmd->name, "logs") == 0, "-h then logs");
}

static void test_errors(void)
{
    struct sc_inv inv;
    struct rt_err err;

    is_int(PARSE(&inv, &err, "--no-such-option"), -EINVAL, "unknown global option");
    ok(strstr(err.msg, "'--no-such-option'") != NULL, "the message names it: %s", err.msg);
    ok(inv.cmd == NULL, "no command to point at");

    is_int(PARSE(&inv, &err, "space", "list", "--sdk", "x"), -EINVAL, "option of another cmd");
    ok(strstr(err.msg, "'--sdk'") && strstr(err.msg, "space list"), "names option and command: %s",
       err.msg);
    ok(inv.cmd && strcmp(inv.cmd->name, "list") == 0, "the failing command is reported");

    is_int(PARSE(&inv, &err, "space", "create", "a/b", "--sdk"), -EINVAL, "value missing");
    ok(strstr(err.msg, "needs a value") != NULL, "says a value is needed: %s", err.msg);
    is_int(PARSE(&inv, &err, "space", "create", "a/b", "--private=yes"), -EINVAL, "flag=value");
    ok(strstr(err.msg, "takes no value") != NULL, "says flags take no value: %s", err.msg);
    is_int(PARSE(&inv, &err, "--json=1", "space", "list"), -EINVAL, "--json=1");

    is_int(PARSE(&inv, &err, "launch"), -EINVAL, "unknown command");
    is_str(err.msg, "unknown command 'launch'", "names the command");
    is_int(PARSE(&inv, &err, "space", "launch"), -EINVAL, "unknown subcommand");
    is_str(err.msg, "unknown command 'space launch'", "names both words");
    is_int(PARSE(&inv, &err, "space"), -EINVAL, "group without subcommand");
    ok(strstr(err.msg, "needs a subcommand") != NULL, "says so: %s", err.msg);
    is_int(PARSE(&inv, &err, "space", "--sdk", "x"), -EINVAL, "command option before subcommand");

    is_int(PARSE(&inv, &err, "space", "status"), -EINVAL, "missing Space id");
    is_str(err.msg, "missing OWNER/NAME", "names what is missing");
    is_int(PARSE(&inv, &err, "space", "status", "a/b", "c/d"), -EINVAL, "extra argument");
    is_str(err.msg, "unexpected argument 'c/d'", "names the extra argument");
    is_int(PARSE(&inv, &err, "variable", "set", "a/b", "K", "V", "W", "X"), -EINVAL, "too many");
    is_int(PARSE(&inv, &err, "sleep", "a/b", "-x"), -EINVAL, "-x is an option, unknown here");
    int argc1 = 1;
    char *argv1[] = { (char *) "spacectl", NULL };
    is_int(sc_parse_args(argc1, argv1, &inv, &err), -EINVAL, "no command at all");
}

/* Every command in the table parses from its own words, and its help page starts with
 * its synopsis. */
static void test_table(void)
{
    for (size_t i = 0; i < sc_n_commands; i++) {
        const struct sc_cmd *c = &sc_commands[i];
        const char *words[4] = { c->group ? c->group : c->name, c->group ? c->name : "--help",
                                 c->group ? "--help" : NULL, NULL };
        struct sc_inv inv;
        struct rt_err err;
        _cleanup_free_ char *text = NULL;
        char want[96];
        size_t len = 0;
        FILE *f;

        is_int(parse(&inv, &err, words), 0, c->name);
        ok(inv.cmd == c && inv.help, "'%s %s' finds its entry", c->group ? c->group : "", c->name);
        ok(c->run != NULL && c->min_pos <= c->max_pos && c->max_pos <= SC_MAX_POS, "entry sane");
        f = open_memstream(&text, &len);
        sc_cmd_usage(f, c);
        fclose(f);
        (void) snprintf(want, sizeof(want), "usage: spacectl %s%s%s", c->group ? c->group : "",
                        c->group ? " " : "", c->name);
        ok(strncmp(text, want, strlen(want)) == 0, "help starts with '%s'", want);
    }
}

static void test_help_text(void)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    sc_usage(f);
    fclose(f);
    ok(strncmp(text, "usage: spacectl", 15) == 0, "program help starts with usage:");
    ok(strstr(text, SC_ADMIN_TOKEN_PATH) != NULL, "help names the admin token fallback");
    ok(strstr(text, "SPACEPORT_URL") && strstr(text, "SPACEPORT_TOKEN"), "help names the env");
    for (size_t i = 0; i < sc_n_commands; i++)
        ok(strstr(text, sc_commands[i].summary) != NULL, "lists '%s'", sc_commands[i].name);
    free(TAKE_PTR(text));
    f = open_memstream(&text, &len);
    is_int(sc_group_usage(f, "tier"), 0, "tier group help");
    fclose(f);
    ok(strstr(text, "spacectl tier add NAME --cpus N --memory SIZE [--gpus N] [--gpu-kind KIND] "
                    "[--zero] [--disk SIZE]") != NULL,
       "synopsis marks required options");
    ok(strstr(text, "spacectl space") == NULL, "only the group's commands");
    is_int(sc_group_usage(stderr, "nosuch"), -ENOENT, "unknown group");
}

static void test_names(void)
{
    static const struct {
        const char *id;
        bool ok;
    } ids[] = {
        { "alice/demo", true }, { "Alice-1/my_app.v2", true },
        { "alice", false },     { "/demo", false },
        { "alice/", false },    { "a/b/c", false },
        { "a b/c", false },     { "a/../b", false },
        { "../x", false },      { "a/.hidden", false },
        { "a/-x", false },      { "", false },
        { "a/b?x=1", false },   { "a/b#f", false },
        { "a/%2e", false },
    };

    for (size_t i = 0; i < ARRAY_SIZE(ids); i++)
        is_int(sc_valid_space_id(ids[i].id), ids[i].ok, ids[i].id);
    ok(!sc_valid_space_id(NULL), "NULL id");
    ok(sc_valid_name("cpu-basic") && sc_valid_name("zero-a10g") && sc_valid_name("a_b.c"),
       "tier names");
    ok(!sc_valid_name("a/b") && !sc_valid_name("") && !sc_valid_name(NULL), "bad names");
}

int main(void)
{
    tap_start();
    test_commands();
    test_global_options();
    test_errors();
    test_table();
    test_help_text();
    test_names();
    return tap_done();
}
