"""hnxdp.service in a real guest booted with systemd as pid 1 (issue 12),
ported from scripts/tests/99-vm-systemd.sh: the guest of lib/vm.py with
init="systemd" (Debian's 6.12 kernel, Debian's systemd from the host's root in
the guest's throw-away overlay), a virtio-net synthetic and an e1000e VF.

The package: scripts/package.sh builds the .deb (HNXDP_DEB: use that one; the
build uses $HNXDP_PACKAGE_SCRATCH or .build). Before systemd starts, the
guest's early pid 1 runs `dpkg -i` of it and `systemctl enable hnxdp`
(Guest.preboot); nothing else starts the service.

The tests of this module are one story on one booted system, in file order:
boot, an unplug and a replug, reloads, a restart, a stop, the journal, the
unit's security, removal and purge of the package.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from lib.daemon import wait_pair
from lib.proc import run
from lib.rig import repo_root
from lib.vm import G4, KERNEL_6_12, Guest, Pinger, open_guest, prepare_kernel
from lib.wait import wait_until

G_HNXDP = "/usr/sbin/hnxdp"  # the packaged binary, installed in the guest
CONF = "/etc/hnxdp/hnxdp.conf"


@dataclass
class System:
    guest: Guest
    version: str  # the package's hnxdp --version
    syn: str = ""

    def show(self, prop: str, unit: str = "hnxdp.service") -> str:
        return self.guest.exec("systemctl", "show", unit, "-p", prop, "--value", check=True).out.strip()

    def journal(self, *args: str) -> str:
        """The unit's journal, message text only."""
        return self.guest.exec("journalctl", "-u", "hnxdp.service", "--no-pager", "-o", "cat", *args).out

    def pair(self) -> dict[str, Any]:
        p = self.guest.hnxdp.pair(self.syn)
        assert p is not None, f"no pair of {self.syn} in dump --json"
        return p

    def wait_pair(self, cond: Any, what: str, timeout: float = 180) -> dict[str, Any]:
        return wait_pair(self.guest, cond, timeout, what, synthetic=self.syn, interval=0.5)

    def vf(self) -> tuple[str, int]:
        name = self.guest.vf_name()
        return name, self.guest.ifindex(name)

    def records(self) -> int:
        return int(self.guest.sh("ls /run/hnxdp/*/pair-*.json 2>/dev/null | wc -l", check=True).out)

    def systemctl(self, *args: str) -> None:
        r = self.guest.exec("systemctl", *args, timeout=180)
        assert r.rc == 0, f"systemctl {' '.join(args)}: {r}"


def package(tmp: Path) -> Path:
    """HNXDP_DEB, or the package scripts/package.sh builds from this tree."""
    if os.environ.get("HNXDP_DEB"):
        src = Path(os.environ["HNXDP_DEB"])
        assert src.is_file(), f"HNXDP_DEB={src} is not readable"
        return Path(shutil.copy(src, tmp / src.name))
    r = run([str(repo_root() / "scripts" / "package.sh"), "--scratch-path",
             os.environ.get("HNXDP_PACKAGE_SCRATCH") or ".build", "--out", str(tmp)], timeout=3600)
    assert r.rc == 0, f"scripts/package.sh failed: {r.err[-2000:]}"
    return Path(r.out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def system(hnxdp_binary: Path) -> Iterator[System]:
    kernel = prepare_kernel(KERNEL_6_12)
    tmp = Path(tempfile.mkdtemp(prefix=f"hnxvm-{os.getpid()}.pkg.", dir="/tmp"))
    try:
        tmp.chmod(0o755)
        deb = package(tmp)
        run(["dpkg-deb", "-x", str(deb), str(tmp / "root")], timeout=120, check=True)
        version = run([str(tmp / "root" / "usr" / "sbin" / "hnxdp"), "--version"], check=True).out.split()[1]
        # The guest's root is a throw-away overlay of the host's: a container host's
        # policy-rc.d (exit 101: no service actions) would keep the maintainer
        # scripts' deb-systemd-invoke from stopping the service, which a real machine allows.
        preboot = tmp / "preboot.sh"
        preboot.write_text(f"set -e\nrm -f /usr/sbin/policy-rc.d\ndpkg -i {deb}\nsystemctl enable hnxdp.service\n")
        with open_guest(kernel, Path(G_HNXDP), vf_driver="e1000e", init="systemd", preboot=preboot) as g:
            print(f"boot: {g.boot_s:.1f}s from QEMU's start to 'systemctl is-system-running' = {g.systemd_state}; "
                  f"{g.exec('systemd-analyze', 'time').out.splitlines()[:1]}")
            yield System(g, version)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_started_at_boot_and_joined(system: System) -> None:
    """hnxdp.service, enabled by dpkg before systemd started, is active/running
    (Type=notify: READY=1 came with a STATUS), was active before
    multi-user.target, never restarted, and joined the VF by itself."""
    s, g = system, system.guest
    assert g.systemd_state in ("running", "degraded"), f"is-system-running: {g.systemd_state!r}"
    assert g.read("/proc/1/comm").strip() == "systemd"
    pre = g.read("/var/log/hnxvm-preboot.log")
    assert pre.splitlines()[-1:] == ["exit 0"], f"dpkg -i and systemctl enable before systemd: {pre!r}"
    assert g.exec("dpkg-query", "-W", "-f", "${Status} ${Version}", "hnxdp").out == f"install ok installed {s.version}"
    assert g.exec("systemctl", "is-enabled", "hnxdp.service").out.strip() == "enabled"
    assert (s.show("ActiveState"), s.show("SubState"), s.show("Type")) == ("active", "running", "notify")
    assert "managing 1 synthetic(s)" in s.show("StatusText"), s.show("StatusText")
    svc_up = int(s.show("ActiveEnterTimestampMonotonic"))
    mu_up = int(s.show("ActiveEnterTimestampMonotonic", "multi-user.target"))
    assert 0 < svc_up <= mu_up, f"hnxdp.service active at {svc_up} us, multi-user.target at {mu_up} us"
    assert s.show("NRestarts") == "0"
    assert g.exec("findmnt", "-n", "-o", "FSTYPE", "/sys/fs/bpf").out.strip() == "bpf", \
        "bpffs is mounted in the system's mount namespace"

    syns = g.dev_by_driver("virtio_net")
    assert len(syns) == 1, syns
    s.syn = syns[0]
    vf, idx = s.vf()
    p = s.wait_pair(lambda p: p and p["state"] == "active" and (p["vf"] or {}).get("ifindex") == idx,
                    f"the service joined {vf} (ifindex {idx})")
    assert p["transparent"] and not p["explicit"], f"the service made the pair of {s.syn} by itself: {p}"
    # Nothing configured the network: the synthetic up (hnxdp passes it down to the VF).
    g.sh(f"ip addr add {G4}/24 dev {s.syn} && ip link set {s.syn} up", check=True)
    s.wait_pair(lambda p: p and p["state"] == "active" and p["datapath"] == "vf", f"{s.syn} up: datapath vf")
    g.switch("vf")
    wait_until(lambda: g.pings(1) == 1, 120, "the guest answers pings")
    g.assert_via_vf("started at boot")


def test_planned_unplug_and_replug(system: System) -> None:
    s, g = system, system.guest
    _, old_idx = s.vf()
    g.switch("syn")
    g.unplug_vf()
    s.wait_pair(lambda p: p and p["state"] == "idle" and p["vf"] is None and p["datapath"] == "synthetic",
                "unplug: pair idle, datapath synthetic, no VF")
    assert g.pings(3) == 3, "unplug: the synthetic answers pings"
    g.plug_vf()
    vf, idx = g.wait_vf()
    assert idx != old_idx, "replug: the new VF has a new ifindex"
    p = s.wait_pair(lambda p: p and p["state"] == "active" and p["datapath"] == "vf"
                    and (p["vf"] or {}).get("ifindex") == idx, f"replug: pair active with {vf}")
    left = [h for h in p["switch_history"] if h["direction"] == "to-synthetic"]
    assert left and (left[-1]["reason"], left[-1]["vf_ifindex"]) == ("departed", old_idx), \
        f"the departure of ifindex {old_idx} in the switch history: {p['switch_history']}"
    g.switch("vf")
    g.assert_via_vf("after the replug")


def test_reload(system: System) -> None:
    """systemctl reload: settle-ms 2000 -> 500 applied, a file that does not
    parse changes nothing (error), a `transparent` change is refused (warning);
    the same main pid throughout, the pair untouched."""
    s, g = system, system.guest
    pid0, p0 = s.show("MainPID"), s.pair()

    def reload(what: str, logged: str) -> None:
        s.systemctl("reload", "hnxdp.service")
        wait_until(lambda: logged in s.journal(), 120, f"{what}: the journal says {logged!r}", interval=0.5)

    g.sh(f"echo 'settle-ms = 500' >>{CONF} && cp {CONF} /tmp/hnxdp.conf.good", check=True)
    reload("settle-ms 500", "settle-ms 2000 -> 500")
    assert s.show("MainPID") == pid0 and s.show("ActiveState") == "active"
    assert "1 pair(s) joined" in s.show("StatusText"), s.show("StatusText")
    p = s.pair()
    assert (p["switches"], p["vf"]["ifindex"]) == (p0["switches"], p0["vf"]["ifindex"]), "the pair untouched"
    g.sh(f"echo 'hold-down-ms = banana' >>{CONF}", check=True)
    reload("a file that does not parse", "keeping the settings in use")
    g.sh(f"cp /tmp/hnxdp.conf.good {CONF} && echo 'transparent = off' >>{CONF}", check=True)
    reload("transparent off", "transparent on -> off is not applied")
    g.sh(f"cp /tmp/hnxdp.conf.good {CONF}", check=True)
    s.systemctl("reload", "hnxdp.service")
    p = s.pair()
    assert s.show("MainPID") == pid0, "after the reloads: same main pid"
    assert (p["state"], p["switches"]) == ("active", p0["switches"]), "after the reloads: the pair untouched"
    g.assert_via_vf("after the reloads")


def test_restart_adopts(system: System) -> None:
    """systemctl restart while pings run: a new main pid adopts the pair (no
    new switch, same VF, one hnxdp program on each hook), at most 1 ping lost."""
    s, g = system, system.guest
    pid0, p0 = s.show("MainPID"), s.pair()
    pinger = Pinger.start(g)
    wait_until(lambda: pinger.proc.output().count("bytes from") >= 5, 60, "pings answered")
    s.systemctl("restart", "hnxdp.service")
    assert s.show("MainPID") != pid0, "restart: a new main pid"
    # Type=notify: restart returns once the new invocation sent READY=1, after adopting.
    assert s.show("ActiveState") == "active" and "1 pair(s) joined" in s.show("StatusText"), s.show("StatusText")
    answered = pinger.proc.output().count("bytes from")
    wait_until(lambda: pinger.proc.output().count("bytes from") >= answered + 5, 60, "pings after the restart")
    stats = pinger.stop()
    print(f"restart: ping: {stats.transmitted} sent, {stats.received} received")
    assert stats.transmitted >= 10 and stats.lost <= 1, f"restart: {stats}"
    p = s.pair()
    assert (p["state"], p["switches"], p["vf"]["ifindex"]) == ("active", p0["switches"], p0["vf"]["ifindex"]), \
        f"restart: adopted, no new switch, same VF: {p}"
    assert g.hook_programs(s.syn, p["vf"]["name"]) == (1, 1, 1), "one hnxdp program on each hook"
    g.assert_via_vf("after the restart")


def test_stop_leaves_datapath(system: System) -> None:
    s, g = system, system.guest
    s.systemctl("stop", "hnxdp.service")
    assert (s.show("ActiveState"), s.show("Result")) == ("inactive", "success"), "run exited 0 on SIGTERM"
    assert g.pin_count() >= 1, "the datapath stays pinned"
    p = s.pair()
    assert p["state"] == "active"
    assert g.hook_programs(s.syn, p["vf"]["name"]) == (1, 1, 1)
    g.assert_via_vf("after systemctl stop")


def test_journal_priorities(system: System) -> None:
    """`journalctl -u hnxdp -p warning` shows warnings and errors only (it has
    both: the reloads'), the unit's journal has hnxdp's info entries too, and
    no message carries a <N> priority prefix."""
    s, g = system, system.guest

    def entries(*args: str) -> list[dict[str, Any]]:
        out = g.exec("journalctl", "-u", "hnxdp.service", "--no-pager", "-o", "json", *args, check=True).out
        return [e for e in map(json.loads, out.splitlines()) if e.get("SYSLOG_IDENTIFIER") == "hnxdp"]

    warn = entries("-p", "warning")
    prios = {int(e["PRIORITY"]) for e in warn}
    print(f"hnxdp's journal entries with -p warning by priority: {sorted(prios)}")
    assert prios and max(prios) <= 4, f"-p warning: priorities {prios}"
    assert {3, 4} <= prios, f"-p warning: the error (3) and the warning (4) of the reloads: {prios}"
    assert 6 in {int(e["PRIORITY"]) for e in entries()}, "the unit's journal has hnxdp's info entries"
    assert any("keeping the settings in use" in e.get("MESSAGE", "") for e in warn)
    assert not re.search(r"(?m)^<[0-9]>", s.journal()), "no entry starts with a priority prefix"


def test_security_exposure(system: System) -> None:
    out = system.guest.exec("systemd-analyze", "security", "hnxdp.service", "--no-pager").out
    m = re.search(r"Overall exposure level for hnxdp.service: (.*)", out)
    assert m, f"no exposure score: {out[-300:]!r}"
    score = re.sub(r"\x1b\[[0-9;]*m", "", m.group(1))
    print(f"systemd-analyze security hnxdp: exposure {score}")


def test_dpkg_remove_and_purge(system: System) -> None:
    """dpkg -r while the service runs: prerm stops it; the binary goes, the
    conffile, the write-ahead record and the pinned datapath stay. dpkg --purge:
    /etc/hnxdp and the enablement go, the record stays."""
    s, g = system, system.guest
    s.systemctl("start", "hnxdp.service")
    assert s.records() == 1, "a write-ahead record of the joined pair"
    r = g.exec("dpkg", "-r", "hnxdp", timeout=300)
    assert r.rc == 0, f"dpkg -r hnxdp: {r}"
    assert g.exec("systemctl", "is-active", "hnxdp.service").out.strip() == "inactive", "prerm stopped the service"
    assert not g.exists(G_HNXDP), "the binary is gone"
    assert g.exists(CONF), "the conffile stays"
    assert s.records() == 1, "the write-ahead record stays"
    assert g.pin_count() >= 1, "the datapath stays pinned"
    g.assert_via_vf("after dpkg -r")
    r = g.exec("dpkg", "--purge", "hnxdp", timeout=300)
    assert r.rc == 0, f"dpkg --purge hnxdp: {r}"
    assert not g.exists("/etc/hnxdp"), "/etc/hnxdp is gone"
    assert g.sh("ls /etc/systemd/system/*.wants/hnxdp.service 2>/dev/null | wc -l").out.strip() == "0", \
        "the unit is not enabled any more"
    assert s.records() == 1, "the write-ahead record stays"
