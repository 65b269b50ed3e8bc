# spacectl, the operator command line (runtimed/spacectl*.c).
#
# The same name describes a library and a program: the unit tests in
# tests/unit/spacectl/ link against libspacectl.a, and bin/spacectl is built from the
# same sources.  The archive also holds spacectl.o (main), which a test never pulls in
# because it defines its own main.
SPACECTL_SRCS := runtimed/spacectl.c runtimed/spacectl-args.c runtimed/spacectl-ctx.c \
                 runtimed/spacectl-http.c runtimed/spacectl-sse.c runtimed/spacectl-fmt.c \
                 runtimed/spacectl-space.c runtimed/spacectl-admin.c \
                 runtimed/spacectl-backup.c

LIBS += spacectl
PROGS += spacectl
spacectl_SRCS := $(SPACECTL_SRCS)
spacectl_PKGS := libcurl jansson
spacectl_DEPS := common
spacectl_LIBS := common
