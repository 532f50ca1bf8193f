#!/usr/bin/env bash
# Which average chunk size for database dumps? Our own measurement.
#
# For each average size (min = avg/4, max = avg*4), a fresh repository is
# made with `snap init --chunk-db MIN,AVG,MAX`, the day-1 dump is pushed
# through stdin, then the day-2 dump; three times, since each repository has
# its own key and so its own chunk boundaries. Reported per size (medians):
#   - day-2 bytes new to the repository (`bytes_added`, plaintext) and their
#     share of the day-2 dump; what they take once compressed and sealed
#     (`bytes_stored`);
#   - the metadata a dump snapshot costs: the metadata pack written by the
#     day-1 push (the whole chunk list of the dump, plus its tree) and by the
#     day-2 push (the part of the chunk list that did not deduplicate), plus
#     the snapshot file; and the local RocksDB index at the end;
#   - wall time of the day-2 push.
# restic (fixed ~1 MiB chunks) is measured on the same dumps for reference.
#
# Two pairs of dumps:
#   1. benches/gen_site.py's mysqldump-like dumps (~150 MB, 0.15% of rows
#      edited in place, spread through every table, a few rows appended);
#   2. with PostgreSQL (if it is installed or installable): two real pg_dump
#      outputs of a generated 1M-row table, 0.15% of rows updated at random
#      between them. PostgreSQL writes an updated row as a new tuple
#      elsewhere in the heap, so the dump loses it in the middle and shows it
#      near the end: the realistic case. The cluster is private (initdb in
#      WORK, 127.0.0.1 only, its own port) and stopped at the end.
#
# Output: a markdown table on stdout and in benches/results/dump-chunk-sizes.md.
# Environment: WORK (default /var/tmp/snap-chunks.PID), SNAP (default: built
# with cargo into /var/tmp/snap-target), PG=0 to skip PostgreSQL, KEEP=1 to
# leave WORK, SIZES (average sizes in bytes), REPS (repositories, so keys,
# per size; default 3). Needs strace, to see in which order packs are written.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${WORK:-/var/tmp/snap-chunks.$$}
SIZES=${SIZES:-"2048 4096 8192 16384 65536 1048576"}
RESTIC=${RESTIC:-/usr/bin/restic}
PG=${PG:-1}
PG_PORT=${PG_PORT:-54329}
REPS=${REPS:-3}
OUT_MD=$HERE/results/dump-chunk-sizes.md
START=$(date +%s)

if [[ -z "${SNAP:-}" ]]; then
    (cd "$HERE/.." && CARGO_TARGET_DIR=/var/tmp/snap-target cargo build --release --quiet)
    SNAP=/var/tmp/snap-target/release/snap
fi
for t in "$SNAP" "$RESTIC" strace python3; do
    command -v "$t" >/dev/null || { echo "dump_chunk_sizes.sh: $t not found" >&2; exit 1; }
done
mkdir -p "$WORK"
chmod 755 "$WORK"
free_gb=$(df -P --block-size=1G "$WORK" | awk 'NR==2 {print $4}')
if ((free_gb < 4)); then
    echo "dump_chunk_sizes.sh: $WORK has ${free_gb} GB free; 4 GB are needed" >&2
    exit 1
fi
PGBIN=""
cleanup() {
    if [[ -n "$PGBIN" && -f "$WORK/pg/data/postmaster.pid" ]]; then
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m fast stop >/dev/null 2>&1 || true
    fi
    if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

export SNAP_PASSWORD=bench-password RESTIC_PASSWORD=bench-password
# Only bytes are compared here: a cheap key derivation keeps the runs short.
export SNAP_KDF_MEMORY_KIB=1024 SNAP_KDF_ITERATIONS=1 SNAP_INSECURE_KDF=1
ROWS=$WORK/rows.tsv # dataset avg key value
: >"$ROWS"

json_get() { python3 "$HERE/json_get.py" "$1" "$2"; } # FILE KEY.PATH: one value of a JSON document

# push_dump REPO FILE JSON: pushes FILE as a dump; prints the size of the
# last pack it wrote, which is its metadata pack (the writer sends the data
# packs first and the metadata pack last; metadata fills a pack only past
# 16 MiB). The order comes from the renames that put packs in place: file
# times are too coarse to order two packs written within a few milliseconds.
push_dump() {
    strace -f -qq --seccomp-bpf -e trace=rename,renameat,renameat2 -o "$WORK/renames" \
        "$SNAP" --repo "$1" --cache-dir "$1.cache" push --stdin --name dump.sql --kind db --json <"$2" >"$3"
    local last
    last=$(grep -o '"[^"]*/data/[0-9a-f][0-9a-f]/[0-9a-f]*"' "$WORK/renames" | tail -n 1 | tr -d '"')
    stat -c %s "$last"
}

# row SET AVG REP KEY VALUE
row() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$ROWS"; }

# measure DATASET DAY1 DAY2
measure() {
    local set=$1 d1=$2 d2=$3 avg rep
    row "$set" - - size2 "$(stat -c %s "$d2")"
    for ((rep = 1; rep <= REPS; rep++)); do
        for avg in $SIZES; do
            local repo=$WORK/repo-$set-$avg min=$((avg / 4)) max=$((avg * 4))
            ((min < 64)) && min=64
            ((max > 16 * 1024 * 1024)) && max=$((16 * 1024 * 1024))
            rm -rf "$repo" "$repo.cache"
            "$SNAP" --repo "$repo" --cache-dir "$repo.cache" init --chunk-db "$min,$avg,$max" >/dev/null
            local meta1 meta2 t0 t1
            meta1=$(push_dump "$repo" "$d1" "$WORK/p1.json")
            t0=$(date +%s%N)
            meta2=$(push_dump "$repo" "$d2" "$WORK/p2.json")
            t1=$(date +%s%N)
            row "$set" "$avg" - params "$min,$avg,$max"
            row "$set" "$avg" "$rep" blobs1 "$(json_get "$WORK/p1.json" summary.blobs_added)"
            row "$set" "$avg" "$rep" added2 "$(json_get "$WORK/p2.json" summary.bytes_added)"
            row "$set" "$avg" "$rep" stored2 "$(json_get "$WORK/p2.json" summary.bytes_stored)"
            row "$set" "$avg" "$rep" meta1 "$meta1"
            row "$set" "$avg" "$rep" meta2 "$meta2"
            row "$set" "$avg" "$rep" snapfile "$(stat -c %s "$repo/snapshots/$(json_get "$WORK/p2.json" id)")"
            row "$set" "$avg" "$rep" index "$(du -sb "$repo.cache" | cut -f1)"
            row "$set" "$avg" "$rep" wall2 "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')"
            echo "  $set avg $avg, key $rep: day 2 added $(json_get "$WORK/p2.json" summary.bytes_added) bytes" >&2
            rm -rf "$repo" "$repo.cache"
        done
        # restic for reference: its chunker is fixed (512 KiB - 8 MiB, ~1 MiB)
        local rrepo=$WORK/restic-$set before
        "$RESTIC" -r "$rrepo" --cache-dir "$WORK/restic-cache" init -q
        "$RESTIC" -r "$rrepo" --cache-dir "$WORK/restic-cache" backup --stdin --stdin-filename dump.sql --json <"$d1" >"$WORK/r1.json"
        before=$(du -sb "$rrepo" | cut -f1)
        "$RESTIC" -r "$rrepo" --cache-dir "$WORK/restic-cache" backup --stdin --stdin-filename dump.sql --json <"$d2" >"$WORK/r2.json"
        row "$set" restic "$rep" added2 "$(json_get "$WORK/r2.json" data_added)"
        row "$set" restic "$rep" growth2 "$(($(du -sb "$rrepo" | cut -f1) - before))"
        rm -rf "$rrepo" "$WORK/restic-cache"
    done
}

echo "== generated mysqldump-like dumps" >&2
python3 "$HERE/gen_site.py" dump --day 1 "$WORK/my1.sql"
python3 "$HERE/gen_site.py" dump --day 2 "$WORK/my2.sql"
measure mysqldump "$WORK/my1.sql" "$WORK/my2.sql"
rm -f "$WORK/my1.sql" "$WORK/my2.sql"

PG_NOTE=""
if [[ "$PG" == 1 ]]; then
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        echo "== installing PostgreSQL" >&2
        apt-get install -y -q postgresql >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q postgresql >/dev/null 2>&1) || true
    fi
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -z "$PGBIN" ]]; then
        PG_NOTE="PostgreSQL could not be installed (apt-get install postgresql failed), so only the generated dumps were measured."
    elif ! id postgres >/dev/null 2>&1; then
        PG_NOTE="PostgreSQL is installed but there is no postgres user to run a cluster as."
        PGBIN=""
    fi
else
    PG_NOTE="PostgreSQL was skipped (PG=0)."
fi

if [[ -n "$PGBIN" ]]; then
    echo "== PostgreSQL ($PGBIN): private cluster on 127.0.0.1:$PG_PORT" >&2
    mkdir -p "$WORK/pg"
    chown postgres "$WORK/pg"
    pgrun() { runuser -u postgres -- "$@"; }
    pgrun "$PGBIN/initdb" -D "$WORK/pg/data" -A trust -U postgres >/dev/null
    pgrun "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w \
        -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$WORK/pg -c autovacuum=off" start >/dev/null
    psqlc() { pgrun "$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -q "$@"; }
    psqlc -d postgres -c "CREATE DATABASE agency"
    # 1M posts, ~150 bytes a row; setseed makes random() repeatable.
    psqlc -d agency >/dev/null <<'SQL'
SELECT setseed(0.42);
CREATE TABLE posts (
    id bigserial PRIMARY KEY,
    site int NOT NULL,
    author int NOT NULL,
    created timestamptz NOT NULL,
    modified timestamptz NOT NULL,
    status text NOT NULL,
    title text NOT NULL,
    body text NOT NULL
);
WITH lorem AS (
    SELECT string_agg(w, ' ') AS t FROM (
        SELECT (ARRAY['bienvenue','accueil','devis','horaires','tarifs','réservation','boulangerie',
                      'cabinet','avocat','gîte','chambre','séjour','appartement','maison','vente',
                      'location','agence','immobilier','quartier','centre','ville','post','page',
                      'the','of','and','to','in','is','for','on','with','content','menu','widget'])[1 + floor(random() * 35)::int] AS w
        FROM generate_series(1, 2000)) words)
INSERT INTO posts (site, author, created, modified, status, title, body)
SELECT 1 + (random() * 40)::int, 1 + (random() * 200)::int,
       ts, ts,
       (ARRAY['publish','draft','private'])[1 + floor(random() * 3)::int],
       substr(lorem.t, 1 + floor(random() * 1900)::int, 20 + floor(random() * 40)::int),
       substr(lorem.t, 1 + floor(random() * 1500)::int, 40 + floor(random() * 120)::int)
FROM lorem, generate_series(1, 1000000) i,
     LATERAL (SELECT timestamptz '2015-01-01' + random() * interval '3500 days' + i * interval '0 s' AS ts) t;
VACUUM ANALYZE posts;
SQL
    dump() { pgrun "$PGBIN/pg_dump" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d agency >"$1"; }
    dump "$WORK/pg1.sql"
    psqlc -d agency >/dev/null <<'SQL'
SELECT setseed(0.43);
UPDATE posts SET modified = modified + interval '1 day',
                 body = body || ' (modifié)'
 WHERE id IN (SELECT id FROM posts ORDER BY random() LIMIT 1500);
INSERT INTO posts (site, author, created, modified, status, title, body)
SELECT 1, 1, now(), now(), 'publish', 'nouvel article ' || i, 'contenu du nouvel article ' || i
FROM generate_series(1, 50) i;
SQL
    dump "$WORK/pg2.sql"
    PG_VERSION=$(pgrun "$PGBIN/postgres" --version)
    pgrun "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m fast stop >/dev/null
    rm -rf "$WORK/pg"
    PG_LINES=$(python3 - "$WORK/pg1.sql" "$WORK/pg2.sql" <<'EOF'
import sys
a = open(sys.argv[1], "rb").read().split(b"\n")
b = open(sys.argv[2], "rb").read().split(b"\n")
sa, sb = set(a), set(b)
row = lambda l: l.count(b"\t") >= 7
gone = [i for i, l in enumerate(a) if row(l) and l not in sb]
new = [i for i, l in enumerate(b) if row(l) and l not in sa]
tail = sum(1 for i in new if i > len(b) * 0.99)
print(f"in the day-2 dump, {len(gone)} rows of day 1 are gone from their place (spread from line {gone[0]} "
      f"to line {gone[-1]} of {len(a)}) and {len(new)} rows are new, {tail} of them in the last 1% of the file "
      f"(updated rows move to the end of the heap); pg_dump also writes a new random `\\restrict` key into every dump")
EOF
)
    PG_NOTE="$PG_VERSION, private cluster (initdb in the work directory, 127.0.0.1 only, autovacuum off). Table of 1,000,000 posts, then UPDATE of 1,500 random rows (0.15%) and 50 INSERTs between the two pg_dump runs: $PG_LINES."
    measure postgres "$WORK/pg1.sql" "$WORK/pg2.sql"
    rm -f "$WORK/pg1.sql" "$WORK/pg2.sql"
fi

RUN_S=$(($(date +%s) - START))
mkdir -p "$HERE/results"
SNAP_REV="$(cd "$HERE/.." && git rev-parse --short HEAD)$(cd "$HERE/.." && git diff --quiet HEAD -- src || echo ' + uncommitted changes')"
python3 - "$ROWS" "$OUT_MD" "$PG_NOTE" "$RUN_S" "$REPS" "$SNAP_REV" "$("$RESTIC" version | cut -d' ' -f1-2)" <<'EOF'
import collections, statistics, sys
rows, out_md, pg_note, run_s, reps, snap_rev, restic_version = sys.argv[1:8]
vals = collections.defaultdict(list)  # (set, avg, key) -> values over keys
one = {}
sets, avgs = [], collections.defaultdict(list)
for line in open(rows):
    s, avg, rep, key, val = line.rstrip("\n").split("\t")
    if s not in sets:
        sets.append(s)
    if avg not in ("-", "restic") and avg not in avgs[s]:
        avgs[s].append(avg)
    if rep == "-":
        one[(s, avg, key)] = val
    else:
        vals[(s, avg, key)].append(float(val))
med = lambda s, a, k: statistics.median(vals[(s, a, k)])
rng = lambda s, a, k, f: f"{f(min(vals[(s, a, k)]))}-{f(max(vals[(s, a, k)]))}"
kib = lambda b: f"{b / 1024:,.0f} KiB"
mb = lambda b: f"{b / 1e6:.2f} MB"
pct = lambda x: f"{x:.2f}"
L = ["# Database dumps: which average chunk size?", "", f"snap {snap_rev}, {restic_version}.", "",
     f"Two consecutive dumps; for each chunk size, {reps} fresh repositories (each with its own random key, "
     "and so its own gear table and chunk boundaries: the figures move with the key, hence medians) made with "
     "`snap init --chunk-db MIN,AVG,MAX` (min = avg/4, max = avg*4); day 1 then day 2 pushed with "
     "`snap push --stdin --kind db`. Medians over the repositories; the share's range in brackets.", "",
     "- *day-2 new*: `bytes_added` of the day-2 push: plaintext of every blob it added, chunk lists included; "
     "the share is of the day-2 dump's size. *Stored*: `bytes_stored`, the same blobs compressed and sealed.",
     "- *chunks day 1*: blobs the day-1 push added (its chunks, plus a few chunk-list blobs and one tree).",
     "- *chunk list / snapshot*: the metadata pack the day-1 push wrote: the dump's whole chunk list "
     "(36 bytes a chunk, in content-defined groups), sealed, plus its tree. *New metadata day 2*: the metadata "
     "pack of the day-2 push, the chunk-list groups that did not deduplicate (included in day-2 new and stored). "
     "The snapshot file (~520 bytes) comes on top.",
     "- *index*: the local RocksDB index at the end (one entry per blob); a cache, rebuilt from packs.", ""]
for s in sets:
    title = {"mysqldump": "Generated mysqldump-like dumps (benches/gen_site.py)",
             "postgres": "Real pg_dump output (PostgreSQL)"}.get(s, s)
    size2 = int(one[(s, "-", "size2")])
    L += [f"## {title}", "", f"Day-2 dump: {size2 / 1e6:.1f} MB.", ""]
    if s == "postgres":
        L += [pg_note, ""]
    L += ["| avg chunk (min,avg,max) | day-2 new | share of day-2 dump, % | day-2 stored | chunks day 1 | "
          "chunk list / snapshot | new metadata day 2 | index | day-2 push |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for a in avgs[s]:
        share = [100 * x / size2 for x in vals[(s, a, "added2")]]
        L.append(f"| {int(a) // 1024} KiB ({one[(s, a, 'params')]}) | {mb(med(s, a, 'added2'))} | "
                 f"{statistics.median(share):.2f} ({min(share):.2f}-{max(share):.2f}) | {mb(med(s, a, 'stored2'))} | "
                 f"{med(s, a, 'blobs1'):,.0f} | {kib(med(s, a, 'meta1'))} | {kib(med(s, a, 'meta2'))} | "
                 f"{mb(med(s, a, 'index'))} | {med(s, a, 'wall2'):.2f} s |")
    if (s, "restic", "added2") in vals:
        share = [100 * x / size2 for x in vals[(s, "restic", "added2")]]
        L.append(f"| restic 0.14 (512 KiB, ~1 MiB, 8 MiB) | {mb(med(s, 'restic', 'added2'))} | "
                 f"{statistics.median(share):.2f} ({min(share):.2f}-{max(share):.2f}) | "
                 f"{mb(med(s, 'restic', 'growth2'))} (repository growth) | | | | | |")
    L.append("")
if "postgres" not in sets:
    L += ["## Real pg_dump output", "", pg_note, ""]
L.append(f"Run time: {run_s} s.")
text = "\n".join(L) + "\n"
open(out_md, "w").write(text)
print(text)
EOF
echo "results written to $OUT_MD" >&2
