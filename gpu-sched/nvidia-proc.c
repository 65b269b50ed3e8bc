/* Reading the driver's procfs: device majors and MIG capability minors.  Both
 * take the file path so the tests can feed their own copies. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "internal.h"

#include "banned.h"

int gpu__proc_devices_major(const char *path, const char *name, unsigned *ret_major)
{
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    char line[128];
    bool chr = false;

    if (!f)
        return -errno;
    while (fgets(line, sizeof(line), f)) {
        unsigned major;
        char dev[64];

        /* Block majors come after "Block devices:" and mean something else. */
        if (strncmp(line, "Character devices:", 18) == 0) {
            chr = true;
            continue;
        }
        if (strncmp(line, "Block devices:", 14) == 0)
            chr = false;
        if (chr && sscanf(line, " %u %63s", &major, dev) == 2 && strcmp(dev, name) == 0) {
            *ret_major = major;
            return 0;
        }
    }
    return -ENOENT;
}

int gpu__mig_minor(const char *path, unsigned gpu, int gi, int ci, unsigned *ret_minor)
{
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    char want[64], line[128];

    if (!f)
        return -errno;
    if (ci < 0)
        (void) snprintf(want, sizeof(want), "gpu%u/gi%d/access", gpu, gi);
    else
        (void) snprintf(want, sizeof(want), "gpu%u/gi%d/ci%d/access", gpu, gi, ci);
    while (fgets(line, sizeof(line), f)) {
        char key[64];
        unsigned minor;

        if (sscanf(line, "%63s %u", key, &minor) == 2 && strcmp(key, want) == 0) {
            *ret_minor = minor;
            return 0;
        }
    }
    return -ENOENT;
}
