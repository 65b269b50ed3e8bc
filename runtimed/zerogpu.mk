# ZeroGPU in runtimed: the `spaces` device API (libgpuapi) served inside each zero
# Space's network namespace, and its admin and quota endpoints.
runtimed_SRCS += runtimed/gpuzero.c runtimed/api-gpu.c
runtimed_LIBS += gpuapi gpu
