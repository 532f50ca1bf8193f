#!/usr/bin/env bash
# snap against restic on the same generated data, in one run.
#
# Data (benches/gen_site.py, seeded): a ~12,000-file WordPress-like tree of
# four client sites plus ~200 media files, its "day 2" change, and two
# consecutive ~150 MB mysqldump-like dumps.
#
# For each repetition (fresh repositories, fresh copy of the tree), both tools,
# encryption on for both, run the same steps in turn (the tool that goes first
# alternates between repetitions):
#   push1   first push of the day-1 tree
#   push2   unchanged second push
#   push3   push after the day-2 changes
#   list    listing the snapshots: the floor every command pays (key
#           derivation, opening the repository)
#   restore restore of the latest tree snapshot (verified byte for byte in rep 1)
#   dump1   day-1 dump through stdin
#   dump2   day-2 dump through stdin (what it adds is the figure that matters)
# Wall time is taken around the command alone (benches/rss_split.py: the
# Python interpreter's own start, 0.1 s or more here, is not counted); peak
# RSS comes from /usr/bin/time, and a 20 ms sampler splits it into anonymous
# and file-backed pages (mapped pack files count in RSS but are page cache); byte figures from snap's
# `--json` summary and restic's `--json` summary line, and repository growth
# from du. Medians over the repetitions, snap/restic ratios (of the medians,
# and the median of per-repetition ratios, steadier when other work shares
# the machine) and the targets go to stdout and to benches/results/latest.md.
#
# The page cache cannot be dropped here: every run is warm-cache, for both
# tools. Both tools keep their default key derivation (snap: Argon2id 64 MiB;
# restic: scrypt calibrated at init), which every command pays.
#
# Environment: REPS (default 3), WORK (default /var/tmp/snap-compare.PID),
# SNAP (default: built with cargo into /var/tmp/snap-target), RESTIC
# (default /usr/bin/restic), KEEP=1 to leave WORK in place, SCALE (data
# size factor for gen_site.py, default 1).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPS=${REPS:-3}
WORK=${WORK:-/var/tmp/snap-compare.$$}
RESTIC=${RESTIC:-/usr/bin/restic}
SCALE=${SCALE:-1}
OUT_MD=$HERE/results/latest.md
START=$(date +%s)

if [[ -z "${SNAP:-}" ]]; then
    (cd "$HERE/.." && CARGO_TARGET_DIR=/var/tmp/snap-target cargo build --release --quiet)
    SNAP=/var/tmp/snap-target/release/snap
fi
for t in "$SNAP" "$RESTIC" /usr/bin/time python3; do
    command -v "$t" >/dev/null || { echo "compare.sh: $t not found" >&2; exit 1; }
done

mkdir -p "$WORK"
free_gb=$(df -P --block-size=1G "$WORK" | awk 'NR==2 {print $4}')
need_gb=$((3 * REPS + 3))
if ((free_gb < need_gb)); then
    echo "compare.sh: $WORK has ${free_gb} GB free; $need_gb GB are needed" >&2
    exit 1
fi
MOUNTS=()
cleanup() {
    local m
    for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || true; done
    if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$WORK"; fi
}

# fresh_fs DIR: mounts a new, empty ext4 file system at DIR when this runs as
# root with loop devices, so that each tool restores onto the same clean
# file system. On a long-used one, ext4 creates files slowly for a while after
# many deletions (inode allocation skips recently deleted inodes), and that,
# not the tool, would decide the restore times. Otherwise DIR stays a plain
# directory (and the restore figures are noisier).
fresh_fs() {
    local dir=$1 img=$1.img
    mkdir -p "$dir"
    if [[ $(id -u) == 0 ]] && truncate -s 4G "$img" && mkfs.ext4 -q -F "$img" 2>/dev/null &&
        mount -o loop "$img" "$dir" 2>/dev/null; then
        MOUNTS+=("$dir")
    else
        rm -f "$img"
        echo "compare.sh: restoring into a plain directory (no loop-mounted file system)" >&2
    fi
}
trap cleanup EXIT

export SNAP_PASSWORD=bench-password RESTIC_PASSWORD=bench-password
unset SNAP_PASSWORD_FILE RESTIC_PASSWORD_FILE SNAP_KDF_MEMORY_KIB SNAP_KDF_ITERATIONS SNAP_REPO RESTIC_REPOSITORY
# KDF_ITERATIONS=N: snap's new key at 64 MiB and N passes instead of the
# calibrated ~0.5 s (N=2 is the cost before format version 4), to tell the
# key derivation's share of each figure from the rest.
if [[ -n "${KDF_ITERATIONS:-}" ]]; then
    export SNAP_KDF_MEMORY_KIB=65536 SNAP_KDF_ITERATIONS=$KDF_ITERATIONS SNAP_INSECURE_KDF=1
fi
FIG=$WORK/figures.tsv # rep tool key value
: >"$FIG"

fig() { printf '%s\t%s\t%s\t%s\n' "$REP" "$1" "$2" "$3" >>"$FIG"; }

# timed TOOL STEP OUTFILE CMD...: runs CMD (stdin passes through), stdout to
# OUTFILE; records wall seconds, peak RSS (KiB, from /usr/bin/time) and the
# sampled peaks of anonymous and file-backed RSS (benches/rss_split.py).
timed() {
    local tool=$1 step=$2 out=$3
    shift 3
    python3 "$HERE/rss_split.py" "$WORK/rss_split" /usr/bin/time -f '%M' -o "$WORK/rss" "$@" >"$out"
    fig "$tool" "wall.$step" "$(cut -d' ' -f3 "$WORK/rss_split")"
    fig "$tool" "rss.$step" "$(tail -n 1 "$WORK/rss")"
    fig "$tool" "anon.$step" "$(cut -d' ' -f1 "$WORK/rss_split")"
    fig "$tool" "file.$step" "$(cut -d' ' -f2 "$WORK/rss_split")"
}

json_get() { python3 "$HERE/json_get.py" "$1" "$2"; } # FILE KEY.PATH: one value of a JSON document

dusize() { du -sb "$@" | awk '{s += $1} END {print s}'; }

echo "== generating data in $WORK/data (seeded)" >&2
t0=$(date +%s)
python3 "$HERE/gen_site.py" day1 --tree "$WORK/data/site" --dump "$WORK/data/day1.sql" --scale "$SCALE"
python3 "$HERE/gen_site.py" dump --day 2 "$WORK/data/day2.sql" --scale "$SCALE"
GEN_S=$(($(date +%s) - t0))
TREE_BYTES=$(find "$WORK/data/site" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
TREE_FILES=$(find "$WORK/data/site" -type f | wc -l)
# text files are at most 30 KB, media files at least 50 KB
MEDIA_FILES=$(find "$WORK/data/site" -type f -size +40k | wc -l)
MEDIA_BYTES=$(find "$WORK/data/site" -type f -size +40k -printf '%s\n' | awk '{s += $1} END {print s}')
DUMP2_BYTES=$(stat -c %s "$WORK/data/day2.sql")
DUMP1_BYTES=$(stat -c %s "$WORK/data/day1.sql")

# step TOOL NAME: one step of one tool.
step() {
    local tool=$1 name=$2 o="$RUN/$1.$2.json"
    case "$tool:$name" in
    snap:init) timed snap init "$o" "${SNAPC[@]}" init --json ;;
    restic:init) timed restic init "$o" "${RESTICC[@]}" init ;;
    snap:push*) timed snap "$name" "$o" "${SNAPC[@]}" push "$SITE" --json ;;
    restic:push*) timed restic "$name" "$o" "${RESTICC[@]}" backup "$SITE" --json ;;
    snap:list) timed snap list "$o" "${SNAPC[@]}" snapshots --json ;;
    restic:list) timed restic list "$o" "${RESTICC[@]}" snapshots --json ;;
    snap:restore) timed snap restore "$o" "${SNAPC[@]}" restore latest --target "$RUN/fs-snap/out" --json ;;
    restic:restore) timed restic restore "$o" "${RESTICC[@]}" restore latest --target "$RUN/fs-restic/out" ;;
    snap:dump*)
        timed snap "$name" "$o" "${SNAPC[@]}" push --stdin --name agency_sites.sql --kind db --json \
            <"$WORK/data/day${name#dump}.sql"
        ;;
    restic:dump*)
        timed restic "$name" "$o" "${RESTICC[@]}" backup --stdin --stdin-filename agency_sites.sql --json \
            <"$WORK/data/day${name#dump}.sql"
        ;;
    esac
    case "$tool:$name" in
    snap:push* | snap:dump*)
        fig snap "added.$name" "$(json_get "$o" summary.bytes_added)"
        fig snap "stored.$name" "$(json_get "$o" summary.bytes_stored)"
        fig snap "inproc.$name" "$(awk -v ms="$(json_get "$o" summary.duration_ms)" 'BEGIN {printf "%.3f", ms / 1000}')"
        ;;
    restic:push* | restic:dump*)
        fig restic "added.$name" "$(json_get "$o" data_added)"
        fig restic "inproc.$name" "$(json_get "$o" total_duration)"
        ;;
    esac
    local repo=$RUN/$tool-repo
    fig "$tool" "repo.$name" "$(dusize "$repo")"
    sync # writeback of this step must not land in the next tool's timing
}

both() { # both STEP: run STEP for both tools, in this repetition's order
    local t
    for t in "${ORDER[@]}"; do step "$t" "$1"; done
}

for ((REP = 1; REP <= REPS; REP++)); do
    # Nothing is deleted until the end: for a while after many files were
    # deleted, ext4 makes creating files slow (inode allocation skips recently
    # deleted inodes), which would land on the next restore.
    RUN=$WORK/run$REP
    SITE=$RUN/site
    SNAPC=("$SNAP" --repo "$RUN/snap-repo" --cache-dir "$RUN/snap-cache")
    RESTICC=("$RESTIC" -r "$RUN/restic-repo" --cache-dir "$RUN/restic-cache")
    mkdir -p "$RUN"
    cp -a "$WORK/data/site" "$SITE"
    sync
    if ((REP % 2)); then ORDER=(snap restic); else ORDER=(restic snap); fi
    echo "== repetition $REP/$REPS (${ORDER[*]})" >&2
    both init
    both push1
    both push2
    python3 "$HERE/gen_site.py" day2 --tree "$SITE" 2>/dev/null
    sync
    both push3
    both list
    fresh_fs "$RUN/fs-snap"
    fresh_fs "$RUN/fs-restic"
    sync
    both restore
    if ((REP == 1)); then
        diff -r "$SITE" "$RUN/fs-snap/out" >/dev/null || { echo "compare.sh: snap's restore differs from the tree" >&2; exit 1; }
        diff -r "$SITE" "$RUN/fs-restic/out$SITE" >/dev/null || { echo "compare.sh: restic's restore differs from the tree" >&2; exit 1; }
    fi
    fig snap index.tree "$(dusize "$RUN/snap-cache")"
    fig restic cache.tree "$(dusize "$RUN/restic-cache")"
    both dump1
    both dump2
done

RUN_S=$(($(date +%s) - START))
mkdir -p "$HERE/results"
python3 - "$FIG" "$OUT_MD" <<EOF
import collections, statistics, sys
fig, out_md = sys.argv[1], sys.argv[2]
v = collections.defaultdict(list)  # (tool, key) -> values over reps
for line in open(fig):
    rep, tool, key, val = line.rstrip("\n").split("\t")
    v[(tool, key)].append(float(val))
med = lambda t, k: statistics.median(v[(t, k)])
MB = 1e6
tree_bytes, files = $TREE_BYTES, $TREE_FILES
dump1, dump2 = $DUMP1_BYTES, $DUMP2_BYTES
L = []
p = L.append
p("# snap vs restic: generated agency data")
p("")
p("Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, load average at start $(cut -d' ' -f1-3 /proc/loadavg). "
  "snap $(cd "$HERE/.." && git rev-parse --short HEAD)$(cd "$HERE/.." && git diff --quiet HEAD -- src || echo ' (+ uncommitted changes)'), "
  "$("$RESTIC" version | cut -d' ' -f1-2). $REPS repetitions, fresh repositories each time; "
  "warm page cache for both tools (it cannot be dropped here). Encryption on for both; "
  "$(if [[ -n "${KDF_ITERATIONS:-}" ]]; then echo "snap's key derivation pinned at 64 MiB and $KDF_ITERATIONS passes (KDF_ITERATIONS), restic's at its default, each paid by every command."; else echo "both with their default key-derivation cost (snap: calibrated to about 0.5 s), paid by every command."; fi)")
p("")
p(f"Data: tree of {files} files, {tree_bytes / MB:.1f} MB ({files - $MEDIA_FILES} text files, {(tree_bytes - $MEDIA_BYTES) / MB:.1f} MB; "
  f"$MEDIA_FILES incompressible media files, {$MEDIA_BYTES / MB:.1f} MB); "
  f"dumps {dump1 / MB:.1f} MB (day 1) and {dump2 / MB:.1f} MB (day 2, 0.15% of rows updated, a few appended).")
p("")
p("## Medians")
p("")
p("Times: lower is better; the ratio column is snap/restic (below 1: snap faster or smaller), "
  "except for throughput (above 1: snap faster).")
p("")
p("| step | snap | restic | snap/restic (of medians) | snap/restic (median of per-repetition ratios) |")
p("|---|---:|---:|---:|---:|")
# Paired ratio: snap/restic within each repetition (both ran back to back,
# under the same load), then the median; steadier than a ratio of medians
# when other work shares the machine.
paired = lambda key: statistics.median([a / b for a, b in zip(v[("snap", key)], v[("restic", key)])])
def row(name, key, fmt=lambda x: f"{x:.2f} s"):
    s, r = med("snap", key), med("restic", key)
    p(f"| {name} | {fmt(s)} | {fmt(r)} | {s / r:.2f} | {paired(key):.2f} |")
row("first push (wall)", "wall.push1")
s1, r1 = tree_bytes / med("snap", "wall.push1") / MB, tree_bytes / med("restic", "wall.push1") / MB
p(f"| first push throughput | {s1:.0f} MB/s | {r1:.0f} MB/s | {s1 / r1:.2f} | {1 / paired('wall.push1'):.2f} |")
row("unchanged second push (wall)", "wall.push2")
row("unchanged second push (in-process time)", "inproc.push2")
row("push after day-2 changes (wall)", "wall.push3")
row("list snapshots: per-command floor (key derivation, open)", "wall.list")
row("restore latest tree (wall)", "wall.restore")
row("day-1 dump push (wall)", "wall.dump1")
row("day-2 dump push (wall)", "wall.dump2")
mbf = lambda x: f"{x / MB:.2f} MB"
row("day-2 dump: plaintext bytes added (snap bytes_added, restic data_added)", "added.dump2", mbf)
p(f"| day-2 dump: snap bytes_stored (compressed, sealed) | {mbf(med('snap', 'stored.dump2'))} | | | |")
g = lambda t: statistics.median([b - a for a, b in zip(v[(t, "repo.dump1")], v[(t, "repo.dump2")])])
p(f"| day-2 dump: repository growth (du) | {mbf(g('snap'))} | {mbf(g('restic'))} | {g('snap') / g('restic'):.2f} | |")
row("day-2 tree push: plaintext bytes added", "added.push3", mbf)
row("repository after the 3 tree pushes (du)", "repo.push3", mbf)
row("repository at the end, with both dumps (du)", "repo.dump2", mbf)
p(f"| local index / cache after the tree pushes | {mbf(med('snap', 'index.tree'))} (cache dir: index) | {mbf(med('restic', 'cache.tree'))} (cache dir) | | |")
steps = ["init", "push1", "push2", "push3", "list", "restore", "dump1", "dump2"]
rss = lambda t: max(max(v[(t, "rss." + s)]) for s in steps)
p(f"| peak RSS over all commands (max over repetitions) | {rss('snap') / 1024:.0f} MiB | {rss('restic') / 1024:.0f} MiB | {rss('snap') / rss('restic'):.2f} | |")
ra = lambda t: max(max(v[(t, "anon." + s)]) for s in steps)
rf = lambda t: max(max(v[(t, "file." + s)]) for s in steps)
p(f"| peak anonymous RSS (sampled every 20 ms) | {ra('snap') / 1024:.0f} MiB | {ra('restic') / 1024:.0f} MiB | {ra('snap') / ra('restic'):.2f} | |")
p(f"| peak file-backed RSS (mapped files: page cache) | {rf('snap') / 1024:.0f} MiB | {rf('restic') / 1024:.0f} MiB | | |")
p("")
p("Peak RSS per step, MiB, max over repetitions (in brackets: sampled anonymous / file-backed): " + "; ".join(
    f"{s}: snap {max(v[('snap', 'rss.' + s)]) / 1024:.0f} ({max(v[('snap', 'anon.' + s)]) / 1024:.0f}/{max(v[('snap', 'file.' + s)]) / 1024:.0f}), "
    f"restic {max(v[('restic', 'rss.' + s)]) / 1024:.0f} ({max(v[('restic', 'anon.' + s)]) / 1024:.0f}/{max(v[('restic', 'file.' + s)]) / 1024:.0f})"
    for s in steps))
p("")
p("Wall times per repetition (s): " + "; ".join(
    f"{s}: snap {' '.join(f'{x:.2f}' for x in v[('snap', 'wall.' + s)])} / restic {' '.join(f'{x:.2f}' for x in v[('restic', 'wall.' + s)])}"
    for s in ["push1", "push2", "push3", "list", "restore", "dump1", "dump2"]))
p("")
p("## Targets")
p("")
p("| target | measured | met |")
p("|---|---|---|")
def target(name, measured, ok, ok2=None):
    ok2 = ok if ok2 is None else ok2
    verdict = "yes" if ok and ok2 else "**no**" if not ok and not ok2 else "borderline (the two ratios disagree)"
    p(f"| {name} | {measured} | {verdict} |")
tp = med("restic", "wall.push1") / med("snap", "wall.push1")
tp2 = 1 / paired("wall.push1")
target("first push >= 2x restic throughput", f"{tp:.2f}x (ratio of medians), {tp2:.2f}x (median of per-repetition ratios)", tp >= 2, tp2 >= 2)
u = med("snap", "wall.push2")
target(f"unchanged second push of {files} files < 0.3 s", f"{u:.3f} s wall (in-process {med('snap', 'inproc.push2'):.3f} s)", u < 0.3)
d = med("snap", "added.dump2") / med("restic", "added.dump2")
target("day-2 dump adds <= 1/5 of what restic adds", f"{d:.3f} of restic's plaintext bytes ({g('snap') / g('restic'):.3f} of its repository growth)", d <= 0.2)
rr = med("restic", "wall.restore") / med("snap", "wall.restore")
rr2 = 1 / paired("wall.restore")
target("restore >= 2x restic", f"{rr:.2f}x (ratio of medians), {rr2:.2f}x (median of per-repetition ratios)", rr >= 2, rr2 >= 2)
target("peak memory < 200 MB (max RSS from /usr/bin/time)", f"{rss('snap') * 1024 / MB:.0f} MB", rss("snap") * 1024 < 200 * MB)
target("peak memory < 200 MB, anonymous memory only", f"{ra('snap') * 1024 / MB:.0f} MB", ra("snap") * 1024 < 200 * MB)
p("")
p(f"Run time: {$RUN_S} s in all, of which {$GEN_S} s generating data.")
text = "\n".join(L) + "\n"
open(out_md, "w").write(text)
print(text)
EOF
echo "results written to $OUT_MD" >&2
