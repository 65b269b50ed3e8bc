/* Names of users and Spaces, Space ids ("OWNER/NAME") and the host label that routes
 * browser traffic to a Space. */
#ifndef SP_RUNTIMED_NAMES_H
#define SP_RUNTIMED_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define RT_NAME_MAX 96
#define RT_NAME_SIZE (RT_NAME_MAX + 1)
#define RT_ID_SIZE (2 * RT_NAME_MAX + 2)
#define RT_HOST_SIZE RT_ID_SIZE

/* Validates a user name or a Space name the way the Hub does: letters, digits, '-',
 * '_' and '.', 1 to 96 long, no leading or trailing '-' or '.', no "--" or "..".
 * Returns 0, or -EINVAL with the reason in @err. @what names the field ("name"). */
struct rt_err;
int rt_name_check(const char *s, const char *what, struct rt_err *err);

/* Splits "OWNER/NAME" into its two checked parts.  Returns 0 or -EINVAL. */
int rt_id_split(const char *id, char owner[RT_NAME_SIZE], char name[RT_NAME_SIZE],
                struct rt_err *err);

/* The host label of a Space: "OWNER-NAME" lowercased, with '_' and '.' turned into '-'.
 * Both parts must already be valid names. */
void rt_space_host(const char *owner, const char *name, char host[RT_HOST_SIZE]);

/* Checks the name of an environment-style key (secrets and variables): a letter or
 * '_' first, then letters, digits and '_', at most 256.  Returns 0 or -EINVAL. */
int rt_env_key_check(const char *s, struct rt_err *err);

#endif
