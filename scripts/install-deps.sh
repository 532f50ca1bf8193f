#!/usr/bin/env bash
# Installs the system packages snap's build, tests and benchmarks need, if missing.
# Safe to run again and again: it only calls apt-get when something is absent.
set -euo pipefail

# mariadb-server and mariadb-client: tests/plan_run.rs starts its own
# mariadbd on a private socket (the package's own service is not needed).
need=(libclang-dev clang pkg-config restic util-linux time mariadb-server mariadb-client)
missing=()
for p in "${need[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# snap mount (and tests/mount.rs): root mounts through /dev/fuse directly;
# other users need fusermount3 (fuse3) or fusermount (fuse 2, which fuse3
# replaces), so fuse3 is installed only when neither is there.
if ! command -v fusermount3 >/dev/null 2>&1 && ! command -v fusermount >/dev/null 2>&1; then
  missing+=(fuse3)
fi
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The fuse kernel module makes /dev/fuse; where it cannot be loaded (a
# container without the device) the mount tests say they are skipped.
[ -e /dev/fuse ] || { [ "$(id -u)" -eq 0 ] && modprobe fuse 2>/dev/null; } || true

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is not installed: install a Rust toolchain (1.85 or newer), e.g. with rustup, then run this again" >&2
  exit 1
fi

# s3s-fs, the S3 server that tests/s3.rs runs the S3 backend against. Pinned:
# 0.14.1 builds on rustc 1.95 (later versions need a newer compiler). It goes
# where `cargo install` puts programs by default, $CARGO_HOME/bin, where the
# tests look for it; SNAP_S3S_FS names another binary instead.
s3s_fs_version=0.14.1
s3s_fs_root="${CARGO_HOME:-$HOME/.cargo}"
s3s_fs="$s3s_fs_root/bin/s3s-fs"
if [ -n "${SNAP_S3S_FS:-}" ] && [ -x "$SNAP_S3S_FS" ]; then
  :
elif [ -x "$s3s_fs" ] && [ "$("$s3s_fs" --version 2>/dev/null)" = "s3s-fs $s3s_fs_version" ]; then
  :
else
  echo "installing s3s-fs $s3s_fs_version into $s3s_fs_root/bin (for the S3 tests; a few minutes)" >&2
  # Built in cargo's own temporary directory, not in the project's target.
  env -u CARGO_TARGET_DIR cargo install --quiet --locked --root "$s3s_fs_root" \
    --features binary "s3s-fs@$s3s_fs_version"
fi
