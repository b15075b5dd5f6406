#!/usr/bin/env python3
"""sass_profile.py — a coarse map of a kernel's SASS (from `cuobjdump -sass`): runs of the
instructions that matter for the attention main loop (HMMA, LDGSTS, LDL/STL, MUFU, BAR, CALL,
predicated-instruction counts) in program order, so spills and if-converted code show up next
to the MMAs they slow down. Usage: tools/sass_profile.py kernel.sass [--function SUBSTR]"""
import re
import sys

KEYS = ["HMMA", "LDGSTS", "LDL", "STL", "MUFU.EX2", "MUFU.TANH", "MUFU.RCP", "BAR.SYNC", "CALL", "EXIT"]


def main():
    path = sys.argv[1]
    func = sys.argv[sys.argv.index("--function") + 1] if "--function" in sys.argv else None
    current, active = None, func is None
    runs = []  # [key, count, first_address, predicated_count, other_between]
    other = 0
    for line in open(path):
        m = re.match(r"\s+Function : (\S+)", line)
        if m:
            current = m.group(1)
            active = func is None or func in current
            if active:
                runs.append(["FUNCTION " + current, 1, "", 0, 0])
            continue
        m = re.match(r"\s+/\*([0-9a-f]+)\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)", line)
        if not m or not active:
            continue
        addr, pred, op = m.groups()
        key = next((k for k in KEYS if op.startswith(k)), None)
        if key is None:
            other += 1
            continue
        if runs and runs[-1][0] == key and other == 0:
            runs[-1][1] += 1
            runs[-1][3] += bool(pred)
        else:
            runs.append([key, 1, addr, int(bool(pred)), other])
        other = 0
    for key, count, addr, pred, between in runs:
        print(f"{addr:>6} (+{between:5d} other) {key:10s} x{count:4d}" + (f"  predicated {pred}" if pred else ""))


if __name__ == "__main__":
    main()
