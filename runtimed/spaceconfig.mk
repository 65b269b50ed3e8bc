# The Space config parser (README.md front matter), the table-driven YAML helper it
# shares with the SDK templates, and the template loader.
LIBS += spaceconfig
spaceconfig_SRCS := runtimed/conftable.c runtimed/spaceconfig.c runtimed/template.c
spaceconfig_PKGS := yaml-0.1
spaceconfig_DEPS := common
