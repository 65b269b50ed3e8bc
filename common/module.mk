LIBS += common
common_SRCS := common/error.c common/log.c common/sha256.c common/spawn.c common/util.c
common_PKGS :=
common_DEPS :=
