/* Who is calling, and what they may do.  Tokens are like the Hub's: random, shown
 * once, stored only as a SHA-256; role read or write, optionally limited to a list of
 * Spaces (fine-grained).  The proxy token (role proxy) may call only /api/proxy/. */
#ifndef SP_RUNTIMED_AUTH_H
#define SP_RUNTIMED_AUTH_H

#include <stdbool.h>

#include "store.h"

#define RT_TOKEN_PREFIX "sp_"
#define RT_TOKEN_RANDOM_LEN 40
#define RT_TOKEN_SIZE (sizeof(RT_TOKEN_PREFIX) - 1 + RT_TOKEN_RANDOM_LEN + 1)

struct rt_principal {
    bool anonymous;        /* no token was sent */
    struct rt_token token; /* valid unless anonymous */
};

/* Writes a fresh token ("sp_" + 40 letters and digits from getrandom) to @out. */
int rt_auth_token_new(char out[RT_TOKEN_SIZE], struct rt_err *err);
/* A 16-hex-digit public id for a token. */
int rt_auth_token_id_new(char out[RT_TOKEN_ID_SIZE], struct rt_err *err);

/* Creates a token for @user_id (0 with role "proxy"), stores its hash, and writes the
 * secret to @ret_secret.  @t carries role, name and scope; its id and created_at are
 * filled in. */
int rt_auth_token_create(struct rt_store *st, struct rt_token *t, char ret_secret[RT_TOKEN_SIZE],
                         struct rt_err *err);

/* Resolves an Authorization header value (NULL when absent): "Bearer TOKEN", or
 * "Basic base64(USER:TOKEN)" as git sends it (the user part is ignored, like the
 * Hub's).  -EACCES when a token was sent but is malformed or unknown.  Free with
 * rt_principal_done(). */
int rt_auth_resolve(struct rt_store *st, const char *authorization, struct rt_principal *ret,
                    struct rt_err *err);
/* Resolves a bare token string. */
int rt_auth_resolve_token(struct rt_store *st, const char *token, struct rt_principal *ret,
                          struct rt_err *err);
void rt_principal_done(struct rt_principal *p);

bool rt_auth_is_admin(const struct rt_principal *p);
bool rt_auth_is_proxy(const struct rt_principal *p);
/* Whether a user token (not anonymous, not proxy) is present. */
bool rt_auth_is_user(const struct rt_principal *p);
/* Whether @p's token scope includes Space "owner/name" (always true when unscoped). */
bool rt_auth_in_scope(const struct rt_principal *p, const char *owner, const char *name);
/* Read: public Spaces for everyone; private ones for their owner and admins, through a
 * token whose scope includes them. */
bool rt_auth_can_read(const struct rt_principal *p, const struct rt_space *s);
/* Write: a write token of the owner or an admin, whose scope includes the Space. */
bool rt_auth_can_write(const struct rt_principal *p, const struct rt_space *s);
/* Whether @p acts for the owner of @s or an admin, through a token whose scope includes
 * it (any role): who may read a Space's logs. */
bool rt_auth_is_member(const struct rt_principal *p, const struct rt_space *s);
/* Whether @p may create a Space "owner/name": a write token of that user or an admin. */
bool rt_auth_can_create(const struct rt_principal *p, const char *owner, const char *name);

#endif
