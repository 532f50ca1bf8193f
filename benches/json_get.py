#!/usr/bin/env python3
"""Prints one value of a JSON document: json_get.py FILE KEY.PATH

The file may also be restic's `--json` output, a stream of JSON lines whose
summary line holds the figures.
"""
import json
import sys

text = open(sys.argv[1]).read()
try:
    doc = json.loads(text)
except ValueError:
    doc = [json.loads(l) for l in text.splitlines() if '"summary"' in l][-1]
for k in sys.argv[2].split("."):
    doc = doc[k]
print(doc)
