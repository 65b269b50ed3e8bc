# The per-Space shim (bin/spaceport-shim) and runtimed's client side of it (rtshim).
LIBS += rtshim
rtshim_SRCS := runtimed/shim-client.c
rtshim_PKGS := jansson
rtshim_DEPS := common

PROGS += spaceport-shim
spaceport-shim_SRCS := runtimed/shim-main.c runtimed/shim-spec.c
spaceport-shim_LIBS := sandbox sbxnet common
spaceport-shim_PKGS := jansson
unit_rtshim_LIBS :=
