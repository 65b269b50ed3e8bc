PROGS += spacebox
spacebox_SRCS := sandbox/spacebox.c
spacebox_LIBS := sandbox
