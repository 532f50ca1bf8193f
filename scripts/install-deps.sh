#!/usr/bin/env bash
# Installs the system packages snap's build, tests and benchmarks need, if missing.
# Safe to run again and again: it only calls apt-get when something is absent.
set -euo pipefail

need=(libclang-dev clang pkg-config restic util-linux time)
missing=()
for p in "${need[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is not installed: install a Rust toolchain (1.85 or newer), e.g. with rustup, then run this again" >&2
  exit 1
fi
