# Operations: /metrics (counters and the admin listener) and backup/restore, in rtcore
# so the builder and lifecycle can record metrics and unit tests can link it all.
rtcore_SRCS += runtimed/metrics.c runtimed/metrics-http.c runtimed/backup.c
runtimed_SRCS += runtimed/backup-api.c
