#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "error.h"
#include "sha256.h"
#include "banned.h"

static int fill_random(void *buf, size_t len, struct rt_err *err)
{
    unsigned char *p = buf;

    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return rt_err_set(err, errno, "getrandom");
        }
        p += n;
        len -= (size_t) n;
    }
    return 0;
}

int rt_auth_token_new(char out[RT_TOKEN_SIZE], struct rt_err *err)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"; /* 62 */
    size_t pos = sizeof(RT_TOKEN_PREFIX) - 1;

    memcpy(out, RT_TOKEN_PREFIX, pos);
    while (pos < RT_TOKEN_SIZE - 1) {
        unsigned char buf[64];
        int r = fill_random(buf, sizeof(buf), err);
        if (r < 0)
            return r;
        /* Rejection sampling keeps every character equally likely: 248 = 4 * 62. */
        for (size_t i = 0; i < sizeof(buf) && pos < RT_TOKEN_SIZE - 1; i++)
            if (buf[i] < 248)
                out[pos++] = alphabet[buf[i] % 62];
    }
    out[pos] = '\0';
    return 0;
}

int rt_auth_token_id_new(char out[RT_TOKEN_ID_SIZE], struct rt_err *err)
{
    unsigned char buf[8];
    int r = fill_random(buf, sizeof(buf), err);

    if (r < 0)
        return r;
    for (int i = 0; i < 8; i++)
        (void) snprintf(out + 2 * i, 3, "%02x", buf[i]);
    return 0;
}

int rt_auth_token_create(struct rt_store *st, struct rt_token *t, char ret_secret[RT_TOKEN_SIZE],
                         struct rt_err *err)
{
    char secret[RT_TOKEN_SIZE];
    char hash[RT_SHA256_HEX_LEN];
    int r;

    r = rt_auth_token_new(secret, err);
    if (r >= 0)
        r = rt_auth_token_id_new(t->id, err);
    if (r < 0)
        return r;
    t->created_at = rt_store_now_ms();
    rt_sha256_hex(secret, strlen(secret), hash);
    r = rt_store_token_add(st, t, hash, err);
    if (r < 0)
        return rt_err_wrap(err, "store token");
    memcpy(ret_secret, secret, sizeof(secret));
    return 0;
}

static bool token_shape_ok(const char *token)
{
    size_t len = strlen(token);

    if (len == 0 || len > 256)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) token[i] <= ' ' || (unsigned char) token[i] >= 0x7f)
            return false;
    return true;
}

int rt_auth_resolve_token(struct rt_store *st, const char *token, struct rt_principal *ret,
                          struct rt_err *err)
{
    char hash[RT_SHA256_HEX_LEN];
    int r;

    if (!token || !token_shape_ok(token))
        return rt_err_set(err, EACCES, "malformed token");
    rt_sha256_hex(token, strlen(token), hash);
    memset(ret, 0, sizeof(*ret));
    r = rt_store_token_find(st, hash, &ret->token, err);
    if (r == -ENOENT)
        return rt_err_set(err, EACCES, "invalid or revoked token");
    return r;
}

/* Decodes standard base64 into @out (NUL-terminated).  Returns the length or -1. */
static ssize_t base64_decode(const char *in, char *out, size_t cap)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint32_t acc = 0;
    size_t n = 0;
    int bits = 0, pad = 0;

    for (; *in && *in != ' '; in++) {
        const char *d;
        if (*in == '=') {
            pad++;
            continue;
        }
        d = strchr(digits, *in);
        if (!d || pad)
            return -1;
        acc = (acc << 6) | (uint32_t) (d - digits);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n + 1 >= cap)
                return -1;
            out[n++] = (char) ((acc >> bits) & 0xff);
        }
    }
    out[n] = '\0';
    return (ssize_t) n;
}

int rt_auth_resolve(struct rt_store *st, const char *authorization, struct rt_principal *ret,
                    struct rt_err *err)
{
    char decoded[512];
    const char *colon;

    if (!authorization) {
        memset(ret, 0, sizeof(*ret));
        ret->anonymous = true;
        return 0;
    }
    if (strncasecmp(authorization, "Basic ", 6) == 0) {
        /* git sends the token as the password, like the Hub's git endpoint. */
        authorization += 6;
        while (*authorization == ' ')
            authorization++;
        if (base64_decode(authorization, decoded, sizeof(decoded)) < 0 || strlen(decoded) == 0 ||
            !(colon = strchr(decoded, ':')))
            return rt_err_set(err, EACCES, "malformed Basic credentials");
        return rt_auth_resolve_token(st, colon + 1, ret, err);
    }
    if (strncasecmp(authorization, "Bearer ", 7) != 0)
        return rt_err_set(err, EACCES, "the Authorization header must be 'Bearer TOKEN'");
    authorization += 7;
    while (*authorization == ' ')
        authorization++;
    return rt_auth_resolve_token(st, authorization, ret, err);
}

void rt_principal_done(struct rt_principal *p)
{
    if (p)
        rt_store_token_done(&p->token);
}

bool rt_auth_is_proxy(const struct rt_principal *p)
{
    return !p->anonymous && strcmp(p->token.role, "proxy") == 0;
}

bool rt_auth_is_user(const struct rt_principal *p)
{
    return !p->anonymous && !rt_auth_is_proxy(p);
}

bool rt_auth_is_admin(const struct rt_principal *p)
{
    return rt_auth_is_user(p) && p->token.admin;
}

bool rt_auth_in_scope(const struct rt_principal *p, const char *owner, const char *name)
{
    if (p->token.n_spaces == 0)
        return true;
    for (size_t i = 0; i < p->token.n_spaces; i++) {
        const char *scoped = p->token.spaces[i];
        const char *slash = strchr(scoped, '/');
        if (slash && strlen(owner) == (size_t) (slash - scoped) &&
            strncasecmp(scoped, owner, (size_t) (slash - scoped)) == 0 &&
            strcasecmp(slash + 1, name) == 0)
            return true;
    }
    return false;
}

static bool owns(const struct rt_principal *p, const char *owner)
{
    return p->token.admin || strcasecmp(p->token.user, owner) == 0;
}

bool rt_auth_can_read(const struct rt_principal *p, const struct rt_space *s)
{
    if (!s->private_)
        return true;
    return rt_auth_is_user(p) && rt_auth_in_scope(p, s->owner, s->name) && owns(p, s->owner);
}

bool rt_auth_is_member(const struct rt_principal *p, const struct rt_space *s)
{
    return rt_auth_is_user(p) && rt_auth_in_scope(p, s->owner, s->name) && owns(p, s->owner);
}

bool rt_auth_can_write(const struct rt_principal *p, const struct rt_space *s)
{
    return rt_auth_is_user(p) && strcmp(p->token.role, "write") == 0 &&
           rt_auth_in_scope(p, s->owner, s->name) && owns(p, s->owner);
}

bool rt_auth_can_create(const struct rt_principal *p, const char *owner, const char *name)
{
    return rt_auth_is_user(p) && strcmp(p->token.role, "write") == 0 &&
           rt_auth_in_scope(p, owner, name) && owns(p, owner);
}
