# shellcheck shell=bash
# Shared by scripts/: a private apt configuration for one Debian architecture, so a
# script can fetch foreign-architecture packages (the musl sysroots, the e2e kernel)
# with the system's apt state untouched. Sourced, never run.
# Usage: private_apt DIR DEB_ARCH SUITE   prints the apt.conf path to use as APT_CONFIG.
# The first call writes DIR/etc/debian.sources (this machine's mirror, from
# debian-mirror.sh: it is never written into a file of ours) and DIR/apt.conf and runs
# apt-get update; later calls reuse them. Remove DIR/apt.conf to refresh the lists.
private_apt() {
  local dir=$1 arch=$2 suite=$3 mirror
  mkdir -p "$dir"/{lists/partial,cache/archives/partial,etc}
  if [ ! -f "$dir/apt.conf" ]; then
    mirror=$("$(dirname "${BASH_SOURCE[0]}")/debian-mirror.sh") || return 1
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$mirror" "$suite" > "$dir/etc/debian.sources"
    cat > "$dir/apt.conf.tmp" <<CONF
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "$dir/etc";
Dir::State::Lists "$dir/lists";
Dir::Cache "$dir/cache";
Dir::State::status "/dev/null";
APT::Architecture "$arch";
APT::Architectures { "$arch"; };
CONF
    if ! APT_CONFIG="$dir/apt.conf.tmp" apt-get update -qq >&2; then
      echo "${0##*/}: error: apt-get update failed for the private $arch sources in $dir" >&2
      return 1
    fi
    mv "$dir/apt.conf.tmp" "$dir/apt.conf"
  fi
  printf '%s\n' "$dir/apt.conf"
}
