PROGS += runtimed spacectl
runtimed_SRCS := runtimed/main.c
runtimed_LIBS := common
spacectl_SRCS := runtimed/spacectl.c
spacectl_LIBS := common
