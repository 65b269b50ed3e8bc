#!/bin/bash
# GPU and cgroup checks for spacebox on the device machine (prepared by the sandbox issue).
# Usage (as root, on a machine with an NVIDIA GPU): make bin/spacebox build/helpers/sbxprobe;
# tests/helpers/gpu-check.sh.  SPACEBOX=path picks another build (a static one for other distros).
export B=${SPACEBOX:-bin/spacebox}
P="--ro-bind $PWD/build/helpers:/probe"
echo "== host"; uname -r; id -u; stat -fc %T /sys/fs/cgroup; cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null; ls -la /dev/nvidia* 2>&1 | head; cat /proc/sys/user/max_user_namespaces; cat /etc/os-release | head -2
chmod -R a+rX build/helpers; chmod a+x . .. 2>/dev/null
echo "== status"; timeout 20 $B run $P -- /probe/sbxprobe status; echo rc=$?
GPUS=""; for d in /dev/nvidia[0-9]* /dev/nvidiactl /dev/nvidia-uvm /dev/nvidia-uvm-tools; do [ -c "$d" ] && GPUS="$GPUS --gpu $d"; done
echo "GPUS=$GPUS"
echo "== nvidia-smi with --gpu"; timeout 60 $B run $GPUS --memory 4G --pids 256 -- nvidia-smi -L; echo rc=$?
timeout 60 $B run $GPUS -- nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; echo rc=$?
echo "== nvidia-smi without --gpu (must fail)"; timeout 60 $B run -- nvidia-smi -L; echo rc=$?
echo "== /dev inside"; timeout 20 $B run $GPUS -- ls /dev; echo rc=$?
echo "== v2 memory bomb"; timeout 60 $B run --memory 64M $P -- /probe/sbxprobe memhog 512; echo rc=$?
echo "== v2 fork bomb"; timeout 60 $B run --pids 32 $P -- /probe/sbxprobe forkbomb; echo rc=$?
echo "== escapes"; for a in mount-tmpfs unshare-user setns bpf perf-event-open keyctl io-uring userfaultfd int80 x32 overwrite-exe fds dev-list; do echo -n "$a: "; timeout 20 $B run $P -- /probe/sbxprobe $a | tail -1; done
echo "== latency"; python3 - <<'PY' 2>&1 || true
import os, subprocess, time, statistics, shutil
def med(cmd, n=60):
    ts=[]
    for _ in range(n):
        t=time.perf_counter(); subprocess.run(cmd, stdout=subprocess.DEVNULL); ts.append(time.perf_counter()-t)
    return statistics.median(ts)*1000
print("spacebox median ms", round(med([os.environ["B"],"run","--","/bin/true"]),2))
bw=shutil.which("bwrap")
print("bwrap", bw)
PY
ls /sys/fs/cgroup | head -30
