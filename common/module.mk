LIBS += common
common_SRCS := common/error.c common/log.c common/sha256.c common/spawn.c common/util.c \
               common/devcg.c
common_PKGS :=
common_DEPS :=

# llhttp's C sources from Debian's node-llhttp (common/llhttp_*.c include them), one
# copy for every HTTP parser user: spaceproxy and the ZeroGPU device API.
LIBS += llhttp
llhttp_SRCS := common/llhttp_api.c common/llhttp_http.c common/llhttp_llhttp.c
llhttp_PKGS :=
llhttp_DEPS :=
common_CFLAGS := -I/usr/share/include/llhttp
