# The ZeroGPU device API (REFERENCE.md §5.4) over the lease scheduler: libgpuapi, for
# runtimed to embed, and spaceport-gpud, which serves it for one Space with a fake
# inventory (tests, operators trying the protocol).  llhttp comes as C sources from
# Debian's node-llhttp, wrapped by gpu-sched/llhttp_*.c like proxy/ does.
LIBS += gpuapi
gpuapi_SRCS := gpu-sched/devapi-token.c gpu-sched/devapi-http.c gpu-sched/devapi-loop.c \
               gpu-sched/devapi-routes.c gpu-sched/llhttp_api.c gpu-sched/llhttp_http.c \
               gpu-sched/llhttp_llhttp.c
gpuapi_PKGS := jansson
gpuapi_DEPS := gpu common
gpu-sched_CFLAGS := -I/usr/share/include/llhttp

PROGS += spaceport-gpud
spaceport-gpud_SRCS := gpu-sched/gpud.c
spaceport-gpud_LIBS := gpuapi
