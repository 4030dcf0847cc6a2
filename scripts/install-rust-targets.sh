#!/usr/bin/env bash
# Install the rustup targets for the Raspberry Pi builds, working around the known
# dated-URL 404 for armv7 (see README "Cross-building"): rustup's download cache is seeded
# with the same file from the undated URL, verified against the channel manifest's hash.
# Usage: scripts/install-rust-targets.sh TARGET...
set -euo pipefail
die() { echo "install-rust-targets: $*" >&2; exit 1; }
[ $# -ge 1 ] || { echo "usage: scripts/install-rust-targets.sh TARGET..." >&2; exit 2; }

installed=$(rustup target list --installed)
manifest="$(rustc --print sysroot)/lib/rustlib/multirust-channel-manifest.toml"
downloads="${RUSTUP_HOME:-$HOME/.rustup}/downloads"

# field TARGET KEY: a value of [pkg.rust-std.target.TARGET] in the channel manifest.
field() {
  awk -v s="[pkg.rust-std.target.$1]" -v k="$2" \
    '$0==s{f=1;next} /^\[/{f=0} f&&$1==k{gsub(/"/,"",$3);print $3;exit}' "$manifest"
}

for t in "$@"; do
  if grep -qx "$t" <<<"$installed"; then
    echo "rust target $t: already installed" >&2
    continue
  fi
  if rustup target add "$t"; then
    continue
  fi
  echo "rust target $t: rustup download failed; seeding its cache from the undated URL" >&2
  [ -f "$manifest" ] || die "no channel manifest at $manifest: cannot work around the failed download of $t"
  hash=$(field "$t" xz_hash)
  url=$(field "$t" xz_url | sed -E 's#/dist/[0-9]{4}-[0-9]{2}-[0-9]{2}/#/dist/#')
  { [ -n "$hash" ] && [ -n "$url" ]; } || die "the channel manifest lists no rust-std for $t"
  mkdir -p "$downloads"
  curl -sSfL --retry 3 -o "$downloads/$hash.tmp" "$url" \
    || die "could not download rust-std for $t from the undated URL either; $t cannot be built here"
  echo "$hash  $downloads/$hash.tmp" | sha256sum -c --quiet - \
    || { rm -f "$downloads/$hash.tmp"; die "rust-std for $t does not match the manifest hash $hash"; }
  mv "$downloads/$hash.tmp" "$downloads/$hash"
  rustup target add "$t" || die "rustup target add $t failed even from the seeded cache"
done
