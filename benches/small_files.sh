#!/usr/bin/env bash
# Many small files: push and restore of 100,000 empty files and of 20,000
# 1 KiB files, in one run, so restore can be compared with push on the same
# machine at the same moment. The target is "restore within 1.5x of push".
#
#   benches/small_files.sh            # REPS=3 by default
#
# Environment: REPS, WORK (default /var/tmp/snap-small.PID), SNAP (default:
# built with cargo into /var/tmp/snap-target), N_EMPTY (100000), N_SMALL
# (20000). Medians go to stdout and benches/results/small-files.md.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPS=${REPS:-3}
WORK=${WORK:-/var/tmp/snap-small.$$}
N_EMPTY=${N_EMPTY:-100000}
N_SMALL=${N_SMALL:-20000}
if [ -z "${SNAP:-}" ]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/snap-target}
  (cd "$HERE/.." && cargo build --release --bin snap >/dev/null)
  SNAP=$CARGO_TARGET_DIR/release/snap
fi
mkdir -p "$WORK"
export SNAP_PASSWORD=bench SNAP_KDF_MEMORY_KIB=65536 SNAP_KDF_ITERATIONS=1 SNAP_INSECURE_KDF=1

python3 - "$WORK" "$N_EMPTY" "$N_SMALL" <<'PY'
import os, sys
work, n_empty, n_small = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for name, n, size in (("empty", n_empty, 0), ("small", n_small, 1024)):
    root = os.path.join(work, "src-" + name)
    for i in range(n):
        d = os.path.join(root, "d%03d" % (i % 100))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "f%06d" % i), "wb") as f:
            f.write(os.urandom(size) if size else b"")
PY

# fresh_fs DIR: a new ext4 (with inodes enough) mounted at DIR when run as
# root with loop devices; else a plain directory. A long-used ext4 creates
# files slowly for a while after mass deletions (inode allocation skips
# recently deleted inodes): both are measured, the fresh one being the tool's
# own cost, and tar's extraction of the same tree is the file system's floor.
MOUNTS=()
trap 'for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
fresh_fs() {
  local dir=$1 img=$1.img
  mkdir -p "$dir"
  if [[ $(id -u) == 0 ]] && truncate -s 4G "$img" && mkfs.ext4 -q -F -N 400000 "$img" 2>/dev/null &&
      mount -o loop "$img" "$dir" 2>/dev/null; then
    MOUNTS+=("$dir")
  else
    rm -f "$img"
    echo "small_files.sh: no loop-mounted file system; 'fresh' is a plain directory" >&2
  fi
}

now() { date +%s.%N; }
for set in empty small; do (cd "$WORK/src-$set" && tar cf "$WORK/src-$set.tar" .); done
declare -A T
for rep in $(seq 1 "$REPS"); do
  for set in empty small; do
    repo=$WORK/repo-$set-$rep
    "$SNAP" --repo "$repo" --cache-dir "$repo.cache" init >/dev/null
    a=$(now); "$SNAP" --repo "$repo" --cache-dir "$repo.cache" push --quiet "$WORK/src-$set"; b=$(now)
    "$SNAP" --repo "$repo" --cache-dir "$repo.cache" snapshots --quiet >/dev/null; c=$(now)
    rm -rf "$WORK/out"
    d=$(now); "$SNAP" --repo "$repo" --cache-dir "$repo.cache" restore --quiet latest --target "$WORK/out"; e=$(now)
    if [ "$rep" = 1 ]; then diff -r "$WORK/src-$set" "$WORK/out" >/dev/null || { echo "restore of $set differs" >&2; exit 1; }; fi
    fresh_fs "$WORK/fresh-$set-$rep"
    f=$(now); "$SNAP" --repo "$repo" --cache-dir "$repo.cache" restore --quiet latest --target "$WORK/fresh-$set-$rep/out"; g=$(now)
    # The file system's own floor: tar extracting the same tree onto a fresh
    # ext4 (one thread creating files and setting their metadata).
    fresh_fs "$WORK/tar-$set-$rep"
    mkdir -p "$WORK/tar-$set-$rep/out"
    h=$(now); tar xf "$WORK/src-$set.tar" -C "$WORK/tar-$set-$rep/out"; k=$(now)
    T[$set,tar,$rep]=$(awk "BEGIN{print $k - $h}")
    T[$set,push,$rep]=$(awk "BEGIN{print $b - $a}")
    T[$set,open,$rep]=$(awk "BEGIN{print $c - $b}")
    T[$set,restore,$rep]=$(awk "BEGIN{print $e - $d}")
    T[$set,fresh,$rep]=$(awk "BEGIN{print $g - $f}")
    rm -rf "$WORK/out" "$repo"
  done
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
out=$HERE/results/small-files.md
{
  echo "# Many small files: push and restore ($(date -u +%Y-%m-%d), REPS=$REPS, $(nproc) cores)"
  echo
  echo "| set | files | push s | restore, fresh ext4 s | fresh / push | tar x, fresh ext4 s | restore / tar | restore, long-used fs s | long-used / push | open (snapshots) s |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for set in empty small; do
    p=(); r=(); o=(); fr=(); tr=()
    for rep in $(seq 1 "$REPS"); do p+=("${T[$set,push,$rep]}"); r+=("${T[$set,restore,$rep]}"); o+=("${T[$set,open,$rep]}"); fr+=("${T[$set,fresh,$rep]}"); tr+=("${T[$set,tar,$rep]}"); done
    mp=$(median "${p[@]}"); mr=$(median "${r[@]}"); mo=$(median "${o[@]}"); mf=$(median "${fr[@]}"); mt=$(median "${tr[@]}")
    n=$N_EMPTY; [ $set = small ] && n=$N_SMALL
    echo "| $set | $n | $mp | $mf | $(awk "BEGIN{printf \"%.2f\", $mf / $mp}") | $mt | $(awk "BEGIN{printf \"%.2f\", $mf / $mt}") | $mr | $(awk "BEGIN{printf \"%.2f\", $mr / $mp}") | $mo |"
  done
} | tee "$out"
