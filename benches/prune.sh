#!/usr/bin/env bash
# snap prune: space reclaimed, duration and memory, measured for real.
#
# Part 1 (generations): a site tree and a mysqldump-like dump from
# benches/gen_site.py (seeded, SCALE), then DAYS-1 seeded daily mutations
# written by this script (tree: 40 text files edited, 2 PHP files and one
# media file added, one media file deleted; dump: 300 in-place word edits and
# rows appended). Each day is pushed as level 1 with --time (files, and the
# dump through --stdin --kind db). Copies of that repository are then pruned
# with `snap prune --policy level1`:
#   A  --now day DAYS + 20 (default --max-unused 5)
#   B  --now day DAYS, --max-unused 5
#   C  --now day DAYS, --max-unused 0
# For each: the plan (--dry-run --json), the real run under /usr/bin/time -v
# (wall, peak RSS), du of data/ before and after, and `snap check --read-data`.
#
# Part 2 (memory against chunks): repositories initialised with
# `--chunk-db 64,256,1024` holding 4 pushes of seeded random (incompressible)
# data through --stdin --kind db, pushed on 4 consecutive days, at two sizes
# (4 x 20, 4 x 80 and 4 x 160 MB: ~0.27M, ~1.1M and ~2.2M chunks, which average ~310 bytes here). A policy file overrides
# level1 with db `last = 2`, so prune removes half; prune and `snap check`
# run under /usr/bin/time, with a 20 ms sampler splitting RSS into anonymous
# and file-backed pages.
#
# All runs use SNAP_KDF_MEMORY_KIB=8192 SNAP_KDF_ITERATIONS=1 at init (with
# SNAP_INSECURE_KDF=1, which allows such weak costs: key derivation 8 MiB instead
# of the default 64 MiB), so that the KDF does not set the RSS floor.
# Environment: SCALE (gen_site.py, default 0.25), DAYS (default 10), REPS
# (prune repetitions for medians, default 3), SIZES_MB (per-push MB for
# part 2, default "20 80 160"), WORK, SNAP, KEEP=1, PART=1|2 (only one part).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SCALE=${SCALE:-0.25}
DAYS=${DAYS:-10}
REPS=${REPS:-3}
SIZES_MB=${SIZES_MB:-"20 80 160"}
PART=${PART:-all}
WORK=${WORK:-/var/tmp/snap-prune.$$}
OUT_MD=$HERE/results/prune.md
START=$(date +%s)

if [[ -z "${SNAP:-}" ]]; then
    (cd "$HERE/.." && CARGO_TARGET_DIR=/var/tmp/snap-target cargo build --release --quiet)
    SNAP=/var/tmp/snap-target/release/snap
fi
mkdir -p "$WORK"
cleanup() { if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$WORK"; fi; }
trap cleanup EXIT

export SNAP_PASSWORD=bench-password SNAP_KDF_MEMORY_KIB=8192 SNAP_KDF_ITERATIONS=1 SNAP_INSECURE_KDF=1 TZ=UTC
unset SNAP_PASSWORD_FILE SNAP_REPO SNAP_POLICY_FILE
MD=$WORK/out.md
: >"$MD"
md() { printf '%s\n' "$*" >>"$MD"; }


# timed OUT CMD...: stdout to OUT; sets WALL (s), RSS (peak KiB, time -v),
# ANON and FILEB (sampled peak KiB).
timed() {
    local out=$1
    shift
    python3 "$HERE/rss_split.py" "$WORK/rss_split" /usr/bin/time -v -o "$WORK/timev" "$@" >"$out"
    WALL=$(awk '{printf "%.2f", $3}' "$WORK/rss_split")
    RSS=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/timev")
    ANON=$(cut -d' ' -f1 "$WORK/rss_split")
    FILEB=$(cut -d' ' -f2 "$WORK/rss_split")
}

jget() { # FILE a.b.c (list index allowed; len(x) via "len:a.b")
    python3 - "$1" "$2" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
path = sys.argv[2]
ln = path.startswith("len:")
for k in path.removeprefix("len:").split("."):
    doc = doc[int(k)] if isinstance(doc, list) else doc[k]
print(len(doc) if ln else doc)
EOF
}
dub() { du -sb "$1" | cut -f1; }
mb() { awk -v x="$1" 'BEGIN {printf "%.1f", x / 1e6}'; }
mib() { awk -v x="$1" 'BEGIN {printf "%.0f", x / 1024}'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
day() { date -u -d "2026-01-01 + $(($1 - 1)) days" '+%Y-%m-%d 03:00:00'; }

# The daily mutations (seeded by day).
cat >"$WORK/mutate.py" <<'PY'
import os, random, sys
what, day = sys.argv[1], int(sys.argv[2])
r = random.Random(f"snap-prune-bench-{what}-{day}")
if what == "tree":
    root = sys.argv[3]
    texts, media = [], []
    for d, dirs, names in os.walk(root):
        dirs.sort()
        for n in sorted(names):
            p = os.path.join(d, n)
            (media if n.endswith((".jpg", ".png", ".mp4", ".pdf", ".webp", ".zip")) else texts).append(p)
    for p in r.sample(texts, min(40, len(texts))):
        data = open(p, "rb").read()
        at = data.rfind(b"\n", 0, r.randrange(len(data) + 1)) + 1
        data = data[:at] + f"/* day {day} edit {r.random()} */\n".encode() + data[at:]
        open(p, "wb").write(data)
    for i in range(2):
        p = os.path.join(root, f"client-{'abcd'[i + day % 3]}/wp-content/uploads/day{day}-{i}.php")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        open(p, "wb").write("".join(f"<?php // {r.random()}\n" for _ in range(200)).encode())
    p = os.path.join(root, f"client-{'abcd'[day % 4]}/wp-content/uploads/day{day}.jpg")
    open(p, "wb").write(r.randbytes(r.randint(256 << 10, 2 << 20)))
    if media:
        os.remove(r.choice(media))
else:  # dump: previous dump -> this day's dump
    src, dst = sys.argv[3], sys.argv[4]
    data = bytearray(open(src, "rb").read())
    tail = data.rfind(b"-- Dump completed")
    for _ in range(300):
        q = r.randrange(len(data) // 4, tail - 16)
        data[q:q + 8] = f"{r.randrange(10**8):08d}".encode()
    extra = "".join(f"-- day {day} row {i}: {r.random()} {r.random()}\n" for i in range(50)).encode()
    data[tail:tail] = extra
    open(dst, "wb").write(data)
PY

###########################################################################
if [[ $PART == all || $PART == 1 ]]; then
    echo "== part 1: $DAYS generations (SCALE=$SCALE) in $WORK" >&2
    D=$WORK/gen
    mkdir -p "$D"
    python3 "$HERE/gen_site.py" day1 --tree "$D/site" --dump "$D/dump1.sql" --scale "$SCALE"
    R=$D/repo
    "$SNAP" --repo "$R" --cache-dir "$R.cache" init --json >/dev/null
    PUSH_S=0
    for ((d = 1; d <= DAYS; d++)); do
        if ((d > 1)); then
            python3 "$WORK/mutate.py" tree "$d" "$D/site"
            python3 "$WORK/mutate.py" dump "$d" "$D/dump$((d - 1)).sql" "$D/dump$d.sql"
            rm -f "$D/dump$((d - 1)).sql"
        fi
        t0=$(date +%s%N)
        "$SNAP" --repo "$R" --cache-dir "$R.cache" push "$D/site" --level 1 --time "$(day "$d")" --json -q >"$D/push$d.json"
        "$SNAP" --repo "$R" --cache-dir "$R.cache" push --stdin --name agency_sites.sql --kind db --level 1 --time "$(day "$d")" --json -q \
            <"$D/dump$d.sql" >"$D/dump$d.json"
        PUSH_S=$((PUSH_S + ($(date +%s%N) - t0) / 1000000))
        echo "   day $d: files +$(mb "$(jget "$D/push$d.json" summary.bytes_added)") MB, db +$(mb "$(jget "$D/dump$d.json" summary.bytes_added)") MB" >&2
    done
    TREE_MB=$(mb "$(du -sb "$D/site" | cut -f1)")
    DUMP_MB=$(mb "$(stat -c %s "$D/dump$DAYS.sql")")
    BEFORE=$(dub "$R/data")
    NPACKS=$(find "$R/data" -type f | wc -l)
    md "## 1. Prune after $DAYS daily generations"
    md ""
    md "Repository: $DAYS level-1 files snapshots of a ${TREE_MB} MB site tree (gen_site.py day1 --scale $SCALE, then the seeded daily mutations of this script) and $DAYS level-1 db snapshots of a ${DUMP_MB} MB dump, pushed with --time 2026-01-01 … $(day "$DAYS" | cut -d' ' -f1) (pushes took $((PUSH_S / 1000)) s in all). data/ before prune: $(mb "$BEFORE") MB in $NPACKS files."
    md ""
    md "| run | command | snapshots removed (of $((2 * DAYS))) | packs deleted / repacked (planned) | bytes freed, planned (plan.packs.bytes_freed) | data/ before → after (du) | freed, measured | prune wall (median of $REPS; all) | peak RSS (median; anon / file-backed) | check --read-data |"
    md "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
    run_case() { # NAME NOW MAXUNUSED
        local name=$1 now=$2 mu=$3 walls="" rsss="" anons="" files="" i C
        for ((i = 1; i <= REPS; i++)); do
            C=$WORK/case-$name-$i
            rm -rf "$C" "$C.cache"
            cp -a "$R" "$C"
            cp -a "$R.cache" "$C.cache"
            sync
            "$SNAP" --repo "$C" --cache-dir "$C.cache" prune --policy level1 --now "$now" --max-unused "$mu" --dry-run --json >"$C.plan.json"
            local b0
            b0=$(dub "$C/data")
            timed "$C.run.json" "$SNAP" --repo "$C" --cache-dir "$C.cache" prune --policy level1 --now "$now" --max-unused "$mu" --json -q
            walls+=" $WALL" rsss+=" $RSS" anons+=" $ANON" files+=" $FILEB"
            local b1
            b1=$(dub "$C/data")
            if ((i == 1)); then
                local ck=FAILED
                "$SNAP" --repo "$C" --cache-dir "$C.cache" check --read-data -q >/dev/null 2>"$C.check.err" && ck=passes
                local rem planned
                rem=$(jget "$C.run.json" len:plan.remove)
                planned=$(jget "$C.plan.json" plan.packs.bytes_freed)
                P1="| $name | \`snap prune --policy level1 --now '$now' --max-unused $mu\` | $rem | $(jget "$C.plan.json" len:plan.packs.delete) / $(jget "$C.plan.json" len:plan.packs.repack) (done: $(jget "$C.run.json" done.packs_deleted) deleted, $(jget "$C.run.json" done.packs_written) written) | $(mb "$planned") MB | $(mb "$b0") → $(mb "$b1") MB | $(mb $((b0 - b1))) MB |"
                P2=" $ck |"
            fi
            rm -rf "$C" "$C.cache"
        done
        local wm rm_ am fm
        wm=$(echo "$walls" | median)
        rm_=$(echo "$rsss" | median)
        am=$(echo "$anons" | median)
        fm=$(echo "$files" | median)
        md "$P1 ${wm} s (${walls# }) | $(mib "$rm_") MiB ($(mib "$am") / $(mib "$fm")) |$P2"
        echo "   $name: wall $walls s, rss $rsss KiB" >&2
    }
    run_case A "$(day $((DAYS + 20)))" 5
    run_case B "$(day "$DAYS")" 5
    run_case C "$(day "$DAYS")" 0
    md ""
fi

###########################################################################
if [[ $PART == all || $PART == 2 ]]; then
    echo "== part 2: memory against chunks" >&2
    POL=$WORK/half.toml
    printf '[policy.level1]\nlevel = 1\nfiles = { last = 2 }\ndb = { last = 2 }\n' >"$POL"
    md "## 2. Memory against the number of chunks"
    md ""
    md "Repository: \`snap init --chunk-db 64,256,1024\`; 4 pushes (\`push --stdin --kind db --time\` on 4 consecutive days) of seeded random bytes; prune with a policy file overriding level1 with \`db = { last = 2 }\` (\`snap prune --policy level1 --policy-file half.toml --now 2026-01-05 --json\`), which removes 2 of the 4 snapshots. RSS: peak from /usr/bin/time -v; anonymous / file-backed from a 20 ms sampler. Single runs."
    md ""
    md "| per push | chunks in repo (sum of blobs_added) | index/ size | push (median wall, peak RSS) | prune wall | prune peak RSS (anon / file) | packs deleted / repacked | data/ before → after | check wall | check peak RSS (anon / file) | check after prune |"
    md "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    for s in $SIZES_MB; do
        M=$WORK/mem-$s
        rm -rf "$M" "$M.cache"
        "$SNAP" --repo "$M" --cache-dir "$M.cache" init --chunk-db 64,256,1024 --json >/dev/null
        chunks=0 pw="" pr=""
        for d in 1 2 3 4; do
            python3 -c "import random,sys; sys.stdout.buffer.write(random.Random('mem-$s-$d').randbytes($s << 20))" >"$WORK/rand.bin"
            timed "$WORK/p.json" "$SNAP" --repo "$M" --cache-dir "$M.cache" push --stdin --name big.db --kind db --time "$(day "$d")" --json -q --host bench <"$WORK/rand.bin"
            pw+=" $WALL" pr+=" $RSS"
            chunks=$((chunks + $(jget "$WORK/p.json" summary.blobs_added)))
        done
        rm -f "$WORK/rand.bin"
        idx=$(dub "$M.cache")
        b0=$(dub "$M/data")
        sync
        timed "$WORK/prune.json" "$SNAP" --repo "$M" --cache-dir "$M.cache" prune --policy level1 --policy-file "$POL" --now "$(day 5)" --json -q
        prw=$WALL prr=$RSS pra=$ANON prf=$FILEB
        b1=$(dub "$M/data")
        ck=FAILED
        timed "$WORK/check.json" "$SNAP" --repo "$M" --cache-dir "$M.cache" check -q && ck=passes
        md "| $s MB | $chunks | $(mb "$idx") MB | $(echo "$pw" | median) s, $(mib "$(echo "$pr" | median)") MiB | ${prw} s | $(mib "$prr") MiB ($(mib "$pra") / $(mib "$prf")) | $(jget "$WORK/prune.json" len:plan.packs.delete) / $(jget "$WORK/prune.json" len:plan.packs.repack) | $(mb "$b0") → $(mb "$b1") MB | ${WALL} s | $(mib "$RSS") MiB ($(mib "$ANON") / $(mib "$FILEB")) | $ck |"
        echo "   $s MB: $chunks chunks, prune ${prw}s ${prr} KiB, check ${WALL}s ${RSS} KiB" >&2
        if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$M" "$M.cache"; fi
    done
    md ""
fi

RUN_S=$(($(date +%s) - START))
mkdir -p "$HERE/results"
{
    echo "# snap prune: space reclaimed, duration, memory"
    echo ""
    echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, shared with other jobs (load average at end $(cut -d' ' -f1-3 /proc/loadavg)): wall times are noisy. snap $(cd "$HERE/.." && git rev-parse --short HEAD)$(cd "$HERE/.." && git diff --quiet HEAD -- src || echo ' (+ uncommitted changes)'). Warm page cache. \`SNAP_KDF_MEMORY_KIB=8192 SNAP_KDF_ITERATIONS=1\`. Produced by \`benches/prune.sh\` (SCALE=$SCALE DAYS=$DAYS REPS=$REPS SIZES_MB=\"$SIZES_MB\") in $RUN_S s."
    echo ""
    cat "$MD"
} >"$OUT_MD.tmp"
if [[ $PART == all ]]; then mv "$OUT_MD.tmp" "$OUT_MD"; else mv "$OUT_MD.tmp" "$OUT_MD.part$PART"; fi
cat "$OUT_MD"* >&2 || true
echo "prune.sh: done in $RUN_S s" >&2
