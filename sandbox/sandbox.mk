LIBS += sandbox
sandbox_SRCS := sandbox/spec.c sandbox/cgroup.c sandbox/seccomp.c sandbox/uidrange.c sandbox/net-public.c \
                sandbox/mounts.c sandbox/caps.c sandbox/spawn.c
sandbox_PKGS := libseccomp libcap
sandbox_DEPS := common
