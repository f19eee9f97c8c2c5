"""Prometheus metrics of `hnxdp run` (docs/metrics.md): the loopback HTTP
endpoint, seen from inside the guest, the text format parsed, and Debian's
`promtool check metrics`.

    text = scrape(rig, "127.0.0.1", 9469)
    m = Exposition.parse(text)
    m.value("hnxdp_pair_state", synthetic="hn0", state="active")   # -> 1.0
    assert_promtool_ok(rig, text, "after traffic")
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .proc import run
from .rig import python

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

_HTTP = r"""
import sys, urllib.request, urllib.error
host, port, path, method = sys.argv[1:5]
url = f"http://{host}:{port}{path}"
req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        print(r.status); sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code)
"""


def http(rig: Any, host: str, port: int, path: str = "/metrics", method: str = "GET") -> tuple[int, str]:
    """One request from inside the guest (the endpoint lives in its namespace):
    (status, body). host as in a URL: 127.0.0.1 or [::1]."""
    r = rig.g(python(), "-c", _HTTP, host, str(port), path, method, timeout=30)
    status, _, body = r.out.partition("\n")
    return int(status), body


def scrape(rig: Any, host: str, port: int) -> str:
    status, body = http(rig, host, port)
    assert status == 200, f"GET http://{host}:{port}/metrics answered {status}"
    return body


@dataclass(frozen=True)
class Exposition:
    """Samples of a text exposition: (name, sorted labels) -> value."""

    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    @classmethod
    def parse(cls, text: str) -> "Exposition":
        samples = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = _SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
            samples[(m.group(1), labels)] = float(m.group(3))
        return cls(samples)

    def value(self, name: str, **labels: str) -> float | None:
        """The sample with exactly these labels; None when absent."""
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def counter(self, name: str, synthetic: str) -> int:
        """A per-pair counter's value, which must be present and an integer."""
        v = self.value(name, synthetic=synthetic)
        assert v is not None and v == int(v) and v >= 0, f"{name}{{synthetic={synthetic!r}}} is {v!r}"
        return int(v)

    def series(self, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
        """Every sample of name whose labels include these: (labels, value)."""
        out = []
        for (n, ls), v in sorted(self.samples.items()):
            d = dict(ls)
            if n == name and all(d.get(k) == val for k, val in labels.items()):
                out.append((d, v))
        return out


def assert_promtool_ok(rig: Any, text: str, what: str) -> None:
    """`promtool check metrics` accepts the exposition (exit 0)."""
    path = rig.tmp / "promtool-input.prom"
    path.write_text(text)
    r = run(["sh", "-c", 'exec promtool check metrics <"$0"', str(path)], timeout=60)
    assert r.rc == 0, f"{what}: promtool check metrics exited {r.rc}: {(r.out + r.err).strip()[:800]}"


def listening(rig: Any, port: int) -> list[str]:
    """Local addresses the guest listens on with TCP port port (ss)."""
    out = rig.g("ss", "-Hltn", f"sport = :{port}").out
    return [line.split()[3] for line in out.splitlines() if line.strip()]
