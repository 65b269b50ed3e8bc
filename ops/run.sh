#!/usr/bin/env bash
# make run: starts runtimed (API and git on 127.0.0.1:8080) and spaceproxy (browser
# traffic on 127.0.0.1:8000) with their embedded defaults, and stops both on Ctrl-C.
# SPACEPORT_DATA_DIR overrides the data dir (default /var/lib/spaceport).
set -euo pipefail
cd "$(dirname "$0")/.."

data_dir=${SPACEPORT_DATA_DIR:-/var/lib/spaceport}
mkdir -p "$data_dir"

pids=()
stop() {
    trap - INT TERM EXIT
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop INT TERM EXIT

bin/runtimed --data-dir "$data_dir" &
pids+=($!)
# spaceproxy authenticates with the proxy token runtimed writes at its first start.
for _ in $(seq 100); do
    [ -s "$data_dir/proxy.token" ] || ! kill -0 "${pids[0]}" 2>/dev/null && break
    sleep 0.1
done
bin/spaceproxy --runtimed http://127.0.0.1:8080 --token-file "$data_dir/proxy.token" &
pids+=($!)

cat >&2 <<MSG
Spaceport is starting:
  API and git   http://127.0.0.1:8080   (admin token: $data_dir/admin.token)
  Spaces        http://OWNER-NAME.localhost:8000/
Press Ctrl-C to stop both.
MSG
# Whichever daemon exits first takes the other down with it.
wait -n "${pids[@]}"
