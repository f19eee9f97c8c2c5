"""Machine-wide BPF state, read with bpftool (as the bash rig does).

Programs and links are global to the machine: other rigs and other users load
hnxdp programs too. What one rig made is identified by id (prog_exists,
link_exists); listings of every hnxdp program/link (hnxdp_progs, hnxdp_links)
are compared strictly only where nothing else runs (CI=1, see checks.py).
"""
from __future__ import annotations

import json

from .proc import run


def _bpftool_json(*args: str) -> list[dict]:
    r = run(["bpftool", "-j", *args], timeout=30)
    return json.loads(r.out or "[]") if r.rc == 0 else []


def hnxdp_progs() -> list[str]:
    """"id name" of every loaded program named hnxdp*."""
    return [f"{p['id']} {p['name']}" for p in sorted(_bpftool_json("prog", "show"), key=lambda p: p["id"])
            if p.get("name", "").startswith("hnxdp")]


def hnxdp_links() -> list[str]:
    """"link_id type prog_id prog_name" of every BPF link of a program named hnxdp*."""
    names = {p["id"]: p.get("name", "") for p in _bpftool_json("prog", "show")}
    out = []
    for link in sorted(_bpftool_json("link", "show"), key=lambda x: x["id"]):
        name = names.get(link.get("prog_id"), "")
        if name.startswith("hnxdp"):
            out.append(f"{link['id']} {link.get('type')} {link.get('prog_id')} {name}")
    return out


def hnxdp_link_ids() -> set[int]:
    return {int(line.split()[0]) for line in hnxdp_links()}


def prog_exists(prog_id: int) -> bool:
    return run(["bpftool", "prog", "show", "id", str(prog_id)], timeout=30).rc == 0


def link_exists(link_id: int) -> bool:
    return run(["bpftool", "link", "show", "id", str(link_id)], timeout=30).rc == 0


def pinned_link_id(path: str) -> int:
    r = run(["bpftool", "-j", "link", "show", "pinned", path], timeout=30, check=True)
    return int(json.loads(r.out)["id"])


def progs_named(name: str) -> list[str]:
    """"id name" of every loaded program called exactly name."""
    return [f"{p['id']} {p['name']}" for p in sorted(_bpftool_json("prog", "show"), key=lambda p: p["id"])
            if p.get("name") == name]


def pinned_prog_id(path: str) -> int:
    r = run(["bpftool", "-j", "prog", "show", "pinned", path], timeout=30, check=True)
    return int(json.loads(r.out)["id"])


def links_of(prog_ids: set[int]) -> list[str]:
    """"link_id prog_id" of every BPF link (machine-wide) whose program is one of prog_ids."""
    return [f"{link['id']} {link.get('prog_id')}"
            for link in sorted(_bpftool_json("link", "show"), key=lambda x: x["id"])
            if link.get("prog_id") in prog_ids]


def hnxdp_counts() -> dict[str, int]:
    """Machine-wide: hnxdp programs, hnxdp maps, links of hnxdp programs, tcx links."""
    progs = {p["id"] for p in _bpftool_json("prog", "show") if p.get("name", "").startswith("hnxdp")}
    links = _bpftool_json("link", "show")
    return {"progs": len(progs),
            "maps": sum(1 for m in _bpftool_json("map", "show") if m.get("name", "").startswith("hnxdp")),
            "links": sum(1 for link in links if link.get("prog_id") in progs),
            "tcx_links": sum(1 for link in links if str(link.get("type")) in ("11", "tcx"))}


def links_of_prog(prog_id: int) -> list[int]:
    """Ids of the BPF links (in any network namespace) of one program."""
    return sorted(int(link["id"]) for link in _bpftool_json("link", "show") if link.get("prog_id") == prog_id)
