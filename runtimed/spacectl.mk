PROGS += spacectl
spacectl_SRCS := runtimed/spacectl.c
spacectl_LIBS := common
