/* First start: default hardware tiers, the admin user and its token, the proxy token.
 * The tokens are written to DATA_DIR/admin.token and DATA_DIR/proxy.token (mode 0600),
 * the only place they are ever shown. */
#ifndef SP_RUNTIMED_BOOTSTRAP_H
#define SP_RUNTIMED_BOOTSTRAP_H

#include <stdbool.h>

#include "store.h"

#define RT_ADMIN_USER "admin"

/* Does nothing when the store was already bootstrapped (*ret_first = false). */
int rt_bootstrap(struct rt_store *st, const char *data_dir, bool *ret_first, struct rt_err *err);

/* Writes @text to DIR/NAME with mode 0600, atomically (temporary file, then rename). */
int rt_write_secret_file(const char *dir, const char *name, const char *text, struct rt_err *err);

#endif
