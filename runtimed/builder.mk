# rtbuilder: runtimed's build queue (builder.h) over rtbuild, the SDK templates and the
# Space config parser.  Linked into runtimed; its tests drive it through runtimed.
LIBS += rtbuilder
rtbuilder_SRCS := runtimed/builder.c runtimed/builder-job.c runtimed/buildplan.c runtimed/gc.c
rtbuilder_DEPS := rtbuild spaceconfig rtgit rtcore sandbox common
