# rtcore: runtimed's logic without the HTTP server, so unit tests can link it.
LIBS += rtcore
rtcore_SRCS := runtimed/names.c runtimed/store.c runtimed/auth.c \
	runtimed/config.c runtimed/tiers.c runtimed/bootstrap.c runtimed/sleep.c
rtcore_PKGS := sqlite3 jansson yaml-0.1
rtcore_DEPS := common
