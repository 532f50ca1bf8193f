#!/usr/bin/env python3
"""Runs a command and writes the peaks of its processes' anonymous and
file-backed resident memory (RssAnon, RssFile, in KiB), polled every 20 ms.

/usr/bin/time's peak RSS counts the pages of memory-mapped files (pack files
that are page cache) as well as the process's own memory; this tells the two
apart. Usage: rss_split.py OUTFILE CMD [ARGS...]
"""
import os, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
p = subprocess.Popen(cmd)
peak = {"RssAnon:": 0, "RssFile:": 0}
def tree(pid):
    pids = [pid]
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            for c in open(f"/proc/{pid}/task/{t}/children").read().split():
                pids += tree(int(c))
    except OSError:
        pass
    return pids
while p.poll() is None:
    for pid in tree(p.pid):
        try:
            for line in open(f"/proc/{pid}/status"):
                f = line.split()
                if f and f[0] in peak:
                    peak[f[0]] = max(peak[f[0]], int(f[1]))
        except OSError:
            pass
    time.sleep(0.02)
open(out, "w").write(f"{peak['RssAnon:']} {peak['RssFile:']}\n")
sys.exit(p.returncode)
