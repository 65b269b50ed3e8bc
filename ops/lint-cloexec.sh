#!/usr/bin/env bash
# Every fd is close-on-exec from birth (STYLE.md section 5): flags open/socket/
# accept4/pipe2/epoll/fopen calls in C files that do not say CLOEXEC or "e".
# A line may opt out with a trailing "/* cloexec-ok: why */".
set -uo pipefail
bad=0
for f in "$@"; do
    case "$f" in *.c) ;; *) continue ;; esac
    while IFS=: read -r line text; do
        case "$text" in *cloexec-ok*|*CLOEXEC*) continue ;; esac
        echo "$f:$line: fd created without close-on-exec: $(echo "$text" | sed 's/^[[:space:]]*//')"
        bad=1
    done < <(grep -nE '\b(open|openat|socket|socketpair|accept4|pipe2|epoll_create1|inotify_init1|signalfd|timerfd_create|memfd_create|eventfd)\(' "$f" |
             grep -vE '^\s*[0-9]+:\s*(/\*|\*)' | grep -vE '#define|BANNED')
    while IFS=: read -r line text; do
        echo "$f:$line: fopen without the \"e\" (O_CLOEXEC) mode: $(echo "$text" | sed 's/^[[:space:]]*//')"
        bad=1
    done < <(grep -nE '\bfopen\([^,]+, *"[rwa]\+?"\)' "$f")
done
exit $bad
