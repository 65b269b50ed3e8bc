/* The shim: one small process per running Space (the role conmon plays for podman).
 *
 * It owns the Space's sandbox, writes its output to a size-capped run log, records how
 * it ended (exit code, signal, OOM kill) and outlives runtimed, so that runtimed can
 * restart without restarting any Space.  Everything about one running Space lives in
 * its state directory:
 *
 *   spec.json     what to run (written by runtimed before it starts the shim)
 *   resolv.conf, hosts   the Space's /etc files, bound read-only (runtimed/runspec.c)
 *   shim.pid      the shim's pid, written once the sandbox runs
 *   status.json   {"state": "running"|"exited", "pid", "shimPid", "upstream",
 *                  "startedAt", "endedAt", "exit": {"reason", "code", "signal"}}
 *                 replaced atomically at each change
 *   run.log       one JSON object per line: {"timestamp": "...", "data": "<line>"};
 *                 rotated to run.log.1 past its cap
 *   shim.sock     control socket: one command per line, one JSON answer per line:
 *                 "status", "stop SECONDS" (SIGTERM, then SIGKILL), "freeze", "thaw",
 *                 "allow-gpus" (spec gpusDeferred, cgroup v2: the bound gpus become
 *                 allowed in the sandbox group's program once no process is left in
 *                 the group itself; idempotent), "watch" (the connection stays open;
 *                 {"event": "exit", ...} when the sandbox ends)
 *
 * runtimed finds running shims after a restart by their sockets. */
#ifndef SP_RUNTIMED_SHIM_H
#define SP_RUNTIMED_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#define RT_SHIM_LOG_MAX (4ULL << 20)

struct rt_shim_status {
    char state[16]; /* "starting", "running", "exited", or "" when unknown */
    pid_t pid;      /* the sandbox init as seen from the host */
    pid_t shim_pid;
    char upstream[64]; /* "IP:PORT" the proxy dials, "" without a network */
    char reason[16];   /* "exited", "signaled", "oom", "killed" */
    int code;
    int signal;
    bool frozen;
};

/* Starts a detached shim (its own session, reparented away from runtimed) for the
 * spec.json already written in @state_dir, and waits until it runs the sandbox or
 * fails.  @shim_path is the spaceport-shim binary.  Returns 0 or -errno with the
 * shim's own error line in @err. */
int rt_shim_start(const char *shim_path, const char *state_dir, struct rt_err *err);

/* Sends one command ("status", "stop 10", "freeze", "thaw") to the shim of @state_dir
 * and parses the answer.  -ECONNREFUSED / -ENOENT when no shim runs there. */
int rt_shim_command(const char *state_dir, const char *cmd, struct rt_shim_status *ret,
                    struct rt_err *err);

/* Reads status.json without asking the shim (works after it exited). */
int rt_shim_read_status(const char *state_dir, struct rt_shim_status *ret, struct rt_err *err);

#endif
