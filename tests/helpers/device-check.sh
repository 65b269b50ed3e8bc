#!/bin/bash
# Every real-GPU check of the suite in one shot, for a lent GPU machine (pure cgroup v2,
# no network).  Here: make && make test-build && tests/helpers/gpu-runtimed-check.sh --collect
# Device: tests/helpers/device-check.sh, carrying bin, build/gpu-carry and
# build/dev/tests/unit/sandbox; logs go to $OUT (or /tmp).
set -u
cd "$(dirname "$0")/../.." || exit 2
OUT=${OUT:-/tmp}
echo "== nvidia-smi on the host"; nvidia-smi -L; stat -fc %T /sys/fs/cgroup
# Our binaries link Debian libraries the machine may lack.  runtimed starts its shims
# with a clean environment (no LD_LIBRARY_PATH), so on this throwaway machine the carried
# libraries it lacks go where the loader looks: a fixed folder registered with ldconfig
# (a warm machine keeps it from an earlier run; it is refreshed each time).
LIBDIR=/usr/local/lib/spaceport-carry
rm -f /etc/ld.so.conf.d/zz-spaceport-carry.conf; rm -rf "$LIBDIR"; ldconfig
mkdir -p "$LIBDIR"
echo "$LIBDIR" >/etc/ld.so.conf.d/zz-spaceport-carry.conf
# ldd names a library's own missing needs only once the library is found: repeat
for pass in 1 2 3 4; do
    for l in $(for b in build/dev/tests/unit/sandbox/test-cgroup bin/spaceport-gpud bin/spacebox \
                        bin/runtimed bin/spaceport-shim bin/spacectl bin/gpu-sim; do
                   ldd "$b" | awk '/not found/{print $1}'; done | sort -u); do
        cp build/gpu-carry/lib/"$l" "$LIBDIR"/ || echo "missing library $l"
    done
    ldconfig
done
echo "carried libraries registered: $(ls "$LIBDIR" | tr '\n' ' ')"
echo "== sandbox cgroups on this host, eBPF device program included"
timeout 60 build/dev/tests/unit/sandbox/test-cgroup 2>&1 | tail -12
echo "== dedicated GPU through runtimed (nvml backend)"
timeout 200 tests/helpers/gpu-runtimed-check.sh 2>&1 | tee "$OUT/dedicated.log" | tail -60
echo "== ZeroGPU through runtimed (nvml backend, device API inside the Space; rc 0 pass, 1 fail, 3 no GPU)"
SPACEPORT_BIN=bin timeout 120 python3 tests/integration/test_34_zerogpu_runtimed_real.py \
    >"$OUT/zerogpu-runtimed.json" 2>&1
echo "rc=$?"; tail -c 6000 "$OUT/zerogpu-runtimed.json"
echo "== ZeroGPU device API on the real GPU (spaceport-gpud)"
SPACEPORT_BIN=bin OUT=$OUT timeout 100 python3 tests/integration/test_31_zerogpu_gpu.py 2>&1 | tail -30
echo "== done"
