/* Backup and restore of a whole node (docs/backup.md).
 *
 * A backup is one gzip'd tar:
 *   manifest.json           format, runtimed version, schema version, time, repo count
 *   spaceport.db            a consistent copy made with SQLite's online backup API
 *   admin.token, proxy.token (when present)
 *   repos/REL/repo.bundle   `git bundle --all` of each bare repo under DATA/repos
 *   repos/REL/HEAD, config  so the restored repo has the same default branch and settings
 *   lfs/                    DATA/lfs as files (content-addressed, so copying is safe)
 * The database is copied first and the repos after, so every commit the database names
 * is in the bundles (a push racing the backup may add commits the database does not
 * know yet: runtimed treats those like a push that arrived while it was down).
 *
 * Restore is offline: it fills a fresh data dir that no runtimed runs on, and refuses
 * one that already holds a database. */
#ifndef SP_RUNTIMED_BACKUP_H
#define SP_RUNTIMED_BACKUP_H

#include "error.h"

struct rt_store;

#define RT_BACKUP_FORMAT 1

/* Writes a backup of the node at @data_dir, whose open store is @st, to the new file
 * @out (refused when it exists).  Safe while runtimed serves requests and pushes land:
 * the store is locked only for a few pages of the database at a time.  Returns 0 or -errno. */
int rt_backup_create(struct rt_store *st, const char *data_dir, const char *out,
                     struct rt_err *err);

/* Fills the fresh data dir @data_dir (created when missing; it must not hold a
 * database, and no runtimed may be running on it) from the backup @file.  The restored
 * database is opened once, so it is migrated to this runtimed's schema.  Returns 0 or
 * -errno (-EEXIST: not a fresh data dir). */
int rt_backup_restore(const char *data_dir, const char *file, struct rt_err *err);

#endif
