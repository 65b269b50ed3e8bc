/* spacectl admin backup FILE / admin restore FILE (runtimed/spacectl-backup.c). */
#ifndef SP_RUNTIMED_SPACECTL_BACKUP_H
#define SP_RUNTIMED_SPACECTL_BACKUP_H

#include "spacectl.h"

extern const struct sc_opt sc_admin_backup_opts[];
extern const struct sc_opt sc_admin_restore_opts[];
#define SC_ADMIN_BACKUP_HELP                                                                       \
    "Downloads a consistent snapshot of the running node (database, repos, tokens, LFS)\n"         \
    "from GET /api/admin/backup into FILE (created with mode 0600; refused when it\n"              \
    "exists).  Needs an admin's unscoped write token: the backup holds every secret.\n"
#define SC_ADMIN_RESTORE_HELP                                                                      \
    "Runs 'runtimed --data-dir DIR --restore FILE' on this machine: fills a fresh data dir\n"      \
    "(no database in it, no runtimed running on it) from a backup, then exits.  Start\n"           \
    "runtimed on DIR afterwards.  Talks to no server.\n"

int sc_cmd_admin_backup(struct sc_ctx *ctx, const struct sc_inv *inv);
int sc_cmd_admin_restore(struct sc_ctx *ctx, const struct sc_inv *inv);

#endif
