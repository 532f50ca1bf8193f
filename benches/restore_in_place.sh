#!/usr/bin/env bash
# Restoring a site in place when 1 % of its files differ, whole processes:
#
#   if-changed  snap restore --overwrite if-changed --delete (only what differs
#               is written; the planted extras are removed)
#   always      snap restore --overwrite always (every file written again)
#   rustic      rustic restore --delete of the same (restic-format) repository
#               over the same damage: rustic, restic's reimplementation in
#               Rust, only rewrites files whose size or mtime differ, as restic
#               0.17's --overwrite if-changed does (install it with
#               `cargo install --locked --root /var/tmp/rustic-root rustic-rs`;
#               skipped, and said, when it is missing)
#   restic      restic restore of the same tree over the same damage (restic
#               0.14, Debian's: it has neither --overwrite nor --delete, so it
#               writes every file again and leaves the extras; newer restic
#               versions are not installable here)
#
# Before every run the live tree is the snapshot with the same damage: 1 % of
# the files rewritten and as many extra files planted. Each run is checked:
# after snap's runs the tree is the snapshot exactly (diff -r, no extras).
# Data: benches/gen_site.py (one WordPress-like tree of ~12,000 files).
# Environment: REPS (default 5), WORK (default /var/tmp/snap-inplace.PID),
# SNAP, RESTIC (default /usr/bin/restic). Markdown on stdout.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPS=${REPS:-5}
WORK=${WORK:-/var/tmp/snap-inplace.$$}
SNAP=${SNAP:-${CARGO_TARGET_DIR:-$HERE/../target}/release/snap}
RESTIC=${RESTIC:-/usr/bin/restic}
RUSTIC=${RUSTIC:-/var/tmp/rustic-root/bin/rustic}
if [ ! -x "$RUSTIC" ]; then
  echo "skipped: rustic (no binary at $RUSTIC; see the header to install it)" >&2
  RUSTIC=""
fi
[ -x "$SNAP" ] || { echo "no snap binary at $SNAP: cargo build --release first, or set SNAP" >&2; exit 1; }
[ -x "$RESTIC" ] || { echo "no restic at $RESTIC: scripts/install-deps.sh installs it" >&2; exit 1; }
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
export SNAP_REPO="$WORK/snap-repo" SNAP_CACHE_DIR="$WORK/cache" SNAP_PASSWORD=bench SNAP_REMOTES_FILE=/dev/null SNAP_POLICY_FILE=/dev/null
export RESTIC_REPOSITORY="$WORK/restic-repo" RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$WORK/restic-cache"

echo "generating data in $WORK" >&2
python3 "$HERE/gen_site.py" day1 --tree "$WORK/data" --dump "$WORK/day1.sql" >/dev/null
SITE="$WORK/data"
"$SNAP" -q init >/dev/null
"$SNAP" -q push --site bench "$SITE" >/dev/null
"$RESTIC" -q init >/dev/null
"$RESTIC" -q backup "$SITE" >/dev/null
FILES=$(find "$SITE" -type f | wc -l)

# The damage: every 100th file rewritten, one extra file planted beside it.
damage() {
  local dir=$1
  find "$dir" -type f | sort | awk 'NR % 100 == 0' | while read -r f; do
    echo "<?php // planted" >"$f"
    echo "<?php eval(\$_POST[1]);" >"$f.bak.php"
  done
}
fresh_live() {
  rm -rf "$WORK/live"
  cp -a "$SITE" "$WORK/live"
  damage "$WORK/live"
}

now() { date +%s.%N; }
: >"$WORK/times"
timed() {
  local name=$1
  shift
  local t0 t1
  t0=$(now)
  "$@" >/dev/null
  t1=$(now)
  echo "$name $(echo "$t1 - $t0" | bc)" >>"$WORK/times"
}
for ((r = 1; r <= REPS; r++)); do
  echo "== repetition $r/$REPS" >&2
  fresh_live; sync
  timed if-changed "$SNAP" -q restore latest --target "$WORK/live" --overwrite if-changed --delete
  diff -r -q "$SITE" "$WORK/live" >&2 || { echo "if-changed left a difference" >&2; exit 1; }
  fresh_live; sync
  timed always "$SNAP" -q restore latest --target "$WORK/live" --overwrite always
  if [ -n "$RUSTIC" ]; then
    fresh_live; sync
    timed rustic "$RUSTIC" -r "$RESTIC_REPOSITORY" --password bench --no-progress restore --delete "latest:$SITE" "$WORK/live"
    diff -r -q "$SITE" "$WORK/live" >&2 || { echo "rustic left a difference" >&2; exit 1; }
  fi
  fresh_live; sync
  # restic restores the backed-up absolute path under the target.
  timed restic "$RESTIC" -q restore latest --target "$WORK/restic-out"
  rm -rf "$WORK/restic-out"
  mkdir -p "$WORK/restic-out$(dirname "$SITE")"
  mv "$WORK/live" "$WORK/restic-out$SITE"
  timed restic-in-place "$RESTIC" -q restore latest --target "$WORK/restic-out"
  rm -rf "$WORK/restic-out"
done

python3 - "$WORK/times" "$FILES" "$REPS" <<'PY'
import statistics, sys
times, files, reps = sys.argv[1], int(sys.argv[2]), sys.argv[3]
v = {}
for line in open(times):
    k, t = line.split()
    v.setdefault(k, []).append(float(t))
med = {k: statistics.median(x) for k, x in v.items()}
runs = lambda k: ", ".join(f"{t:.2f}" for t in v[k])
print(f"{files} files; 1 % of them rewritten and as many extras planted before each run; {reps} repetitions, medians in seconds (all runs in brackets).\n")
print("| restore over the damaged tree | time | against snap if-changed |")
print("|---|---:|---:|")
rows = [
    ("if-changed", "`snap restore --overwrite if-changed --delete`"),
    ("always", "`snap restore --overwrite always`"),
    ("rustic", "`rustic restore --delete` (rustic 0.11.4: rewrites what differs by size or mtime, removes the extras)"),
    ("restic-in-place", "`restic restore` over the damaged tree (0.14: rewrites every file, keeps the extras)"),
    ("restic", "`restic restore` into an empty directory (reference)"),
]
for k, label in rows:
    if k not in med:
        continue
    print(f"| {label} | {med[k]:.2f} ({runs(k)}) | {med[k] / med['if-changed']:.1f}× |")
PY
