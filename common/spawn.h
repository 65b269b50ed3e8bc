/* Starting helper programs (git, git-http-backend) safely: no fd leaks into the child,
 * exec failures reported through a close-on-exec pipe rather than guessed from an exit
 * code.  Not for sandboxed programs: those go through libsandbox. */
#ifndef SP_COMMON_SPAWN_H
#define SP_COMMON_SPAWN_H

#include <sys/types.h>

#include "error.h"

struct rt_spawn_opts {
    const char *const *argv; /* argv[0] is looked up in PATH when it has no '/' */
    const char *const *envp; /* NULL: inherit the caller's environment */
    const char *cwd;         /* NULL: stay where we are */
    int stdin_fd;            /* -1: /dev/null */
    int stdout_fd;           /* -1: /dev/null */
    int stderr_fd;           /* -1: /dev/null */
};

/* Starts the program.  Returns 0 and its pid in *ret_pid, or -errno with the failing
 * step in @err ("exec 'git': No such file or directory"). Never blocks on the child. */
int rt_spawn(const struct rt_spawn_opts *o, pid_t *ret_pid, struct rt_err *err);

/* Waits for @pid.  Returns its exit status (0-255), or 128+N when killed by signal N,
 * or -errno when waitpid fails. */
int rt_spawn_wait(pid_t pid);

/* Runs @argv to completion with stdin from /dev/null, capturing up to @cap-1 bytes of
 * stdout into @out (NUL-terminated; the rest is drained and dropped) and stderr into
 * @errbuf when non-NULL.  Returns the exit status as rt_spawn_wait() does, or -errno. */
int rt_run_capture(const char *const *argv, const char *cwd, char *out, size_t cap, char *errbuf,
                   size_t errcap, struct rt_err *err);

/* Like rt_run_capture(), but collects all of stdout into a new buffer (NUL-terminated,
 * free() it) of at most @max bytes; more is -EFBIG.  Returns the exit status or -errno;
 * *ret_out is set only when the return value is >= 0. */
int rt_run_output(const char *const *argv, const char *cwd, size_t max, char **ret_out,
                  size_t *ret_len, char *errbuf, size_t errcap, struct rt_err *err);

#endif
