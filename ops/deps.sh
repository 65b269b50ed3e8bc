#!/usr/bin/env bash
# Installs every build and test dependency by name: Debian packages from
# ops/debian-packages.txt, Python test packages (tests/requirements.txt) into .venv,
# and npm packages from tests/package.json when present.  Idempotent, and a no-op in
# well under a second when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
log() { printf 'deps: %s\n' "$*" >&2; }

# --- Debian packages ---------------------------------------------------------------------
mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' ops/debian-packages.txt | grep -v '^$')
missing=()
while read -r pkg status; do
    [ "$status" = "installed" ] || missing+=("$pkg")
done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${wanted[@]}" 2>/dev/null || true)
# dpkg-query prints nothing for packages it has never heard of: those are missing too.
for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -q '^installed$' ||
        [[ " ${missing[*]-} " == *" $pkg "* ]] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        log "missing Debian packages: ${missing[*]}; run 'sudo make deps'"
        exit 1
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Python test packages ----------------------------------------------------------------
# Debian's python3 (not whatever python3 comes first on PATH), so the venv matches the
# interpreter that Spaces are built with.
req_hash=$(cat tests/requirements.txt tests/requirements-nodeps.txt 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$req_hash" ]; then
    log "creating the test venv in $VENV"
    [ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/requirements.txt
    [ ! -f tests/requirements-nodeps.txt ] ||
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
            -r tests/requirements-nodeps.txt
    echo "$req_hash" > "$VENV/.requirements.sha256"
fi

# --- npm packages (the browser driver for end-to-end tests) ------------------------------
if [ -f tests/package.json ]; then
    pkg_hash=$(cat tests/package.json tests/package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)
    if [ "$(cat tests/node_modules/.spaceport.sha256 2>/dev/null)" != "$pkg_hash" ]; then
        command -v npm >/dev/null || { log "npm is needed for tests/package.json"; exit 1; }
        log "installing npm packages for tests"
        (cd tests && npm install --no-audit --no-fund --silent)
        echo "$pkg_hash" > tests/node_modules/.spaceport.sha256
    fi
fi
