/* spacectl: the Spaceport operator command line.  main() only wires the parser,
 * the context and the command table together; see spacectl.h for the map. */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "spacectl.h"
#include "version.h"
#include "banned.h"

int main(int argc, char **argv)
{
    struct sc_inv inv;
    struct sc_ctx ctx = { .out = stdout, .errf = stderr };
    struct rt_err err = { 0 };
    int r;

    if (sc_parse_args(argc, argv, &inv, &err) < 0) {
        const struct sc_cmd *cmd = inv.cmd;

        inv = (struct sc_inv){ .cmd = cmd };
        return sc_usage_error(&ctx, &inv, "%s", err.msg);
    }
    if (inv.version) {
        printf("spacectl %s\n", SPACEPORT_VERSION);
        return SC_EXIT_OK;
    }
    if (inv.help) {
        if (inv.cmd)
            sc_cmd_usage(stdout, inv.cmd);
        else if (inv.group_help)
            (void) sc_group_usage(stdout, inv.group_help);
        else
            sc_usage(stdout);
        return SC_EXIT_OK;
    }
    if (sc_ctx_init(&ctx, &inv, SC_ADMIN_TOKEN_PATH, &err) < 0)
        return sc_usage_error(&ctx, &inv, "%s", err.msg);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "spacectl: cannot initialise libcurl\n");
        return SC_EXIT_API;
    }
    r = inv.cmd->run(&ctx, &inv);
    if (fflush(stdout) != 0 && r == SC_EXIT_OK) {
        perror("spacectl: writing output");
        r = SC_EXIT_API;
    }
    curl_global_cleanup();
    return r;
}
