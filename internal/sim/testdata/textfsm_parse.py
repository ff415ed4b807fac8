"""Parse text with a TextFSM template; print the records as JSON objects.

usage: textfsm_parse.py TEMPLATE TEXTFILE
"""
import json
import sys

import textfsm

with open(sys.argv[1]) as t:
    fsm = textfsm.TextFSM(t)
with open(sys.argv[2]) as f:
    rows = fsm.ParseText(f.read())
print(json.dumps([dict(zip(fsm.header, r)) for r in rows]))
