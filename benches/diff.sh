#!/usr/bin/env bash
# snap diff, log and find on many snapshots of a large tree, whole processes.
#
# Data: a tree of FILES small files (default 20,000) in about FILES/8
# directories three levels deep, pushed SNAPS times (default 100) with one
# file changed before each push after the first (a different one each time),
# the shape of a site backed up nightly.
#
# Figures (medians over REPS, default 5), each against `snap snapshots`, the
# floor every command pays (process start, key derivation, opening the
# repository), run in the same loop:
#   diff-one    snap diff of two consecutive snapshots (one file differs)
#   diff-far    snap diff of the first and the last (SNAPS-1 files differ)
#   log         snap log of one file across all snapshots
#   find-name   snap find '*.php' (matches in every directory, every snapshot)
#   find-path   snap find 'd5/e0/**/f5.php' (one path, every snapshot)
#   ls          snap ls of one snapshot: a walk of every tree, for scale
# Environment: FILES, SNAPS, REPS, WORK (default /var/tmp/snap-diff-bench.PID),
# SNAP (default the release binary in CARGO_TARGET_DIR or target/).
# Writes Markdown to stdout; progress to stderr.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
FILES=${FILES:-20000}
SNAPS=${SNAPS:-100}
REPS=${REPS:-5}
WORK=${WORK:-/var/tmp/snap-diff-bench.$$}
SNAP=${SNAP:-${CARGO_TARGET_DIR:-$HERE/../target}/release/snap}
[ -x "$SNAP" ] || { echo "no snap binary at $SNAP: cargo build --release first, or set SNAP" >&2; exit 1; }
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
export SNAP_REPO="$WORK/repo" SNAP_CACHE_DIR="$WORK/cache" SNAP_PASSWORD=bench SNAP_REMOTES_FILE=/dev/null SNAP_POLICY_FILE=/dev/null
export SNAP_KDF_MEMORY_KIB=65536 SNAP_KDF_ITERATIONS=3

echo "generating $FILES files in $WORK/site" >&2
python3 - "$WORK/site" "$FILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i % 10}", f"e{(i // 10) % 10}", f"g{(i // 100) % (n // 800 + 1)}")
    os.makedirs(d, exist_ok=True)
    ext = "php" if i % 3 else "css"
    with open(os.path.join(d, f"f{i % 10}.{ext}" if i < 1000 else f"f{i}.{ext}"), "w") as f:
        f.write(f"<?php // file {i}\n" + "x" * (i % 700))
PY
"$SNAP" -q init >/dev/null
echo "pushing $SNAPS snapshots" >&2
for ((s = 0; s < SNAPS; s++)); do
  if ((s > 0)); then
    f=$(find "$WORK/site" -type f -name '*.php' | sed -n "$((s * 37 % (FILES / 2) + 1))p")
    echo "// change $s" >>"$f"
  fi
  "$SNAP" -q push --site bench --time "$(date -u -d "2026-01-01 + $s hours" +%Y-%m-%dT%H:%M:%SZ)" "$WORK/site" >/dev/null
done
ids=$("$SNAP" --json snapshots | python3 -c 'import json,sys; print(" ".join(s["id"] for s in json.load(sys.stdin)))')
first=$(echo "$ids" | awk '{print $1}')
second=$(echo "$ids" | awk '{print $2}')
last=$(echo "$ids" | awk '{print $NF}')
logfile=$(cd "$WORK/site" && find . -type f -name '*.php' | sort | sed -n 5p | sed 's|^\./||')

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
  timed floor "$SNAP" snapshots
  timed diff-one "$SNAP" diff "$first" "$second"
  timed diff-far "$SNAP" diff "$first" "$last"
  timed log "$SNAP" log "$logfile"
  timed find-name "$SNAP" find '*.php' --max-paths 1
  timed find-path "$SNAP" find 'd5/e0/**/f5.php'
  timed ls "$SNAP" ls "$last"
done
# What the diffs found, so the figures are about real work.
one=$("$SNAP" --json diff "$first" "$second" | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"])')
far=$("$SNAP" --json diff "$first" "$last" | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"])')
python3 - "$WORK/times" "$FILES" "$SNAPS" "$REPS" "$one" "$far" <<'PY'
import statistics, sys
times, files, snaps, reps, one, far = sys.argv[1:7]
v = {}
for line in open(times):
    k, t = line.split()
    v.setdefault(k, []).append(float(t))
med = {k: statistics.median(x) for k, x in v.items()}
floor = med["floor"]
print(f"{files} files, {snaps} snapshots (one file changed between consecutive ones); {reps} repetitions, medians in seconds.\n")
print(f"diff of two consecutive snapshots: {one}; of the first and the last: {far}.\n")
print("| command | time | minus the floor |")
print("|---|---:|---:|")
label = {
    "floor": "`snap snapshots` (the floor: start, key derivation, open)",
    "diff-one": "`snap diff` of two consecutive snapshots",
    "diff-far": f"`snap diff` of the first and the last",
    "log": f"`snap log` of one file across {snaps} snapshots",
    "find-name": f"`snap find '*.php'` over {snaps} snapshots",
    "find-path": f"`snap find 'd5/e0/**/f5.php'` over {snaps} snapshots",
    "ls": "`snap ls` of one snapshot (every tree walked, for scale)",
}
for k in ["floor", "diff-one", "diff-far", "log", "find-name", "find-path", "ls"]:
    extra = "" if k == "floor" else f"{(med[k] - floor) * 1000:.0f} ms"
    print(f"| {label[k]} | {med[k]:.3f} | {extra} |")
PY
