PROGS += runtimed
runtimed_SRCS := runtimed/main.c
runtimed_LIBS := common
