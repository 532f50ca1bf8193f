#!/usr/bin/env bash
# snap run: what a night of the plan costs from one configuration, against
# the same work done by hand as a cron wrapper would (one snap process per
# push, then prune and report), whole processes.
#
# Data: three sites of benches/gen_site.py (SCALE, default 0.2: about 2,500
# files and 80 MiB each) and a SQL dump per site (gen_site.py dump, saved by
# `cat`, so no database server is needed).
#
# Figures (medians over REPS, default 5):
#   floor        snap snapshots: process start, key derivation, opening
#   first run    snap run with everything due (2 level-1 pushes, 6 level-2
#                pushes, prune, report), once
#   nothing due  snap run the same day again (only prune and report)
#   next day     snap run the next day (the level-1 files and dump, prune,
#                report), each rep one day later, sites touched between
#   by hand      the same next-day work as four commands: push files, push
#                the dump, prune --policy all, report --problems-only
# Environment: SCALE, REPS, WORK (default /var/tmp/snap-run-bench.PID),
# SNAP (default the release binary in CARGO_TARGET_DIR or target/).
# Writes Markdown to stdout; progress to stderr.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SCALE=${SCALE:-0.2}
REPS=${REPS:-5}
WORK=${WORK:-/var/tmp/snap-run-bench.$$}
SNAP=${SNAP:-${CARGO_TARGET_DIR:-$HERE/../target}/release/snap}
[ -x "$SNAP" ] || { echo "no snap binary at $SNAP: cargo build --release first, or set SNAP" >&2; exit 1; }
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
unset SNAP_REPO SNAP_PASSWORD SNAP_PASSWORD_FILE SNAP_CACHE_DIR
export SNAP_REMOTES_FILE=/dev/null SNAP_POLICY_FILE=/dev/null
export SNAP_KDF_MEMORY_KIB=65536 SNAP_KDF_ITERATIONS=3

sites=(alpha beta gamma)
echo "generating ${#sites[@]} sites at scale $SCALE in $WORK" >&2
for s in "${sites[@]}"; do
  python3 "$HERE/gen_site.py" --tree "$WORK/www/$s" --scale "$SCALE" --seed "${#s}$s" day1 >/dev/null
  mkdir -p "$WORK/dumps"
  python3 "$HERE/gen_site.py" --scale "$SCALE" --seed "${#s}$s" --day 1 dump "$WORK/dumps/$s.sql" >/dev/null
done
cat "$WORK"/dumps/*.sql > "$WORK/dumps/all.sql"
head -c 24 /dev/urandom | base64 > "$WORK/password"
cfg=$WORK/snap.toml
{
  echo "repository = \"$WORK/repo\""
  echo "password_file = \"$WORK/password\""
  echo "cache_dir = \"$WORK/cache\""
  echo "timezone = \"Europe/Paris\""
  echo "[level1]"
  echo "dump = \"cat $WORK/dumps/all.sql\""
  echo "[defaults]"
  echo "dump = \"cat $WORK/dumps/{database}.sql\""
  for s in "${sites[@]}"; do
    echo "[sites.$s]"
    echo "paths = [\"$WORK/www/$s\"]"
    echo "databases = [\"$s\"]"
  done
} > "$cfg"
snap() { "$SNAP" --config "$cfg" "$@"; }
snap init >/dev/null 2>&1

secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
touch_sites() { for s in "${sites[@]}"; do echo "// $1" >> "$WORK/www/$s/index.php"; done; }

day() { date -d "2026-12-01 + $1 days" +%Y-%m-%d; }
first=$(secs snap run --now "$(day 0)T03:00:00+01:00")
floor=(); none=(); next=(); hand=()
for i in $(seq 1 "$REPS"); do
  echo "rep $i/$REPS" >&2
  floor+=("$(secs snap snapshots)")
  none+=("$(secs snap run --now "$(day 0)T04:00:00+01:00")")
  touch_sites "run $i"
  next+=("$(secs snap run --now "$(day $((2 * i - 1)))T03:00:00+01:00")")
  touch_sites "hand $i"
  t=$(day $((2 * i)))T03:00:00+01:00
  paths=(); for s in "${sites[@]}"; do paths+=("$WORK/www/$s"); done
  hand+=("$(secs bash -c "
    '$SNAP' --config '$cfg' push -q --level 1 --time '$t' ${paths[*]} &&
    '$SNAP' --config '$cfg' push -q --level 1 --time '$t' --name all-databases.sql --from-shell 'cat $WORK/dumps/all.sql' &&
    '$SNAP' --config '$cfg' prune -q --policy all --now '$t' &&
    '$SNAP' --config '$cfg' report --problems-only --now '$t'")")
done
m() { printf '%.2f' "$(printf '%s\n' "$@" | median)"; }
files=$(find "$WORK/www" -type f | wc -l)
size=$(du -sm "$WORK/www" | cut -f1)
cat <<MD
## snap run (benches/run.sh, SCALE=$SCALE, REPS=$REPS)

Three sites, $files files, $size MiB, a dump per site and a global one; KDF pinned at 64 MiB x 3.
Medians over $REPS; each figure is one whole \`snap run\` or command sequence.

| what | seconds |
|---|---|
| floor: \`snap snapshots\` | $(m "${floor[@]}") |
| first run, everything due (2 level-1 + 6 level-2 pushes, prune, report) | $(printf '%.2f' "$first") |
| run again the same day, nothing due (prune, report) | $(m "${none[@]}") |
| next day: level-1 files and dump, prune, report | $(m "${next[@]}") |
| the same next-day work by hand (4 commands) | $(m "${hand[@]}") |
MD
