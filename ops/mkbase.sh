#!/usr/bin/env bash
# Builds a Debian root for Spaces with debootstrap: what builds and apps run on instead
# of the host's /usr when runtimed's `rootfs:` setting names it.
#
#   ops/mkbase.sh [--suite bookworm] [--mirror URL] [--extra "pkg pkg"] DEST
#
# DEST must not exist; the root is built next to it and renamed into place when
# complete, so a half-built base is never used.  Needs root and debootstrap
# (apt-get install debootstrap); takes a few minutes and about 600 MB (more with
# --extra "ffmpeg").  Then, in /etc/spaceport/runtimed.conf:
#     rootfs: DEST
set -euo pipefail

suite=bookworm
mirror=http://deb.debian.org/debian
extra=
while [ $# -gt 0 ]; do
    case "$1" in
    --suite) suite=$2; shift 2 ;;
    --mirror) mirror=$2; shift 2 ;;
    --extra) extra=$2; shift 2 ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "mkbase: unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
done
[ $# -eq 1 ] || { echo "usage: mkbase.sh [--suite S] [--mirror URL] [--extra PKGS] DEST" >&2; exit 2; }
dest=$1
[ "$(id -u)" -eq 0 ] || { echo "mkbase: needs root (debootstrap)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "mkbase: apt-get install debootstrap" >&2; exit 1; }
[ ! -e "$dest" ] || { echo "mkbase: '$dest' exists" >&2; exit 1; }

# What Spaces expect (as on the Hub's images): Python with venv and pip, git and git-lfs,
# TLS roots, and the system libraries common wheels load (OpenCV, Pillow, torch).
pkgs=python3,python3-venv,python3-pip,python3-dev,git,git-lfs,ca-certificates,curl,tzdata,locales
pkgs=$pkgs,build-essential,libgl1,libglib2.0-0,libsm6,libxext6,libxrender1,libgomp1,libgl1-mesa-dri
for p in $extra; do pkgs=$pkgs,$p; done

work=$(dirname "$dest")/.$(basename "$dest").partial
rm -rf "$work"
trap 'rm -rf "$work"' EXIT
debootstrap --variant=minbase --include="$pkgs" "$suite" "$work" "$mirror"

# The user apps run as (uid 1000, like the Hub's "user"), a UTF-8 locale, no caches.
chroot "$work" /usr/sbin/useradd --uid 1000 --create-home --shell /bin/bash user
echo 'C.UTF-8 UTF-8' > "$work/etc/locale.gen"
chroot "$work" /usr/sbin/locale-gen >/dev/null
rm -rf "$work"/var/cache/apt/archives/*.deb "$work"/var/lib/apt/lists/* "$work"/tmp/* \
    "$work"/var/tmp/*
printf 'suite=%s\nmirror=%s\nbuilt=%s\npackages=%s\n' "$suite" "$mirror" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$pkgs" > "$work/etc/spaceport-base"
chmod 0755 "$work"
mv "$work" "$dest"
trap - EXIT
echo "mkbase: built $dest ($(du -sh "$dest" | cut -f1)); set 'rootfs: $dest' in runtimed.conf" >&2
