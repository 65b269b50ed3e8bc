PROGS += runtimed
runtimed_SRCS := runtimed/main.c runtimed/api.c runtimed/api-http.c runtimed/api-shapes.c \
	runtimed/api-spaces.c runtimed/api-admin.c runtimed/api-proxy.c runtimed/api-logs.c \
	runtimed/api-git.c runtimed/api-repo.c runtimed/api-commit.c runtimed/api-tree.c \
	runtimed/api-lfs.c
runtimed_LIBS := rtbuilder rtcore
runtimed_LDLIBS := -lcivetweb
