"""The README's demo command works as written; ported from
scripts/tests/01-readme-demo.sh.

The command is taken from the README's "Try it" code block (so the two cannot
drift) and run exactly as written, from the repository root, with `bash -c`.
With HNXDP set (as scripts/test.sh sets it) the demo uses that binary instead
of building. The demo (scripts/demo.sh) checks itself: it exits 0 only when
every check it makes passed. What it made, its rig's namespaces and its
guest's pins, must be gone afterwards; the demo names them in its output
("rig: NAME up (guest netns inode N, ...)"), which is where they are found.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from lib.hnxdp import pin_root
from lib.proc import Result, run
from lib.rig import NETNS_DIR, repo_root

DEMO_TIMEOUT = 900


def readme_demo_command(readme: Path) -> str | None:
    """The line naming demo.sh in the first code block of the "## Try it" section."""
    in_try, in_block = False, False
    for line in readme.read_text().splitlines():
        if not in_block and line.startswith("## "):
            in_try = line.startswith("## Try it")
        elif in_try and line.startswith("```"):
            if in_block:
                return None
            in_block = True
        elif in_block and "demo.sh" in line:
            return line
    return None


@dataclass(frozen=True)
class Demo:
    command: str
    result: Result

    def rig(self) -> tuple[str, int]:
        """The demo's rig id and its guest's netns inode, as the demo printed them."""
        m = re.search(r"^rig: (hnxrig-\S+) up \(guest netns inode (\d+),", self.result.out, re.M)
        assert m, "the demo never reported its rig ('rig: NAME up (guest netns inode N, ...')"
        return m.group(1), int(m.group(2))


@pytest.fixture(scope="module")
def demo(hnxdp_binary: Path) -> Iterator[Demo]:
    command = readme_demo_command(repo_root() / "README.md")
    assert command, 'README.md has no line naming demo.sh in the code block of its "Try it" section'
    r = run(["bash", "-c", command], timeout=DEMO_TIMEOUT, env={"HNXDP": str(hnxdp_binary)}, cwd=repo_root())
    yield Demo(command, r)


def test_readme_demo_command_exits_0(demo: Demo) -> None:
    assert demo.result.rc == 0, f"the README's demo command exited {demo.result.rc}: " \
                                f"{demo.result.out[-2000:]}{demo.result.err[-1000:]}"
    assert re.search(r"^demo: [1-9][0-9]* passed, 0 failed$", demo.result.out, re.M), \
        "the demo printed its success tally"


def test_demo_leaves_no_namespace(demo: Demo) -> None:
    rig_id, _ = demo.rig()
    left = sorted(p.name for p in NETNS_DIR.glob(f"{rig_id}-*"))
    assert left == [], f"namespaces of the demo's rig left: {left}"


def test_demo_leaves_no_pins(demo: Demo) -> None:
    _, ino = demo.rig()
    pins = pin_root() / str(ino)
    assert not pins.exists(), f"pins of the demo's guest left: {pins}"
