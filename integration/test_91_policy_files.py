"""The packaged files that keep network managers off a VF hnxdp will join
(issue 11 part 3; docs/guests.md), on the rig's real devices; ported from
scripts/tests/91-policy-files.sh.

1. `hnxdp udev IF` in the guest: with a config naming hn0 (veth is not
   virtio_net, so the rig names its synthetic as a user would), hn0 is
   HNXDP_ROLE=synthetic and vf0 HNXDP_ROLE=vf-candidate with
   HNXDP_SYNTHETIC=hn0; --name counts for the device itself. Nothing is
   printed (exit 0) for devices hnxdp would not manage; a config that does not
   parse or a device that does not exist print nothing and one stderr line
   (exit 0); a bad interface name is usage (exit 2). It changes nothing.
2. The udev rule, run by a real `udevadm test` (systemd 252), and
3. systemd-networkd 252, real, with a catch-all .network matching the shared
   MAC: both in a sandbox (lib/policy_sandbox.py).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from lib.checks import assert_one_stderr_line, assert_unchanged
from lib.proc import run
from lib.rig import Rig, open_rig, repo_root

UDEV_TOOLS = Path("/usr/local/lib/hnxdp-tests/udev/bin/udevadm")  # what scripts/install-deps.sh unpacks
NETWORKD = Path("/lib/systemd/systemd-networkd")
OTHER_MAC = "02:48:4e:aa:bb:cc"


def udevadm() -> str:
    path = os.environ.get("HNXDP_UDEVADM") or shutil.which("udevadm") or str(UDEV_TOOLS)
    assert os.access(path, os.X_OK), f"no udevadm at {path} (run scripts/install-deps.sh)"
    return path


# ---------------------------------------------------------------- 1. hnxdp udev

CONFIGS = {
    "hn0": "synthetic = hn0\n",
    "renamed": "synthetic = hn9\n",
    "none": None,  # --config /dev/null
    "off": "synthetic = hn0\ntransparent = off\n",
    "bad": "synthetic = hn0\nsettle-ms = soon\n",
}


def other_mac(rig: Rig) -> None:
    rig.ip(rig.guest, "link", "set", "vf0", "address", OTHER_MAC)


def bridge_port(rig: Rig) -> None:
    rig.ip(rig.guest, "link", "add", "br9", "type", "bridge")
    rig.ip(rig.guest, "link", "set", "vf0", "master", "br9")


@dataclass(frozen=True)
class Case:
    device: str
    config: str
    out: str  # stdout, lines joined by spaces
    rc: int = 0
    stderr_lines: int = 0
    stderr_has: str = ""
    name: str | None = None  # --name
    setup: Callable[[Rig], None] | None = None


CASES = {
    "vf0 is the VF candidate of hn0": Case("vf0", "hn0", "HNXDP_ROLE=vf-candidate HNXDP_SYNTHETIC=hn0"),
    "hn0 is a synthetic": Case("hn0", "hn0", "HNXDP_ROLE=synthetic"),
    "hn0 about to be renamed hn9 (--name), hn9 listed": Case("hn0", "renamed", "HNXDP_ROLE=synthetic", name="hn9"),
    "vf0 while no synthetic hn9 exists yet": Case("vf0", "renamed", ""),
    "no config: vf0 (no virtio_net synthetic)": Case("vf0", "none", ""),
    "no config: hn0": Case("hn0", "none", ""),
    "vf0 with another MAC": Case("vf0", "hn0", "", setup=other_mac),
    "vf0 as a bridge port": Case("vf0", "hn0", "", setup=bridge_port),
    "transparent = off: vf0 left to the system": Case("vf0", "off", ""),
    "a config that does not parse": Case("vf0", "bad", "", stderr_lines=1, stderr_has="line 2"),
    "a device that does not exist": Case("nosuchdev0", "hn0", "", stderr_lines=1),
    "an invalid interface name": Case("bad/name", "hn0", "", rc=2, stderr_lines=1),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES)
def test_udev_helper(rig: Rig, case: Case) -> None:
    text = CONFIGS[case.config]
    config = "/dev/null" if text is None else str(rig.tmp / f"{case.config}.conf")
    if text is not None:
        Path(config).write_text(text)
    if case.setup:
        case.setup(rig)
    devices = ("hn0", "vf0")
    before = rig.snapshot(devices)
    r = rig.hnxdp("udev", case.device, *(("--name", case.name) if case.name else ()), "--config", config)
    assert r.rc == case.rc, str(r)
    assert " ".join(r.out.split()) == case.out, f"stdout: {r.out!r}"
    if case.stderr_lines:
        assert_one_stderr_line(r, case.device)
        assert case.stderr_has in r.err, f"stderr names {case.stderr_has!r}: {r.err!r}"
    else:
        assert r.err == "", f"stderr: {r.err!r}"
    assert_unchanged(before, rig.snapshot(devices), "hnxdp udev")


# ---------------------------------------------------------------- 2., 3. the sandbox

def host_run_state() -> str:
    """What the sandbox must not leave outside: the udev database and networkd state in /run."""
    listing = run(["ls", "-lR", "/run/udev", "/run/systemd/netif", "/run/systemd/network"]).out
    return hashlib.sha256(listing.encode()).hexdigest()


@dataclass
class Sandboxes:
    rig: Rig
    with_file: dict
    without_file: dict  # the control: no 05-hnxdp-vf.network
    host_before: str
    host_after: str


def sandbox(rig: Rig, network_file: str) -> dict:
    repo = repo_root()
    config = rig.tmp / "hnxdp.conf"
    config.write_text("synthetic = hn0\n")
    log = rig.tmp / f"networkd-{Path(network_file).name}.log"
    r = run(["nsenter", f"--net=/run/netns/{rig.guest}", "--", "unshare", "--mount", "--propagation", "private",
             "python3", "-B", str(repo / "integration" / "lib" / "policy_sandbox.py"),
             "--hnxdp", str(rig.binary), "--config", str(config),
             "--rule", str(repo / "packaging" / "udev" / "81-hnxdp.rules"), "--network-file", network_file,
             "--udevadm", udevadm(), "--networkd", str(NETWORKD), "--mac", rig.mac, "--log", str(log)], timeout=90)
    assert r.rc == 0, f"sandbox ({network_file}): {r}; networkd: {log.read_text()[-1500:] if log.exists() else ''}"
    return json.loads(r.out)


@pytest.fixture(scope="module")
def sandboxes(hnxdp_binary: Path) -> Iterator[Sandboxes]:
    """Both sandboxes, once, on one rig with a device of another MAC (other0)."""
    assert os.access(NETWORKD, os.X_OK), f"no {NETWORKD} (run scripts/install-deps.sh: package systemd)"
    with open_rig(hnxdp_binary) as rig:
        g = rig.guest
        rig.ip(g, "link", "add", "other0", "type", "veth", "peer", "name", "other0p")
        rig.ip(g, "link", "set", "other0", "address", "02:48:4e:aa:bb:cd")
        rig.ip(g, "link", "set", "other0", "up")
        before = host_run_state()
        with_file = sandbox(rig, str(repo_root() / "packaging" / "network" / "05-hnxdp-vf.network"))
        without_file = sandbox(rig, "none")
        yield Sandboxes(rig, with_file, without_file, before, host_run_state())


def test_rule_marks_the_vf_candidate(sandboxes: Sandboxes) -> None:
    """The rule's program ran (HNXDP_ROLE comes from it only) and vf0 is kept
    from NetworkManager and networkd 256+."""
    props = sandboxes.with_file["udev"]["add-vf0"]["properties"]
    got = {k: props.get(k) for k in ("HNXDP_ROLE", "HNXDP_SYNTHETIC", "NM_UNMANAGED", "ID_NET_MANAGED_BY")}
    assert got == {"HNXDP_ROLE": "vf-candidate", "HNXDP_SYNTHETIC": "hn0", "NM_UNMANAGED": "1",
                   "ID_NET_MANAGED_BY": "hnxdp"}


def test_rule_synthetic_on_add_retriggers_its_mac(sandboxes: Sandboxes) -> None:
    rig = sandboxes.rig
    add = sandboxes.with_file["udev"]["add-hn0"]
    assert add["properties"].get("HNXDP_ROLE") == "synthetic"
    assert "NM_UNMANAGED" not in add["properties"] and "ID_NET_MANAGED_BY" not in add["properties"]
    trigger = f"/bin/udevadm trigger --action=change --subsystem-match=net --attr-match=address={rig.mac}"
    assert add["run"].count(trigger) == 1, f"RUN of add hn0: {add['run']}"


def test_rule_synthetic_on_change_no_retrigger(sandboxes: Sandboxes) -> None:
    change = sandboxes.with_file["udev"]["change-hn0"]
    assert change["properties"].get("HNXDP_ROLE") == "synthetic"
    assert change["run"] == [], f"RUN of change hn0: {change['run']}"


def test_rule_leaves_a_device_of_another_mac_alone(sandboxes: Sandboxes) -> None:
    other = sandboxes.with_file["udev"]["add-other0"]
    marked = [k for k in other["properties"] if k.startswith("HNXDP_") or k in ("NM_UNMANAGED", "ID_NET_MANAGED_BY")]
    assert (marked, other["run"]) == ([], [])


def test_networkd_with_the_network_file_leaves_the_vf_unmanaged(sandboxes: Sandboxes) -> None:
    state = sandboxes.with_file["networkd"]
    assert state["hn0"] == {"admin_state": "configured", "network_file": "50-cloud-init-like.network",
                            "has_address": True}, "hn0 configured by the MAC match"
    assert state["vf0"] == {"admin_state": "unmanaged", "network_file": "", "has_address": False}


def test_networkd_without_the_network_file_configures_the_vf(sandboxes: Sandboxes) -> None:
    """The control: what 05-hnxdp-vf.network prevents."""
    assert sandboxes.without_file["networkd"]["vf0"] == {
        "admin_state": "configured", "network_file": "50-cloud-init-like.network", "has_address": True}


def test_sandbox_leaves_nothing_outside(sandboxes: Sandboxes) -> None:
    assert sandboxes.host_after == sandboxes.host_before, "udev database or networkd state left in the host's /run"
