# spaceproxy: the data plane.  libproxy holds everything but main(), so the unit tests
# and the fuzz harness link the same code.  llhttp comes as C sources from Debian's
# node-llhttp, compiled once in common/ (libllhttp).
LIBS += proxy
proxy_SRCS := proxy/config.c proxy/route.c proxy/http1.c proxy/conn.c proxy/upstream.c \
              proxy/loop.c proxy/pages.c proxy/auth.c proxy/feed.c proxy/feed-routes.c \
              proxy/admin.c proxy/global.c
proxy_PKGS := yaml-0.1 jansson libcurl libcrypto
proxy_DEPS := common llhttp
proxy_CFLAGS := -I/usr/share/include/llhttp
unit_proxy_LIBS :=

PROGS += spaceproxy
spaceproxy_SRCS := proxy/main.c
spaceproxy_LIBS := proxy
spaceproxy_LDLIBS := -lpthread
