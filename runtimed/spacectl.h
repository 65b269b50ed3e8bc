/* spacectl: the operator command line for runtimed's HTTP API (docs/API.md).
 *
 * Files: spacectl.c (main), spacectl-args.c (command table and argument parsing),
 * spacectl-http.c (libcurl calls, exit statuses), spacectl-sse.c (the log stream
 * parser), spacectl-fmt.c (tables and values for people), spacectl-space.c and
 * spacectl-admin.c (the commands).  Names carry the sc_ prefix. */
#ifndef SP_RUNTIMED_SPACECTL_H
#define SP_RUNTIMED_SPACECTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <curl/curl.h>
#include <jansson.h>

#include "error.h"

/* Exit statuses: the contract scripts rely on. */
enum {
    SC_EXIT_OK = 0,
    SC_EXIT_API = 1,         /* the server answered with an error */
    SC_EXIT_USAGE = 2,       /* bad command line */
    SC_EXIT_UNREACHABLE = 3, /* no answer from the server */
};

#define SC_DEFAULT_URL "http://127.0.0.1:8080"
#define SC_ADMIN_TOKEN_PATH "/var/lib/spaceport/admin.token"
#define SC_MAX_POS 4
#define SC_MAX_OPTS 8

struct sc_ctx;
struct sc_inv;

struct sc_opt {
    const char *name;    /* without the leading "--" */
    const char *metavar; /* the value's name in help, or NULL for a flag */
    const char *help;
};

struct sc_cmd {
    const char *group; /* first word ("space"), or NULL for one-word commands */
    const char *name;  /* last word ("create", or "logs" for a one-word command) */
    const char *args;  /* positional arguments as the synopsis shows them, or "" */
    int min_pos, max_pos;
    const struct sc_opt *opts; /* ends with { NULL } */
    const char *summary;       /* one line for the command list */
    const char *details;       /* more lines for the command's --help, or NULL */
    int (*run)(struct sc_ctx *ctx, const struct sc_inv *inv);
};

/* One parsed command line.  Strings point into argv. */
struct sc_inv {
    const struct sc_cmd *cmd; /* NULL with help or version set: no command given */
    const char *group_help;   /* "spacectl GROUP --help": the group's name */
    const char *pos[SC_MAX_POS];
    int npos;
    const char *optval[SC_MAX_OPTS]; /* by index into cmd->opts; "" for a given flag */
    const char *url, *token;
    bool json, help, version;
};

/* Everything a command needs to talk to the server. */
struct sc_ctx {
    char url[1024]; /* base URL without a trailing slash */
    char token[512];
    bool json;
    FILE *out, *errf;         /* stdout and stderr; tests swap them */
    const char *token_source; /* where the token came from, for hints */
};

extern const struct sc_cmd sc_commands[];
extern const size_t sc_n_commands;

/* Parses @argv into *@ret.  Returns 0, or -EINVAL with a message for the person
 * (the caller exits SC_EXIT_USAGE); then only ret->cmd is set: the command the
 * error is about, or NULL, so the message can point at the right --help. */
int sc_parse_args(int argc, char **argv, struct sc_inv *ret, struct rt_err *err);

/* The value of --@name, "" for a flag that was given, or NULL when absent. */
const char *sc_opt_value(const struct sc_inv *inv, const char *name);

/* Help texts: the whole program, a group ("space"), one command. */
void sc_usage(FILE *out);
int sc_group_usage(FILE *out, const char *group); /* -ENOENT for an unknown group */
void sc_cmd_usage(FILE *out, const struct sc_cmd *cmd);

/* Fills @ctx from the flags, then SPACEPORT_URL / SPACEPORT_TOKEN, then the admin
 * token file at @token_path (read when readable; silently skipped otherwise). */
int sc_ctx_init(struct sc_ctx *ctx, const struct sc_inv *inv, const char *token_path,
                struct rt_err *err);

/* Checks "OWNER/NAME": two non-empty parts of letters, digits, '-', '_' and '.'. */
bool sc_valid_space_id(const char *id);
/* Checks a user, tier or key name: letters, digits, '-', '_' and '.'. */
bool sc_valid_name(const char *name);

/* libcurl's CURLOPT_OPENSOCKETFUNCTION: sockets born close-on-exec like every fd of ours. */
curl_socket_t sc_open_socket(void *userdata, curlsocktype purpose, struct curl_sockaddr *a);

/* Prints a usage error ("spacectl: MSG" and where to look) and returns SC_EXIT_USAGE. */
int sc_usage_error(struct sc_ctx *ctx, const struct sc_inv *inv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prints "spacectl: out of memory" and returns SC_EXIT_API. */
int sc_out_of_memory(struct sc_ctx *ctx);

/* Calls METHOD @path (relative to the base URL) with @body (may be NULL; not stolen).
 * On a 2xx answer stores the JSON reply in *ret_json (json_null() when the body is
 * empty or not JSON) and returns 0.  Otherwise prints the error to ctx->errf and
 * returns the exit status: SC_EXIT_API, SC_EXIT_UNREACHABLE or SC_EXIT_USAGE. */
int sc_api(struct sc_ctx *ctx, const char *method, const char *path, json_t *body,
           json_t **ret_json);

/* GETs a paginated list (a JSON array per page, the next page in a Link header with
 * rel="next", as the Hub does) and stores all the pages' items as one array in
 * *ret_array.  Returns 0 or an exit status, like sc_api. */
int sc_api_list(struct sc_ctx *ctx, const char *path, json_t **ret_array);

/* Finds the rel="next" URL in a Link header value and writes what goes after our base
 * URL into @buf: the rest of the URL when it starts with @base, else its path and query.
 * Returns 0, -ENOENT when there is none, -EINVAL or -ENAMETOOLONG. */
int sc_link_next(const char *link, const char *base, char *buf, size_t len);

/* Streams the Server-Sent Events at @path and calls @on_data with each event's data.
 * Without @follow, returns once no event arrived for @idle_ms (the end of what exists);
 * with it, runs until the server closes the stream.  Returns an exit status. */
int sc_api_stream(struct sc_ctx *ctx, const char *path, bool follow, int idle_ms,
                  void (*on_data)(const char *data, size_t len, void *userdata), void *userdata);

/* Escapes @s for use as one URL path segment or query value.  Returns a malloc'd
 * string, or NULL on allocation failure. */
char *sc_escape(const char *s);

/* Parses an idle time for sleep settings: "never" or "-1" (stores -1), or seconds
 * (1 .. 100 years; 0 too, the server says what it accepts).  With @allow_default,
 * "default" is accepted and stores -2.  Returns 0 or -EINVAL. */
#define SC_SLEEP_DEFAULT (-2)
int sc_parse_sleep(const char *s, bool allow_default, long long *ret);

/* Prints @json as the API gave it (pretty, one object), for --json. */
void sc_print_json(FILE *out, const json_t *json);

static inline void sc__json_decrefp(json_t **p)
{
    if (*p) {
        json_decref(*p);
        *p = NULL;
    }
}
#define _cleanup_json_ __attribute__((cleanup(sc__json_decrefp)))

/* Commands (spacectl-space.c, spacectl-admin.c). */
int sc_cmd_user_add(struct sc_ctx *ctx, const struct sc_inv *inv);
int sc_cmd_user_set(struct sc_ctx *ctx, const struct sc_inv *inv);
int sc_cmd_token_create(struct sc_ctx *ctx, const struct sc_inv *inv);
int sc_cmd_space_create(struct sc_ctx *ctx, const struct sc_inv *inv);
int sc_cmd_space_list(struct sc_ctx *ctx, const struct sc_inv *inv);
int sc_cmd_space_status(struct sc_ctx *ctx, const struct sc_inv *inv);
int sc_cmd_space_rm(struct sc_ctx *ctx, const struct sc_inv *inv);
int sc_cmd_logs(struct sc_ctx *ctx, const struct sc_inv *inv);
int sc_cmd_hardware_list(struct sc_ctx *ctx, const struct sc_inv *inv);
int sc_cmd_hardware_set(struct sc_ctx *ctx, const struct sc_inv *inv);
int sc_cmd_tier_add(struct sc_ctx *ctx, const struct sc_inv *inv);
int sc_cmd_tier_rm(struct sc_ctx *ctx, const struct sc_inv *inv);
int sc_cmd_tier_set(struct sc_ctx *ctx, const struct sc_inv *inv);
int sc_cmd_sleep(struct sc_ctx *ctx, const struct sc_inv *inv);
int sc_cmd_pause(struct sc_ctx *ctx, const struct sc_inv *inv);
int sc_cmd_resume(struct sc_ctx *ctx, const struct sc_inv *inv);
int sc_cmd_restart(struct sc_ctx *ctx, const struct sc_inv *inv);
int sc_cmd_secret_set(struct sc_ctx *ctx, const struct sc_inv *inv);
int sc_cmd_variable_set(struct sc_ctx *ctx, const struct sc_inv *inv);
int sc_cmd_gpu_list(struct sc_ctx *ctx, const struct sc_inv *inv);
int sc_cmd_gpu_leases(struct sc_ctx *ctx, const struct sc_inv *inv);
int sc_cmd_admin_gc(struct sc_ctx *ctx, const struct sc_inv *inv);

#endif
