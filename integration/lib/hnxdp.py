"""The hnxdp binary under test, run in one network namespace.

    g = Hnxdp(binary, netns="hnxrig-1-2-guest")
    g("attach", "--synthetic", "hn0", "--vf", "vf0")     # -> Result (never raises on rc)
    g.dump()                                             # parsed `dump --json`
    g.pair("hn0")["state"]                               # one pair of it, or None
    g.stats("hn0")["vf_rx_packets"]

hnxdp is entered with `nsenter --net` only (the host's mount namespace stays,
so /sys/fs/bpf and its pins are the real ones; `ip netns exec` would give it
a private /sys). The environment is the test process's (HNXDP_BPFFS,
HNXDP_STATE_DIR, HNXDP_TC_MODE pass through) plus `env`. State is read through
`dump --json` / `status --json` (docs/json.md), never through map bytes.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .proc import Result, run

DEFAULT_PIN_ROOT = "/sys/fs/bpf/hnxdp"


def binary_from_env(repo: Path) -> Path:
    """$HNXDP (relative to the current directory), else the debug build of
    `swift build`; absolute, since tests hand it to programs that run elsewhere."""
    return Path(os.environ.get("HNXDP") or repo / ".build" / "debug" / "hnxdp").absolute()


def pin_root() -> Path:
    """$HNXDP_BPFFS or hnxdp's default (the rig never passes --bpffs)."""
    return Path(os.environ.get("HNXDP_BPFFS") or DEFAULT_PIN_ROOT)


@dataclass
class Hnxdp:
    binary: Path
    netns: str
    env: Mapping[str, str] = field(default_factory=dict)
    timeout: float = float(os.environ.get("RIG_HNXDP_TIMEOUT", "60"))
    prefix: Sequence[str] = ()

    def argv(self, *args: str) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.netns}", "--", *self.prefix, str(self.binary), *args]

    def __call__(self, *args: str, timeout: float | None = None, stdin: str | None = None) -> Result:
        return run(self.argv(*args), timeout=timeout or self.timeout, env=self.env, stdin=stdin)

    def ok(self, *args: str) -> Result:
        """Run and require exit 0."""
        r = self(*args)
        assert r.rc == 0, f"hnxdp {' '.join(args)}: {r}"
        return r

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args).out)

    def dump(self, synthetic: str | None = None) -> dict[str, Any]:
        return self.json("dump", "--json", *(("--synthetic", synthetic) if synthetic else ()))

    def status(self) -> dict[str, Any]:
        return self.json("status", "--json")

    def pair(self, synthetic: str = "hn0") -> dict[str, Any] | None:
        """The pair whose synthetic is named so, from `dump --json` (None: no such pair)."""
        for p in self.dump()["pairs"]:
            if p["synthetic"].get("name") == synthetic:
                return p
        return None

    def stats(self, synthetic: str = "hn0") -> dict[str, int]:
        p = self.pair(synthetic)
        assert p is not None, f"dump --json has no pair of {synthetic}"
        return p["stats"]
