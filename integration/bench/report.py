"""The benchmark's records, and their Markdown table and JSON (docs/benchmarks.md).

Each case is declared once (`Records.case`) with
  kind "ratio": per round A/B; "delta": per round A-B (unit ns);
       "value": one configuration only, per round A (unit as given: frames, s, ms, %, MiB);
  op ">=" or "<=": how the median compares with target to be met; "info": no target (met null).
Then every measurement of configuration A or B in a round (`val`) and extra raw
figures kept in the JSON (`note`). Per case the per-round figures are paired by
round; their median is the result and min..max the spread.
"""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

KINDS = ("ratio", "delta", "value")
OPS = (">=", "<=", "info")


@dataclass
class Case:
    id: str
    what: str
    kind: str
    op: str
    target: float
    unit: str
    generator: str
    a: dict[int, float] = field(default_factory=dict)
    b: dict[int, float] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


class Records:
    def __init__(self) -> None:
        self.cases: dict[str, Case] = {}

    def case(self, cid: str, what: str, kind: str, op: str, target: float, unit: str, generator: str) -> None:
        assert kind in KINDS and op in OPS, (cid, kind, op)
        self.cases[cid] = Case(cid, what, kind, op, float(target), unit, generator)

    def val(self, cid: str, rnd: int, cfg: str, value: float) -> None:
        (self.cases[cid].a if cfg == "A" else self.cases[cid].b)[int(rnd)] = float(value)

    def note(self, cid: str, key: str, value: Any) -> None:
        self.cases[cid].notes[key] = value

    # ------------------------------------------------------------ results

    def results(self, meta: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
        """The Markdown table's lines and the JSON document."""
        out: dict[str, Any] = {"meta": meta, "cases": {}}
        lines = ["| id | what | A | B | ratio | spread | target | met |", "|---|---|---|---|---|---|---|---|"]
        for c in self.cases.values():
            rounds = sorted(set(c.a) if c.kind == "value" else set(c.a) & set(c.b))
            per = []
            for r in rounds:
                va, vb = c.a[r], c.b.get(r)
                if c.kind == "ratio":
                    per.append(va / vb if vb > 0 else math.nan)
                elif c.kind == "value":
                    per.append(va)
                else:
                    per.append(va - vb)
            med = statistics.median(per) if per else None
            lo, hi = (min(per), max(per)) if per else (None, None)
            med_a = statistics.median(c.a[r] for r in rounds) if rounds else None
            med_b = statistics.median(c.b[r] for r in rounds) if rounds and c.kind != "value" else None
            met = None
            if med is not None and c.op in (">=", "<="):
                met = med >= c.target if c.op == ">=" else med <= c.target
            if c.kind == "ratio":
                shown = f"{med:.3f}" if med is not None else "-"
                spread = f"{lo:.3f}..{hi:.3f}" if per else "-"
                target = f"{c.op} {c.target:g}" if c.op != "info" else "-"
            elif c.kind == "value":
                u = c.unit
                shown = f"{med:g} {u}" if med is not None else "-"
                spread = f"{lo:g}..{hi:g} {u}" if per else "-"
                target = f"{c.op} {c.target:g} {u}" if c.op != "info" else "-"
            else:
                shown = f"{med:+.1f} ns" if med is not None else "-"
                spread = f"{lo:+.1f}..{hi:+.1f} ns" if per else "-"
                target = f"{c.op} {c.target:g} ns" if c.op != "info" else "-"
            lines.append(f"| {c.id} | {c.what} | {_fmt(med_a, c.unit)} | {_fmt(med_b, c.unit)} | "
                         f"{shown} | {spread} | {target} | {'-' if met is None else ('yes' if met else 'no')} |")
            out["cases"][c.id] = {
                "what": c.what,
                "metric": {"ratio": "A/B", "delta": "A-B (ns per frame)", "value": f"A ({c.unit})"}[c.kind],
                "ratio": med,
                "spread": [lo, hi],
                "target": f"{c.op} {c.target:g}" if c.op != "info" else None,
                "met": met,
                "unit": c.unit,
                "generator": c.generator,
                "raw": {
                    "rounds": rounds,
                    "a": [c.a[r] for r in rounds],
                    "b": [c.b[r] for r in rounds] if c.kind != "value" else None,
                    "per_round": per,
                    **c.notes,
                },
            }
        return lines, out


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "pps":
        return f"{value / 1e6:.3f} Mpps"
    if unit == "bps":
        return f"{value / 1e9:.2f} Gbit/s"
    if unit == "ns":
        return f"{value:.1f} ns"
    return f"{value:g} {unit}"


def write_json(path: str, doc: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
