#!/usr/bin/env bash
# Make a Debian base image from Debian's own packages, for machines that cannot pull from a
# container registry (CI here): debootstrap a minimal root file system and `docker import` it.
# Idempotent: does nothing when the image already exists.
#
#   bash scripts/debian-base-image.sh NAME [SUITE]      # e.g. pma-sso-base/debian:bookworm
#
# Settings: DEBIAN_MIRROR (default: the first Debian URI in /etc/apt/sources.list.d, else
# http://deb.debian.org/debian), DEBIAN_VARIANT (default minbase), DEBIAN_INCLUDE (extra
# packages, comma-separated, default none).
set -euo pipefail
name="${1:?usage: $0 NAME [SUITE]}"
suite="${2:-bookworm}"

if docker image inspect "$name" >/dev/null 2>&1; then
  echo "# base image $name exists" >&2
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install -y debootstrap)" >&2; exit 3; }

mirror="${DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror=$(grep -rhoE '(URIs:|deb) +https?://[^ ]*/debian/?( |$)' /etc/apt/sources.list.d /etc/apt/sources.list 2>/dev/null \
    | awk '{print $2}' | head -n1 || true)
  mirror="${mirror:-http://deb.debian.org/debian}"
fi

dir=$(mktemp -d /tmp/debian-base.XXXXXX)
trap 'rm -rf "$dir"' EXIT
started=$(date +%s)
include=()
[ -n "${DEBIAN_INCLUDE:-}" ] && include=(--include="$DEBIAN_INCLUDE")
if ! debootstrap --variant="${DEBIAN_VARIANT:-minbase}" "${include[@]}" "$suite" "$dir" "$mirror" >"$dir.log" 2>&1; then
  echo "debootstrap $suite from $mirror failed; the tail of its log:" >&2
  tail -n 20 "$dir.log" >&2
  rm -f "$dir.log"
  exit 1
fi
rm -f "$dir.log"
# The apt lists and caches of the bootstrap are not part of the image.
rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
tar -C "$dir" -c . | docker import - "$name" >/dev/null
echo "# base image $name ($suite from $mirror) made in $(( $(date +%s) - started )) s" >&2
