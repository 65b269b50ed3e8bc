# sbxnet: per-Space veth links and the host filter (sandbox/net.h); spacenet: its operator tool.
LIBS += sbxnet
sbxnet_SRCS := sandbox/net.c sandbox/net-conf.c sandbox/net-filter.c sandbox/net-link.c
sbxnet_PKGS := libnl-3.0 libnl-route-3.0 libnftables
sbxnet_DEPS := sandbox common

PROGS += spacenet
spacenet_SRCS := sandbox/net-tool.c sandbox/net-bench.c
spacenet_LIBS := sbxnet
