#!/usr/bin/env bash
# The part of `make install` beyond the binaries: templates, systemd units, sysusers and
# tmpfiles entries, docs, example configs, the base-image script, and first configs in
# SYSCONFDIR/spaceport that are never overwritten.  Honours DESTDIR (packaging: nothing
# here starts, enables or creates anything outside DESTDIR).
#
#   PREFIX      /usr/local         binaries in PREFIX/bin, data in PREFIX/share/spaceport
#   SYSCONFDIR  /etc
#   UNITDIR     /etc/systemd/system, or PREFIX/lib/systemd/system when PREFIX is /usr
#   SYSUSERSDIR, TMPFILESDIR   likewise (systemd reads /usr/lib/... and /etc/..., never
#               /usr/local/lib/..., so a /usr/local install puts them under /etc)
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
SYSCONFDIR=${SYSCONFDIR:-/etc}
if [ "$PREFIX" = /usr ]; then sysd=$PREFIX/lib; else sysd=$SYSCONFDIR; fi
UNITDIR=${UNITDIR:-$sysd/systemd/system}
SYSUSERSDIR=${SYSUSERSDIR:-$sysd/sysusers.d}
TMPFILESDIR=${TMPFILESDIR:-$sysd/tmpfiles.d}
BINDIR=$PREFIX/bin
DATADIR=$PREFIX/share/spaceport
DOCDIR=$PREFIX/share/doc/spaceport

render() { # template -> destination, with the paths filled in
    sed -e "s|@BINDIR@|$BINDIR|g" -e "s|@SYSCONFDIR@|$SYSCONFDIR|g" \
        -e "s|@DOCDIR@|$DOCDIR|g" -e "s|@DATADIR@|$DATADIR|g" "$1" > "$2.tmp"
    chmod 0644 "$2.tmp"
    mv -f "$2.tmp" "$2"
}

install -d "$DESTDIR$DATADIR/templates" "$DESTDIR$DOCDIR/examples" "$DESTDIR$UNITDIR" \
    "$DESTDIR$SYSUSERSDIR" "$DESTDIR$TMPFILESDIR"
install -d -m 0755 "$DESTDIR$SYSCONFDIR/spaceport"
install -m 0644 templates/*.yaml "$DESTDIR$DATADIR/templates/"
install -m 0755 ops/mkbase.sh "$DESTDIR$DATADIR/mkbase.sh"
for u in ops/systemd/*.service.in; do
    render "$u" "$DESTDIR$UNITDIR/$(basename "${u%.in}")"
done
install -m 0644 ops/sysusers.d/spaceport.conf "$DESTDIR$SYSUSERSDIR/spaceport.conf"
install -m 0644 ops/tmpfiles.d/spaceport.conf "$DESTDIR$TMPFILESDIR/spaceport.conf"
install -m 0644 ops/runtimed.conf.example proxy/spaceproxy.yaml.example "$DESTDIR$DOCDIR/examples/"
for d in docs/*.md; do install -m 0644 "$d" "$DESTDIR$DOCDIR/"; done

# First configs: written once, an operator's edits are never overwritten.
conf=$DESTDIR$SYSCONFDIR/spaceport/runtimed.conf
if [ ! -e "$conf" ]; then
    cat > "$conf" <<CONF
# runtimed settings; every key, with its default, is in
# $DOCDIR/examples/runtimed.conf.example (runtimed --print-config-example).
templates_dir: $DATADIR/templates
CONF
    chmod 0600 "$conf"
fi
conf=$DESTDIR$SYSCONFDIR/spaceport/spaceproxy.yaml
if [ ! -e "$conf" ]; then
    # The example with runtimed's address switched on (the unit passes --token-file).
    sed -e 's|^# runtimed: http://127.0.0.1:8080 |runtimed: http://127.0.0.1:8080 |' \
        proxy/spaceproxy.yaml.example > "$conf"
    chmod 0644 "$conf"
fi

if [ -z "$DESTDIR" ]; then
    cat >&2 <<MSG
installed.  Next (as root):
  systemd-sysusers; systemd-tmpfiles --create
  systemctl daemon-reload
  systemctl enable --now spaceport-runtimed.service spaceport-proxy.service
See $DOCDIR/operator-guide.md.
MSG
fi
