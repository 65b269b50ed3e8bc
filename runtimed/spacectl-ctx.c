/* Where spacectl finds its server and token: flags, then the environment, then the
 * admin token file that runtimed writes on first start. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "spacectl.h"
#include "cleanup.h"
#include "util.h"
#include "banned.h"

/* Reads the first line of @path into @buf, without surrounding blanks.  Returns the
 * length, or -errno. */
static int read_token_file(const char *path, char *buf, size_t len)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    ssize_t n;
    size_t start = 0, end;

    if (fd < 0)
        return -errno;
    n = rt_read_all(fd, buf, len - 1);
    if (n < 0)
        return (int) n;
    buf[n] = '\0';
    end = strcspn(buf, "\r\n");
    while (start < end && isspace((unsigned char) buf[start]))
        start++;
    while (end > start && isspace((unsigned char) buf[end - 1]))
        end--;
    memmove(buf, buf + start, end - start);
    buf[end - start] = '\0';
    return (int) (end - start);
}

int sc_ctx_init(struct sc_ctx *ctx, const struct sc_inv *inv, const char *token_path,
                struct rt_err *err)
{
    const char *url = inv->url, *token = inv->token;
    size_t n;

    ctx->json = inv->json;
    if (!ctx->out)
        ctx->out = stdout;
    if (!ctx->errf)
        ctx->errf = stderr;
    if (!url || !*url)
        url = getenv("SPACEPORT_URL");
    if (!url || !*url)
        url = SC_DEFAULT_URL;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return rt_err_set(err, EINVAL, "server URL '%s' must start with http:// or https://", url);
    n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        n--; /* paths are appended with their own leading slash */
    if (n >= sizeof(ctx->url))
        return rt_err_set(err, EINVAL, "server URL is too long");
    memcpy(ctx->url, url, n);
    ctx->url[n] = '\0';

    ctx->token[0] = '\0';
    ctx->token_source = "(none given)";
    if (token && *token) {
        ctx->token_source = "from --token";
    } else if ((token = getenv("SPACEPORT_TOKEN")) && *token) {
        ctx->token_source = "from $SPACEPORT_TOKEN";
    } else {
        token = NULL;
        if (token_path && read_token_file(token_path, ctx->token, sizeof(ctx->token)) > 0)
            ctx->token_source = "from " SC_ADMIN_TOKEN_PATH;
        else
            ctx->token[0] = '\0';
    }
    if (token) {
        if (strlen(token) >= sizeof(ctx->token))
            return rt_err_set(err, EINVAL, "the token is too long");
        if (strpbrk(token, "\r\n"))
            return rt_err_set(err, EINVAL, "the token contains a line break");
        (void) snprintf(ctx->token, sizeof(ctx->token), "%s", token);
    }
    return 0;
}

int sc_usage_error(struct sc_ctx *ctx, const struct sc_inv *inv, const char *fmt, ...)
{
    va_list ap;

    fprintf(ctx->errf, "spacectl: ");
    va_start(ap, fmt);
    vfprintf(ctx->errf, fmt, ap);
    va_end(ap);
    if (inv->cmd && inv->cmd->group)
        fprintf(ctx->errf, " (see 'spacectl %s %s --help')\n", inv->cmd->group, inv->cmd->name);
    else if (inv->cmd)
        fprintf(ctx->errf, " (see 'spacectl %s --help')\n", inv->cmd->name);
    else
        fprintf(ctx->errf, " (see 'spacectl --help')\n");
    return SC_EXIT_USAGE;
}

int sc_out_of_memory(struct sc_ctx *ctx)
{
    fprintf(ctx->errf, "spacectl: out of memory\n");
    return SC_EXIT_API;
}
