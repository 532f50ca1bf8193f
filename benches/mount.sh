#!/usr/bin/env bash
# snap mount against snap restore, whole processes, one run:
#
#   1. restore    `snap restore` of one site snapshot into an empty directory;
#   2. cp -r      the same snapshot copied out of a fresh mount
#                 (`cp -a MOUNT/latest/client-a/files DEST`), and, as the
#                 reference for cp's own cost (it creates files one at a
#                 time, copies xattrs and times), `cp -a` of the original
#                 directory on the local disk;
#   3. checksum   sha256sum of every file of the snapshot, read through a
#                 fresh mount (find | xargs sha256sum), and of the original
#                 directory, the reference for the checksum's own cost;
#   4. tail       `tail -c 1048576` of a 1 GiB dump through a fresh mount
#                 (the chunk list's group lengths let one read skip to the end).
#
# Each repetition mounts anew (a new process: its cache is empty, and the
# kernel drops the mount's pages at unmount); the restore target and the
# copy are removed between repetitions. The times are medians over REPS.
#
# Data: benches/gen_site.py's four sites, of which client-a is the site
# snapshot; a 1 GiB dump made of the generator's dump repeated, pushed as a
# global db snapshot (4 KiB chunks: about 260,000 chunks in ~60 groups).
#
# Environment: REPS (default 5), WORK (default /var/tmp/snap-mount-bench.PID),
# SNAP (default the release binary in CARGO_TARGET_DIR or target/), SCALE
# (gen_site.py size factor, default 1), DUMP_MB (default 1024).
# Writes Markdown to stdout; progress to stderr.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPS=${REPS:-5}
SCALE=${SCALE:-1}
DUMP_MB=${DUMP_MB:-1024}
WORK=${WORK:-/var/tmp/snap-mount-bench.$$}
SNAP=${SNAP:-${CARGO_TARGET_DIR:-$HERE/../target}/release/snap}
[ -x "$SNAP" ] || { echo "no snap binary at $SNAP: cargo build --release first, or set SNAP" >&2; exit 1; }
[ -e /dev/fuse ] || { echo "skipped: /dev/fuse is missing (modprobe fuse)" >&2; exit 1; }

mkdir -p "$WORK"
MP="$WORK/mnt"
cleanup() {
  mountpoint -q "$MP" 2>/dev/null && { fusermount -u -z "$MP" 2>/dev/null || umount -l "$MP"; }
  rm -rf "$WORK"
}
trap cleanup EXIT

export SNAP_REPO="$WORK/repo" SNAP_CACHE_DIR="$WORK/cache" SNAP_PASSWORD=bench SNAP_REMOTES_FILE=/dev/null
export SNAP_KDF_MEMORY_KIB=65536 SNAP_KDF_ITERATIONS=3

echo "generating data in $WORK" >&2
python3 "$HERE/gen_site.py" day1 --tree "$WORK/data/site" --dump "$WORK/data/day1.sql" --scale "$SCALE" >&2
python3 - "$WORK/data/day1.sql" "$WORK/data/big.sql" "$DUMP_MB" <<'EOF'
import sys
src, dst, mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(src, "rb").read()
want = mb << 20
with open(dst, "wb") as out:
    n = 0
    while n < want:
        part = data[: want - n]
        out.write(part)
        n += len(part)
EOF
"$SNAP" -q init >/dev/null
"$SNAP" -q push --site client-a "$WORK/data/site/client-a" >/dev/null
"$SNAP" -q push --kind db --stdin --name big.sql <"$WORK/data/big.sql" >/dev/null
SITE_BYTES=$(du -sb --apparent-size "$WORK/data/site/client-a" | cut -f1)
SITE_FILES=$(find "$WORK/data/site/client-a" -type f | wc -l)
mkdir -p "$MP"

now() { date +%s.%N; }
mount_fresh() {
  "$SNAP" -q mount "$MP" 2>>"$WORK/mount.log" &
  MOUNT_PID=$!
  for _ in $(seq 3000); do mountpoint -q "$MP" && return 0; sleep 0.01; done
  echo "not mounted: $(cat "$WORK/mount.log")" >&2
  exit 1
}
unmount() {
  fusermount -u "$MP" 2>/dev/null || umount "$MP"
  wait "$MOUNT_PID"
}

: >"$WORK/times"
for ((r = 1; r <= REPS; r++)); do
  echo "== repetition $r/$REPS" >&2
  rm -rf "$WORK/restored" "$WORK/copied"
  sync
  t0=$(now)
  "$SNAP" -q restore latest --site client-a --kind files --target "$WORK/restored"
  t1=$(now)
  echo "restore $(echo "$t1 - $t0" | bc)" >>"$WORK/times"

  mount_fresh
  t0=$(now)
  cp -a "$MP/latest/client-a/files" "$WORK/copied"
  t1=$(now)
  echo "cp $(echo "$t1 - $t0" | bc)" >>"$WORK/times"
  unmount
  rm -rf "$WORK/copied.disk"
  t0=$(now)
  cp -a "$WORK/data/site/client-a" "$WORK/copied.disk"
  t1=$(now)
  echo "cpdisk $(echo "$t1 - $t0" | bc)" >>"$WORK/times"

  mount_fresh
  t0=$(now)
  (cd "$MP/latest/client-a/files" && find . -type f -print0 | xargs -0 sha256sum >"$WORK/sums.mount")
  t1=$(now)
  echo "checksum $(echo "$t1 - $t0" | bc)" >>"$WORK/times"
  unmount
  t0=$(now)
  (cd "$WORK/data/site/client-a" && find . -type f -print0 | xargs -0 sha256sum >/dev/null)
  t1=$(now)
  echo "sumdisk $(echo "$t1 - $t0" | bc)" >>"$WORK/times"

  mount_fresh
  t0=$(now)
  tail -c 1048576 "$MP/latest/_global/db/big.sql" >"$WORK/tail.mount"
  t1=$(now)
  echo "tail $(echo "$t1 - $t0" | bc)" >>"$WORK/times"
  unmount
  cmp -s "$WORK/tail.mount" <(tail -c 1048576 "$WORK/data/big.sql") || { echo "tail through the mount differs" >&2; exit 1; }
  diff -r -q "$WORK/copied" "$WORK/data/site/client-a" >&2 || { echo "the copy differs" >&2; exit 1; }
done
(cd "$WORK/data/site/client-a" && find . -type f -print0 | xargs -0 sha256sum) | sort -k2 >"$WORK/sums.src"
sort -k2 "$WORK/sums.mount" | cmp -s - "$WORK/sums.src" || { echo "checksums through the mount differ" >&2; exit 1; }

python3 - "$WORK/times" "$SITE_BYTES" "$SITE_FILES" "$REPS" "$DUMP_MB" <<'EOF'
import statistics, sys
times, size, files, reps, dump_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
v = {}
for line in open(times):
    k, t = line.split()
    v.setdefault(k, []).append(float(t))
med = {k: statistics.median(x) for k, x in v.items()}
mib = size / 2**20
runs = lambda k: ", ".join(f"{t:.2f}" for t in v[k])
print(f"Site snapshot: client-a of benches/gen_site.py, {files} files, {mib:.0f} MiB; dump {dump_mb} MiB. {reps} repetitions, medians (all runs in brackets, seconds).\n")
print("| figure | time | throughput |")
print("|---|---:|---:|")
print(f"| `snap restore` of the snapshot | {med['restore']:.2f} s ({runs('restore')}) | {mib / med['restore']:.0f} MiB/s |")
print(f"| `cp -a` out of a fresh mount | {med['cp']:.2f} s ({runs('cp')}) | {mib / med['cp']:.0f} MiB/s |")
print(f"| `cp -a` of the original directory (local disk; cp's own cost) | {med['cpdisk']:.2f} s ({runs('cpdisk')}) | {mib / med['cpdisk']:.0f} MiB/s |")
print(f"| `sha256sum` of every file through a fresh mount | {med['checksum']:.2f} s ({runs('checksum')}) | {mib / med['checksum']:.0f} MiB/s |")
print(f"| `sha256sum` of every file of the original directory (local disk; the checksum's own cost) | {med['sumdisk']:.2f} s ({runs('sumdisk')}) | {mib / med['sumdisk']:.0f} MiB/s |")
print(f"| `tail -c 1048576` of the {dump_mb} MiB dump, fresh mount | {med['tail'] * 1000:.0f} ms ({', '.join(f'{t*1000:.0f}' for t in v['tail'])} ms) | |")
r = med['restore'] / med['cp']
c = med['restore'] / med['checksum']
d = med['cpdisk'] / med['cp']
print(f"\n**mount (cp -a) / restore throughput: {r:.2f}**; mount (checksum) / restore: {c:.2f} (target >= 0.5: {'met' if min(r, c) >= 0.5 else 'NOT met'}); cp -a from the mount / cp -a from the disk: {d:.2f}")
EOF
