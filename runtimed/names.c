#include "names.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "banned.h"

static bool name_char(char c)
{
    return isascii((unsigned char) c) &&
           (isalnum((unsigned char) c) || c == '-' || c == '_' || c == '.');
}

int rt_name_check(const char *s, const char *what, struct rt_err *err)
{
    size_t len;

    if (!s || !*s)
        return rt_err_set(err, EINVAL, "%s is empty", what);
    len = strlen(s);
    if (len > RT_NAME_MAX)
        return rt_err_set(err, EINVAL, "%s is longer than %d characters", what, RT_NAME_MAX);
    for (size_t i = 0; i < len; i++)
        if (!name_char(s[i]))
            return rt_err_set(err, EINVAL, "%s may contain only letters, digits, '-', '_' and '.'",
                              what);
    if (s[0] == '-' || s[0] == '.' || s[len - 1] == '-' || s[len - 1] == '.')
        return rt_err_set(err, EINVAL, "%s may not start or end with '-' or '.'", what);
    if (strstr(s, "--") || strstr(s, ".."))
        return rt_err_set(err, EINVAL, "%s may not contain '--' or '..'", what);
    return 0;
}

int rt_id_split(const char *id, char owner[RT_NAME_SIZE], char name[RT_NAME_SIZE],
                struct rt_err *err)
{
    const char *slash = id ? strchr(id, '/') : NULL;
    size_t olen;
    int r;

    if (!slash || strchr(slash + 1, '/'))
        return rt_err_set(err, EINVAL, "a Space id looks like 'owner/name'");
    olen = (size_t) (slash - id);
    if (olen > RT_NAME_MAX)
        return rt_err_set(err, EINVAL, "owner is longer than %d characters", RT_NAME_MAX);
    char o[RT_NAME_SIZE];
    memcpy(o, id, olen);
    o[olen] = '\0';
    r = rt_name_check(o, "owner", err);
    if (r < 0)
        return r;
    r = rt_name_check(slash + 1, "name", err);
    if (r < 0)
        return r;
    memcpy(owner, o, olen + 1);
    (void) snprintf(name, RT_NAME_SIZE, "%s", slash + 1);
    return 0;
}

void rt_space_host(const char *owner, const char *name, char host[RT_HOST_SIZE])
{
    size_t i;

    (void) snprintf(host, RT_HOST_SIZE, "%s-%s", owner, name);
    for (i = 0; host[i]; i++) {
        if (host[i] == '_' || host[i] == '.')
            host[i] = '-';
        else
            host[i] = (char) tolower((unsigned char) host[i]);
    }
}

int rt_env_key_check(const char *s, struct rt_err *err)
{
    size_t len = s ? strlen(s) : 0;

    if (len == 0)
        return rt_err_set(err, EINVAL, "key is empty");
    if (len > 256)
        return rt_err_set(err, EINVAL, "key is longer than 256 characters");
    if (!(isascii((unsigned char) s[0]) && (isalpha((unsigned char) s[0]) || s[0] == '_')))
        return rt_err_set(err, EINVAL, "key must start with a letter or '_'");
    for (size_t i = 1; i < len; i++)
        if (!(isascii((unsigned char) s[i]) && (isalnum((unsigned char) s[i]) || s[i] == '_')))
            return rt_err_set(err, EINVAL, "key may contain only letters, digits and '_'");
    return 0;
}
