#!/usr/bin/env python3
"""report.py - turn bench.sh's raw records into the Markdown table and JSON.

Records (tab-separated, one per line) in RECORDS:
  case  ID  WHAT  KIND  OP  TARGET  UNIT  GENERATOR
        KIND "ratio": per round A/B; "delta": per round A-B (UNIT ns);
        "value": one configuration only, per round A (UNIT as given: frames, s, %, MiB).
        OP ">=" or "<=": how the median compares with TARGET to be met;
        "info": no target (met is null).
  val   ID  ROUND  A|B  VALUE          one measurement of configuration A or B
  note  ID  KEY  VALUE                 extra raw figure kept in the JSON

Per case: the per-round figures are paired by round, the median of them is the
result and min..max of them the spread. Prints the Markdown table; with
--json FILE writes one object per case id.

  report.py RECORDS [--json FILE] [--meta KEY=VALUE ...]
"""
import argparse
import json
import statistics
import sys


def fmt(value, unit):
    if value is None:
        return "-"
    if unit == "pps":
        return f"{value / 1e6:.3f} Mpps"
    if unit == "bps":
        return f"{value / 1e9:.2f} Gbit/s"
    if unit == "ns":
        return f"{value:.1f} ns"
    return f"{value:g} {unit}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("records")
    p.add_argument("--json", default=None)
    p.add_argument("--meta", action="append", default=[])
    a = p.parse_args()

    cases, order = {}, []
    with open(a.records) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if parts[0] == "case":
                _, cid, what, kind, op, target, unit, gen = parts
                cases[cid] = dict(what=what, kind=kind, op=op, target=float(target),
                                  unit=unit, generator=gen, a={}, b={}, notes={})
                order.append(cid)
            elif parts[0] == "val":
                _, cid, rnd, cfg, value = parts
                cases[cid]["a" if cfg == "A" else "b"][int(rnd)] = float(value)
            elif parts[0] == "note":
                _, cid, key, value = parts
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
                cases[cid]["notes"][key] = value

    out = {"meta": dict(m.split("=", 1) for m in a.meta), "cases": {}}
    print("| id | what | A | B | ratio | spread | target | met |")
    print("|---|---|---|---|---|---|---|---|")
    for cid in order:
        c = cases[cid]
        rounds = sorted(set(c["a"]) if c["kind"] == "value" else set(c["a"]) & set(c["b"]))
        per = []
        for r in rounds:
            va, vb = c["a"][r], c["b"].get(r)
            if c["kind"] == "ratio":
                per.append(va / vb if vb > 0 else float("nan"))
            elif c["kind"] == "value":
                per.append(va)
            else:
                per.append(va - vb)
        med = statistics.median(per) if per else None
        lo, hi = (min(per), max(per)) if per else (None, None)
        med_a = statistics.median(c["a"][r] for r in rounds) if rounds else None
        med_b = statistics.median(c["b"][r] for r in rounds) if rounds and c["kind"] != "value" else None
        met = None
        if med is not None and c["op"] in (">=", "<="):
            met = med >= c["target"] if c["op"] == ">=" else med <= c["target"]
        if c["kind"] == "ratio":
            shown = f"{med:.3f}" if med is not None else "-"
            spread = f"{lo:.3f}..{hi:.3f}" if per else "-"
            target = f"{c['op']} {c['target']:g}" if c["op"] != "info" else "-"
        elif c["kind"] == "value":
            u = c["unit"]
            shown = f"{med:g} {u}" if med is not None else "-"
            spread = f"{lo:g}..{hi:g} {u}" if per else "-"
            target = f"{c['op']} {c['target']:g} {u}" if c["op"] != "info" else "-"
        else:
            shown = f"{med:+.1f} ns" if med is not None else "-"
            spread = f"{lo:+.1f}..{hi:+.1f} ns" if per else "-"
            target = f"{c['op']} {c['target']:g} ns" if c["op"] != "info" else "-"
        print(f"| {cid} | {c['what']} | {fmt(med_a, c['unit'])} | {fmt(med_b, c['unit'])} | "
              f"{shown} | {spread} | {target} | {'-' if met is None else ('yes' if met else 'no')} |")
        out["cases"][cid] = {
            "what": c["what"],
            "metric": {"ratio": "A/B", "delta": "A-B (ns per frame)", "value": f"A ({c['unit']})"}[c["kind"]],
            "ratio": med,
            "spread": [lo, hi],
            "target": f"{c['op']} {c['target']:g}" if c["op"] != "info" else None,
            "met": met,
            "unit": c["unit"],
            "generator": c["generator"],
            "raw": {
                "rounds": rounds,
                "a": [c["a"][r] for r in rounds],
                "b": [c["b"][r] for r in rounds] if c["kind"] != "value" else None,
                "per_round": per,
                **c["notes"],
            },
        }
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
