#!/usr/bin/env bash
# Print the Debian mirror this machine's apt uses (never written into a file of ours).
# Usage: scripts/debian-mirror.sh
# DEBIAN_MIRROR in the environment wins; otherwise the first URIs:/deb line of the system's
# apt sources (deb822 or one-line format).
set -euo pipefail
if [ -n "${DEBIAN_MIRROR:-}" ]; then
  printf '%s\n' "$DEBIAN_MIRROR"
  exit 0
fi
mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
if [ -z "$mirror" ]; then
  mirror=$(awk '$1=="deb"{for(i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | grep -v security | head -n1 || true)
fi
[ -n "$mirror" ] || { echo "debian-mirror: no Debian mirror in /etc/apt/sources.list*; set DEBIAN_MIRROR" >&2; exit 1; }
printf '%s\n' "${mirror%/}"
