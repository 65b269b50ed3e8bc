PROGS += spaceproxy
spaceproxy_SRCS := proxy/main.c
spaceproxy_LIBS := common
