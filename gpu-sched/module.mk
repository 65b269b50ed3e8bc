# gpu-sched: GPU inventory (NVML via dlopen, or fake), dedicated allocation,
# ZeroGPU leases, device-cgroup rules, and the gpu-sim trace simulator.
LIBS += gpu
gpu_SRCS := gpu-sched/inventory.c gpu-sched/backend-fake.c gpu-sched/backend-nvml.c \
            gpu-sched/nvidia-proc.c gpu-sched/alloc.c gpu-sched/quota.c gpu-sched/lease.c \
            gpu-sched/sim.c gpu-sched/devcg.c
gpu_PKGS :=
gpu_DEPS := common

PROGS += gpu-sim
gpu-sim_SRCS := gpu-sched/gpu-sim.c
gpu-sim_LIBS := gpu
