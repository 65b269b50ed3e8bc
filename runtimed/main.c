/* runtimed: the Spaceport control plane: API, git, builds, lifecycle. */
#include <stdio.h>
#include <string.h>

#include "version.h"
#include "banned.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: runtimed [--help] [--version]\n\nthe Spaceport control plane: API, git, "
                 "builds, lifecycle.\n");
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("runtimed %s\n", SPACEPORT_VERSION);
            return 0;
        }
        fprintf(stderr, "runtimed: unknown option '%s' (see --help)\n", argv[i]);
        return 2;
    }
    usage(stderr);
    return 2;
}
