#!/bin/bash
# Dedicated GPUs through runtimed on a real NVIDIA GPU, in one shot (issue #12).
#
# Here (the build machine), as root:
#     make && tests/helpers/gpu-runtimed-check.sh --collect
# copies the shared libraries bin/runtimed, bin/spaceport-shim, bin/spacectl and
# bin/gpu-sim need (all but glibc's own) into build/gpu-carry/lib (a few MiB).
# On the device machine (no network; maybe without our Debian libraries), run from the
# repository root with bin/ and build/gpu-carry carried along, e.g. through the device
# tool: command "tests/helpers/gpu-runtimed-check.sh", carry ["bin", "build/gpu-carry"],
# timeout 300.  It needs python3 and git there (checked first).  Only the libraries the
# device lacks are put on LD_LIBRARY_PATH, so its own git and python keep theirs.
# It runs tests/integration/test_32_gpu_runtimed_real.py as a plain script: runtimed with
# gpu_backend: nvml, a 1-GPU tier of the first GPU's kind, a Space whose app runs
# nvidia-smi -L, a CUDA kernel (driver API + PTX, no toolkit) and torch if present,
# inside its sandbox.  Prints one JSON report; exit 0 all passed, 1 a check failed,
# 3 no GPU (the pytest of the same file skips then).
set -u
cd "$(dirname "$0")/../.." || exit 2
CARRY=build/gpu-carry/lib
BINS="bin/runtimed bin/spaceport-shim bin/spacectl bin/gpu-sim"

if [ "${1:-}" = "--collect" ]; then
    rm -rf "$CARRY" && mkdir -p "$CARRY" || exit 2
    for b in $BINS; do
        [ -x "$b" ] || { echo "missing $b: run make first" >&2; exit 2; }
        ldd "$b" | awk '/=> \//{print $3}'
    done | sort -u | while read -r lib; do
        case "$(basename "$lib")" in
        libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|ld-linux*|libresolv.so.*) ;;
        *) cp -L "$lib" "$CARRY/" ;;
        esac
    done
    du -sh "$CARRY"
    exit 0
fi

echo "== host"; uname -r; head -2 /etc/os-release 2>/dev/null; stat -fc %T /sys/fs/cgroup
ldd --version 2>&1 | head -1; ls -la /dev/nvidia* 2>&1 | head
for t in python3 git; do command -v "$t" >/dev/null || { echo "this check needs $t" >&2; exit 2; }; done

# The libraries this machine lacks, and only those, from the carried set.
MISSING=$(for b in $BINS; do ldd "$b" 2>/dev/null | awk '/not found/{print $1}'; done | sort -u)
if [ -n "$MISSING" ]; then
    LIBDIR=$(mktemp -d /tmp/sp-gpu-libs.XXXXXX)
    chmod 755 "$LIBDIR"
    for l in $MISSING; do
        [ -e "$CARRY/$l" ] || { echo "missing library $l and not carried ($CARRY)" >&2; exit 2; }
        cp "$CARRY/$l" "$LIBDIR/"
    done
    export LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "carried libraries used: $MISSING"
fi
if bin/runtimed --version 2>&1 | grep -q "GLIBC_"; then
    echo "bin/runtimed needs a newer glibc than this machine has:" >&2
    bin/runtimed --version >&2
    exit 2
fi
bin/runtimed --version || exit 2
# The sandboxed app (uid 1000 in its user namespace) walks into the repository's parents.
chmod a+x . .. 2>/dev/null
SPACEPORT_BIN=bin timeout 280 python3 tests/integration/test_32_gpu_runtimed_real.py
rc=$?
echo "rc=$rc"
exit $rc
