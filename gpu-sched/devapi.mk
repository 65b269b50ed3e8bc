# The ZeroGPU device API (REFERENCE.md §5.4) over the lease scheduler: libgpuapi, for
# runtimed to embed, and spaceport-gpud, which serves it for one Space with a fake
# inventory (tests, operators trying the protocol).  llhttp comes as C sources from
# Debian's node-llhttp, compiled once in common/ (libllhttp).
LIBS += gpuapi
gpuapi_SRCS := gpu-sched/devapi-token.c gpu-sched/devapi-http.c gpu-sched/devapi-loop.c \
               gpu-sched/devapi-routes.c
gpuapi_PKGS := jansson
gpuapi_DEPS := gpu common llhttp
gpu-sched_CFLAGS := -I/usr/share/include/llhttp

PROGS += spaceport-gpud
spaceport-gpud_SRCS := gpu-sched/gpud.c
spaceport-gpud_LIBS := gpuapi
