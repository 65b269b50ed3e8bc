# rtgit: the Spaces' bare repositories and git's smart HTTP, over the real git.
LIBS += rtgit
rtgit_SRCS := runtimed/gitrepo.c runtimed/githttp.c runtimed/gitcommit.c runtimed/lfs.c
rtgit_PKGS :=
rtgit_DEPS := common
unit_rtgit_LIBS :=

# rtbuild: layered, cached builds of a Space commit in the sandbox.
LIBS += rtbuild
rtbuild_SRCS := runtimed/build.c
rtbuild_DEPS := rtgit sandbox common
unit_rtbuild_LIBS :=
