#!/usr/bin/env bash
# Sets snap up on a fresh Debian/Ubuntu machine and runs the main job on the
# embedded default: a local repository in the default place, no server.
#
#   scripts/setup.sh [DIR]
#
# Installs what is missing, builds snap, installs it as /usr/local/bin/snap
# (or ~/.local/bin/snap when not root), creates a password file and the
# default repository if there is none, then pushes DIR (default: /var/www if
# it exists, else this checkout's src/), lists the snapshots, restores the
# latest one into a temporary directory, compares it with DIR, and checks the
# repository.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)

scripts/install-deps.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/snap-target}
cargo build --release --bin snap

if [ "$(id -u)" -eq 0 ]; then
  bindir=/usr/local/bin; confdir=/etc/snap
else
  bindir=$HOME/.local/bin; confdir=${XDG_CONFIG_HOME:-$HOME/.config}/snap
fi
mkdir -p "$bindir" "$confdir"
install -m 0755 "$CARGO_TARGET_DIR/release/snap" "$bindir/snap"
snap=$bindir/snap

if [ -z "${SNAP_PASSWORD:-}" ] && [ -z "${SNAP_PASSWORD_FILE:-}" ]; then
  export SNAP_PASSWORD_FILE=$confdir/password
  if [ ! -s "$SNAP_PASSWORD_FILE" ]; then
    (umask 077; head -c 32 /dev/urandom | base64 > "$SNAP_PASSWORD_FILE")
    echo "created $SNAP_PASSWORD_FILE: keep a copy of it somewhere safe, off this machine"
  fi
fi

src=${1:-}
if [ -z "$src" ]; then
  if [ -d /var/www ]; then src=/var/www; else src=$here/src; fi
fi

status=0
"$snap" snapshots --quiet >/dev/null 2>&1 || status=$?
case $status in
  0) ;;
  10) "$snap" init ;;
  *) "$snap" snapshots; exit 1 ;;
esac

"$snap" push "$src" --level 1
"$snap" snapshots
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$snap" restore latest --target "$out"
diff -r --no-dereference "$src" "$out" && echo "restored copy of $src is identical"
"$snap" check
if [ "$(id -u)" -eq 0 ]; then default_repo=/var/lib/snap/repo; else default_repo=${XDG_DATA_HOME:-$HOME/.local/share}/snap/repo; fi
echo "snap is set up: repository ${SNAP_REPO:-$default_repo}, password file ${SNAP_PASSWORD_FILE:-(from SNAP_PASSWORD)}, binary $snap"
