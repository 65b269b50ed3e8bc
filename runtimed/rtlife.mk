# rtlife: runtimed's lifecycle supervisor (lifecycle.h): the shims of running Spaces,
# their health, sleep and restarts.  Linked into runtimed; tests/unit/rtlife drives it.
LIBS += rtlife
rtlife_SRCS := runtimed/lifecycle.c runtimed/lifecycle-run.c runtimed/lifecycle-reattach.c \
	runtimed/health.c runtimed/runspec.c runtimed/resolv.c runtimed/gpunode.c runtimed/lifecycle-zero.c runtimed/gpuzero-cg.c
rtlife_PKGS := jansson
rtlife_DEPS := rtcore spaceconfig rtshim gpu sandbox common
runtimed_LIBS += rtlife
unit_rtlife_LIBS :=
