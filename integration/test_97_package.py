"""The Debian package of scripts/package.sh installs a hnxdp that works
without the Swift toolchain (issue 12); ported from scripts/tests/97-package.sh.

The package is built once for the module (release, static Swift runtime:
slow) into a scratch directory ($HNXDP_PACKAGE_SCRATCH, package.sh's
--scratch-path; default .build) and unpacked with `dpkg -x` into a throw-away
root. The packaged binary runs through a wrapper whose private mount
namespace shows the toolchain's directory (from `command -v swift`) empty.
"""
from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from lib.counters import PathCounters
from lib.proc import Result, run
from lib.rig import G4, Rig, open_rig, repo_root
from lib.traffic import UdpSink, udp_send

NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
N = 100


@dataclass(frozen=True)
class Package:
    deb: Path
    root: Path  # the package unpacked
    dir: Path  # scratch, world-readable (the binary also runs as nobody)
    toolchain: Path  # the Swift toolchain's directory, hidden from the wrapper
    wrapper: Path  # the packaged hnxdp without the toolchain

    @property
    def binary(self) -> Path:
        return self.root / "usr" / "sbin" / "hnxdp"

    def field(self, name: str) -> str:
        return run(["dpkg-deb", "-f", str(self.deb), name], check=True).out.strip()

    def control_file(self, name: str) -> str:
        """A file of the control archive ("" when absent)."""
        tar = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(self.deb)], capture_output=True, check=True).stdout
        r = subprocess.run(["tar", "-xO", f"./{name}"], input=tar, capture_output=True)
        return r.stdout.decode() if r.returncode == 0 else ""

    def text(self, path: str) -> str:
        return (self.root / path).read_text()

    def version(self) -> str:
        return run([str(self.binary), "--version"], check=True).out.split()[1]


def swift_toolchain() -> Path:
    swift = shutil.which("swift")
    assert swift, "no swift on PATH"
    toolchain = Path(swift).resolve().parent.parent
    assert str(toolchain) not in ("/", "/usr"), f"the toolchain at {toolchain} cannot be hidden"
    return toolchain


@pytest.fixture(scope="module")
def package() -> Iterator[Package]:
    scratch = Path(tempfile.mkdtemp(prefix="hnxdp-97-package."))
    scratch.chmod(0o755)
    try:
        root, empty = scratch / "root", scratch / "empty"
        root.mkdir()
        empty.mkdir()
        toolchain = swift_toolchain()
        r = run([str(repo_root() / "scripts" / "package.sh"), "--scratch-path",
                 os.environ.get("HNXDP_PACKAGE_SCRATCH") or ".build", "--out", str(scratch / "dist")], timeout=3600)
        assert r.rc == 0, f"scripts/package.sh failed: {r.err[-3000:]}"
        deb = Path(r.out.splitlines()[-1])
        run(["dpkg", "-x", str(deb), str(root)], check=True)
        wrapper = scratch / "hnxdp-packaged"
        wrapper.write_text(
            "#!/bin/sh\n"
            "exec unshare --mount --propagation private sh -c 'mount --bind \"$1\" \"$2\" && shift 2 && exec \"$@\"' _ \\\n"
            f"\t'{empty}' '{toolchain}' '{root}/usr/sbin/hnxdp' \"$@\"\n")
        wrapper.chmod(0o755)
        yield Package(deb, root, scratch, toolchain, wrapper)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ---------------------------------------------------------------- control fields, contents

def test_package_name_and_version(package: Package) -> None:
    assert package.field("Package") == "hnxdp"
    assert package.field("Version") == package.version(), "Version is hnxdp --version's"


@pytest.mark.parametrize("dep", ("libbpf1", "libxdp1", "libelf1", "zlib1g", "libc6 (>= "))
def test_depends_names(package: Package, dep: str) -> None:
    assert dep in package.field("Depends")


def test_depends_names_no_swift_package(package: Package) -> None:
    assert "swift" not in package.field("Depends")


def test_conffiles_is_the_config(package: Package) -> None:
    assert package.control_file("conffiles").strip() == "/etc/hnxdp/hnxdp.conf"


CONTENTS = ("-rwxr-xr-x ./usr/sbin/hnxdp", "-rw-r--r-- ./lib/systemd/system/hnxdp.service",
            "-rw-r--r-- ./lib/systemd/system/hnxdp-bpffs.service", "-rw-r--r-- ./etc/hnxdp/hnxdp.conf",
            "-rw-r--r-- ./usr/share/bash-completion/completions/hnxdp",
            "-rw-r--r-- ./usr/share/zsh/vendor-completions/_hnxdp",
            "-rw-r--r-- ./usr/share/fish/vendor_completions.d/hnxdp.fish",
            "-rw-r--r-- ./usr/share/man/man8/hnxdp.8.gz", "-rw-r--r-- ./usr/lib/udev/rules.d/81-hnxdp.rules",
            "-rw-r--r-- ./usr/lib/systemd/network/05-hnxdp-vf.network")


def contents(package: Package) -> list[list[str]]:
    return [line.split() for line in run(["dpkg-deb", "-c", str(package.deb)], check=True).out.splitlines()]


@pytest.mark.parametrize("entry", CONTENTS, ids=lambda e: e.split()[1])
def test_contains(package: Package, entry: str) -> None:
    assert entry in {f"{c[0]} {c[5]}" for c in contents(package)}


def test_every_file_owned_by_root(package: Package) -> None:
    assert {c[1] for c in contents(package)} == {"root/root"}


# ---------------------------------------------------------------- the installed tree

def test_binary_stripped(package: Package) -> None:
    assert ".symtab" not in run(["readelf", "-S", str(package.binary)], check=True).out


def test_binary_links_no_swift_library(package: Package) -> None:
    needed = [line for line in run(["objdump", "-p", str(package.binary)], check=True).out.splitlines()
              if "NEEDED" in line]
    assert needed and not [line for line in needed if "swift" in line], needed


def test_completions_and_man_page(package: Package) -> None:
    assert "hnxdp" in "\n".join(package.text("usr/share/bash-completion/completions/hnxdp").splitlines()[:5])
    assert "#compdef hnxdp" in package.text("usr/share/zsh/vendor-completions/_hnxdp").splitlines()[0]
    man = gzip.decompress((package.root / "usr/share/man/man8/hnxdp.8.gz").read_bytes()).decode()
    assert ".Dt HNXDP 8" in "\n".join(man.splitlines()[:20])


def test_example_config_sets_nothing(package: Package) -> None:
    settings = [line for line in package.text("etc/hnxdp/hnxdp.conf").splitlines()
                if line.strip() and not line.strip().startswith("#")]
    assert settings == [], "every line of the example config is a comment"


@pytest.mark.parametrize("key", ("synthetic", "settle-ms", "hold-down-ms", "flap-threshold", "transparent",
                                 "metrics-listen", "metrics-textfile"))
def test_example_config_documents(package: Package, key: str) -> None:
    assert f"#{key} = " in package.text("etc/hnxdp/hnxdp.conf")


def test_example_config_uncommented_parses(package: Package) -> None:
    """`run` parses the file before it needs privileges: as nobody, the
    uncommented example gets as far as asking for them."""
    conf = package.dir / "uncommented.conf"
    conf.write_text(re.sub(r"^#([a-z-]+ = )", r"\1", package.text("etc/hnxdp/hnxdp.conf"), flags=re.M))
    conf.chmod(0o644)
    r = run([*NOBODY, "--inh-caps=-all", "--bounding-set=-all", str(package.binary), "run", "--config", str(conf)])
    assert "invalid config" not in r.err, r.err
    assert "needs CAP_NET_ADMIN" in r.err, f"run as nobody asks for privileges: {r}"


def verify_units(package: Package) -> Result:
    # systemd-analyze wants ExecStart's binary to exist: the unit with the
    # throw-away root's path, verified beside hnxdp-bpffs.service (it requires it).
    unit = package.dir / "hnxdp.service"
    unit.write_text(package.text("lib/systemd/system/hnxdp.service").replace("/usr/sbin/hnxdp", str(package.binary)))
    shutil.copy(package.root / "lib/systemd/system/hnxdp-bpffs.service", package.dir)
    return run(["systemd-analyze", "verify", "--man=no", str(unit), str(package.dir / "hnxdp-bpffs.service")])


def test_units_pass_systemd_analyze_verify(package: Package) -> None:
    r = verify_units(package)
    assert (r.rc, r.out + r.err) == (0, ""), f"systemd-analyze verify: {r}"


UNIT_LINES = ("Type=notify", "ExecStart=/usr/sbin/hnxdp run", "ExecReload=/bin/kill -HUP $MAINPID", "WatchdogSec=",
              "RuntimeDirectoryPreserve=yes", "ProtectSystem=strict", "ReadWritePaths=/sys/fs/bpf /run/hnxdp",
              "LimitMEMLOCK=infinity", "Requires=hnxdp-bpffs.service", "SystemCallFilter=@system-service bpf",
              "SystemCallArchitectures=native", "RestrictAddressFamilies=AF_NETLINK AF_UNIX AF_INET AF_INET6",
              "RestrictNamespaces=yes", "MemoryDenyWriteExecute=yes", "PrivateDevices=yes", "UMask=0077")


@pytest.mark.parametrize("line", UNIT_LINES, ids=lambda x: x.split("=")[0])
def test_unit_has(package: Package, line: str) -> None:
    assert line in package.text("lib/systemd/system/hnxdp.service")


# ---------------------------------------------------------------- maintainer scripts, lintian

@pytest.mark.parametrize("script", ("postinst", "prerm", "postrm"))
def test_maintainer_script_is_there_and_parses(package: Package, script: str) -> None:
    body = package.control_file(script)
    assert "#!/bin/sh" in body, f"{script} is in the package"
    r = run(["sh", "-n", "-c", body])
    assert r.rc == 0, f"sh -n {script}: {r}"


MAINTAINER_LINES = {
    "postinst enables the unit the Debian way": ("postinst", "deb-systemd-helper enable hnxdp.service"),
    "postinst starts or restarts it": ("postinst", 'deb-systemd-invoke "$action" hnxdp.service'),
    "postinst reloads udev's rules": ("postinst", "udevadm control --reload-rules"),
    "prerm stops the unit on remove": ("prerm", "deb-systemd-invoke stop hnxdp.service"),
    "postrm removes /etc/hnxdp on purge": ("postrm", "rm -rf /etc/hnxdp"),
}


@pytest.mark.parametrize("script, line", MAINTAINER_LINES.values(), ids=MAINTAINER_LINES)
def test_maintainer_script_does(package: Package, script: str, line: str) -> None:
    assert line in package.control_file(script)


def test_no_maintainer_script_touches_the_write_ahead_records(package: Package) -> None:
    code = [line for script in ("postinst", "prerm", "postrm") for line in package.control_file(script).splitlines()
            if not line.lstrip().startswith("#")]
    assert not [line for line in code if "/run/hnxdp" in line]


def test_lintian_reports_no_error_or_warning(package: Package) -> None:
    """Run as nobody, as lintian prefers; the deliberate exceptions are in
    packaging/debian/lintian-overrides, shipped in the package."""
    deb = package.dir / "lintian.deb"
    shutil.copy(package.deb, deb)
    deb.chmod(0o644)
    r = run([*NOBODY, "env", "HOME=/nonexistent", "lintian", "--tag-display-limit", "0", "--show-overrides",
             "--fail-on", "error,warning", str(deb)], timeout=600)
    assert r.rc == 0, f"lintian: {(r.out + r.err)[-3000:]}"


@pytest.mark.parametrize("installed, source", (("usr/lib/udev/rules.d/81-hnxdp.rules", "packaging/udev/81-hnxdp.rules"),
                                               ("usr/lib/systemd/network/05-hnxdp-vf.network",
                                                "packaging/network/05-hnxdp-vf.network")),
                         ids=("udev-rule", "networkd-file"))
def test_guest_files_are_packagings(package: Package, installed: str, source: str) -> None:
    assert package.text(installed) == (repo_root() / source).read_text()


def test_udev_rule_imports_from_the_packaged_binary(package: Package) -> None:
    assert 'IMPORT{program}="/usr/sbin/hnxdp udev ' in package.text("usr/lib/udev/rules.d/81-hnxdp.rules")


# ---------------------------------------------------------------- the packaged binary without the toolchain

def test_wrapper_hides_the_toolchain(package: Package) -> None:
    r = run(["unshare", "--mount", "--propagation", "private", "sh", "-c", 'mount --bind "$0" "$1" && ls -A "$1"',
             str(package.dir / "empty"), str(package.toolchain)])
    assert (r.rc, r.out) == (0, ""), f"the wrapper's mount namespace shows {package.toolchain} empty: {r}"


def test_version_without_the_toolchain(package: Package) -> None:
    r = run([str(package.wrapper), "--version"])
    assert (r.rc, r.out.strip()) == (0, f"hnxdp {package.version()}"), str(r)


def test_libraries_loaded_are_debians(package: Package) -> None:
    """The dynamic loader's own report (LD_DEBUG=libs): libbpf is loaded,
    nothing comes from the toolchain."""
    r = run(["env", "-u", "LD_LIBRARY_PATH", "LD_DEBUG=libs", str(package.wrapper), "--version"])
    assert r.rc == 0, str(r)
    assert "libbpf.so.1" in r.err, "LD_DEBUG shows the libraries hnxdp loads"
    assert str(package.toolchain) not in r.err, f"no library loaded from {package.toolchain}"


@pytest.fixture
def packaged_rig(hnxdp_binary: Path, package: Package) -> Iterator[Rig]:
    with open_rig(package.wrapper) as rig:
        yield rig


def test_packaged_status_json(package: Package, packaged_rig: Rig) -> None:
    assert packaged_rig.hnxdp.status()["version"] == package.version()


def test_packaged_attach_carries_traffic_and_detaches(packaged_rig: Rig) -> None:
    rig = packaged_rig
    r = rig.hnxdp("attach", "--synthetic", "hn0", "--vf", "vf0")
    assert r.rc == 0, f"packaged attach: {r}"
    rig.host_switch("vf")
    assert rig.hnxdp.pair("hn0")["state"] == "active"
    before = PathCounters.read(rig)
    sink = UdpSink.start(rig, rig.guest, "hn0", 5197, seconds=15, expect=N)
    assert udp_send(rig, rig.remote, G4, 5197, N) == N
    assert sink.count() == N, "the socket bound to hn0 received every datagram"
    before.assert_through_vf("rx", at_least=N)
    r = rig.hnxdp("detach", "--synthetic", "hn0")
    assert r.rc == 0, f"packaged detach: {r}"
    assert not rig.pin_dir.exists(), f"pins left: {rig.pins()}"
