#!/usr/bin/env python3
"""jsonq.py - pick values out of JSON on stdin (a tiny jq for the tests).

  hnxdp dump --json | jsonq.py 'pairs[synthetic.name=hn0].stats.vf_rx_packets'
  hnxdp dump --json | jsonq.py 'len:pairs' 'pairs[0].state'

Each PATH prints one line. A path is dot-separated keys; a key may carry
selectors in brackets: [N] (list index, negative from the end) or
[sub.path=VALUE] (the first list element whose sub.path prints as VALUE).
'len:PATH' prints the length of a list/object/string. Strings print raw,
booleans as true/false, null as null, lists and objects as compact JSON.

A path that does not resolve is an error (exit 1, one line on stderr) unless
--default VALUE is given, which is then printed instead. Input that is not
JSON is exit 2.
"""
import argparse
import json
import re
import sys

_MISSING = object()


def _split(path: str):
    """Split on dots that are not inside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in path:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "." and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p != ""]


def fmt(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"), sort_keys=True)
    return str(v)


def resolve(doc, path: str):
    cur = doc
    for part in _split(path):
        m = re.match(r"^([^\[]*)((?:\[[^\]]*\])*)$", part)
        if not m:
            return _MISSING
        key, sels = m.group(1), re.findall(r"\[([^\]]*)\]", m.group(2))
        if key:
            if not isinstance(cur, dict) or key not in cur:
                return _MISSING
            cur = cur[key]
        for sel in sels:
            if not isinstance(cur, list):
                return _MISSING
            if re.fullmatch(r"-?\d+", sel):
                i = int(sel)
                if not -len(cur) <= i < len(cur):
                    return _MISSING
                cur = cur[i]
            elif "=" in sel:
                sub, want = sel.split("=", 1)
                found = _MISSING
                for el in cur:
                    v = resolve(el, sub)
                    if v is not _MISSING and fmt(v) == want:
                        found = el
                        break
                if found is _MISSING:
                    return _MISSING
                cur = found
            else:
                return _MISSING
    return cur


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+")
    p.add_argument("--default", default=None)
    a = p.parse_args()
    text = sys.stdin.read()
    try:
        doc = json.loads(text)
    except ValueError as e:
        first = text.strip().splitlines()[0][:120] if text.strip() else "<empty>"
        print(f"jsonq: input is not JSON ({e}); starts with: {first}", file=sys.stderr)
        return 2
    rc = 0
    for path in a.paths:
        want_len = path.startswith("len:")
        v = resolve(doc, path[4:] if want_len else path)
        if v is _MISSING:
            if a.default is not None:
                print(a.default)
                continue
            print(f"jsonq: path {path!r} not found", file=sys.stderr)
            rc = 1
            continue
        if want_len:
            if not isinstance(v, (list, dict, str)):
                print(f"jsonq: len of a {type(v).__name__} at {path!r}", file=sys.stderr)
                rc = 1
                continue
            v = len(v)
        print(fmt(v))
    return rc


if __name__ == "__main__":
    sys.exit(main())
