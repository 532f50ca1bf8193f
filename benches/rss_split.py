#!/usr/bin/env python3
"""Runs a command; writes its wall time (seconds) and the peaks of its
processes' anonymous and file-backed resident memory (RssAnon, RssFile, in
KiB, polled every 20 ms): "ANON FILE WALL".

/usr/bin/time's peak RSS counts the pages of memory-mapped files (pack files
that are page cache) as well as the process's own memory; this tells the two
apart. The wall time is taken here, around the command alone: this
interpreter's own start (0.1 s or more on a slow machine) must not be counted
as the command's. Usage: rss_split.py OUTFILE CMD [ARGS...]
"""
import os, subprocess, sys, threading, time
out, cmd = sys.argv[1], sys.argv[2:]
peak = {"RssAnon:": 0, "RssFile:": 0}
done = threading.Event()
def tree(pid):
    pids = [pid]
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            for c in open(f"/proc/{pid}/task/{t}/children").read().split():
                pids += tree(int(c))
    except OSError:
        pass
    return pids
def sample(pid):
    while not done.is_set():
        for q in tree(pid):
            try:
                for line in open(f"/proc/{q}/status"):
                    f = line.split()
                    if f and f[0] in peak:
                        peak[f[0]] = max(peak[f[0]], int(f[1]))
            except OSError:
                pass
        done.wait(0.02)
t0 = time.perf_counter()
p = subprocess.Popen(cmd)
sampler = threading.Thread(target=sample, args=(p.pid,), daemon=True)
sampler.start()
rc = p.wait()
wall = time.perf_counter() - t0
done.set()
sampler.join()
open(out, "w").write(f"{peak['RssAnon:']} {peak['RssFile:']} {wall:.3f}\n")
sys.exit(rc)
