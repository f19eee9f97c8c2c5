"""The sandbox of test 91 (packaging/udev/81-hnxdp.rules run by a real
udevadm, packaging/network/05-hnxdp-vf.network by a real systemd-networkd),
run as a program inside the guest's network namespace and a private mount
namespace; nothing it mounts is seen outside, and it ends with the program:

    nsenter --net=/run/netns/GUEST -- unshare --mount --propagation private \\
        python3 -B policy_sandbox.py --hnxdp BIN --config CONF --rule RULE \\
        --network-file FILE|none --udevadm UDEVADM --networkd NETWORKD --mac MAC

Its own sysfs (the guest's devices); tmpfs over /run (udev database,
networkd state), the udev rules directories (only the packaged rule, its
program pointed at the binary under test and its config) and the .network
directories (a catch-all by MAC, what cloud-init's fallback writes, and the
packaged file unless --network-file none: the control).

Prints one JSON object:
  udev: {"add-vf0"|"add-hn0"|"add-other0"|"change-hn0": {"properties": {K: V}, "run": [cmd...]}}
        (what `udevadm test` prints: the device's properties and its RUN list)
  networkd: {"hn0"|"vf0": {"admin_state", "network_file", "has_address"}}
        (networkd's state file of the link, once both links settled, and the address)
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lib.wait import wait_until  # noqa: E402

ADDRESS = "198.18.7.1"
RULE_DIRS = ("/usr/lib/udev/rules.d", "/etc/udev/rules.d", "/usr/local/lib/udev/rules.d")
NETWORK_DIRS = ("/etc/systemd/network", "/usr/lib/systemd/network", "/usr/local/lib/systemd/network")


def sh(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30)


def udevadm_test(udevadm: str, action: str, dev: str) -> dict:
    r = subprocess.run([udevadm, "test", f"--action={action}", f"/sys/class/net/{dev}"],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        sys.exit(f"udevadm test --action={action} {dev} exited {r.returncode}: {r.stderr[-2000:]}")
    properties: dict[str, str] = {}
    runs = []
    for line in r.stdout.splitlines():
        m = re.fullmatch(r"run: '(.*)'", line)
        if m:
            runs.append(m.group(1))
        elif re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", line):
            key, _, value = line.partition("=")
            properties.setdefault(key, value)
    return {"properties": properties, "run": runs}


def link_state(dev: str) -> dict:
    ifindex = Path(f"/sys/class/net/{dev}/ifindex").read_text().strip()
    state: dict[str, str] = {}
    try:
        for line in Path(f"/run/systemd/netif/links/{ifindex}").read_text().splitlines():
            key, _, value = line.partition("=")
            state[key] = value
    except FileNotFoundError:
        pass
    addresses = sh("ip", "-4", "-o", "addr", "show", "dev", dev).stdout
    return {"admin_state": state.get("ADMIN_STATE"), "network_file": Path(state.get("NETWORK_FILE", "")).name,
            "has_address": ADDRESS in addresses}


def main() -> int:
    p = argparse.ArgumentParser()
    for opt in ("--hnxdp", "--config", "--rule", "--network-file", "--udevadm", "--networkd", "--mac", "--log"):
        p.add_argument(opt, required=True)
    a = p.parse_args()

    sh("mount", "-t", "sysfs", "sysfs", "/sys")
    sh("mount", "-t", "tmpfs", "tmpfs", "/run")
    for d in RULE_DIRS + NETWORK_DIRS:
        if os.path.isdir(d):
            sh("mount", "-t", "tmpfs", "tmpfs", d)
    os.makedirs("/run/udev/rules.d")
    os.makedirs("/run/systemd/network")

    rule, n = re.subn(r'"/usr/sbin/hnxdp udev (.*)"', lambda m: f'"{a.hnxdp} udev {m.group(1)} --config {a.config}"',
                      Path(a.rule).read_text())
    if n != 1:
        sys.exit(f"sandbox: the rule names `/usr/sbin/hnxdp udev` {n} times, expected once")
    Path("/run/udev/rules.d/81-hnxdp.rules").write_text(rule)
    udev = {f"add-{dev}": udevadm_test(a.udevadm, "add", dev) for dev in ("vf0", "hn0", "other0")}
    udev["change-hn0"] = udevadm_test(a.udevadm, "change", "hn0")

    Path("/run/systemd/network/50-cloud-init-like.network").write_text(
        f"[Match]\nMACAddress={a.mac}\n\n[Network]\nAddress={ADDRESS}/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n")
    if a.network_file != "none":
        Path("/usr/lib/systemd/network", Path(a.network_file).name).write_text(Path(a.network_file).read_text())
    with open(a.log, "w") as log:
        networkd = subprocess.Popen([a.networkd], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        def settled() -> bool:
            states = {dev: link_state(dev) for dev in ("hn0", "vf0")}
            return (all(s["admin_state"] in ("configured", "unmanaged", "failed") for s in states.values())
                    and states["hn0"]["has_address"])

        wait_until(settled, 20, "networkd settled hn0 and vf0")
        result = {"udev": udev, "networkd": {dev: link_state(dev) for dev in ("hn0", "vf0")}}
    finally:
        networkd.terminate()
        try:
            networkd.wait(10)
        except subprocess.TimeoutExpired:
            networkd.kill()
            networkd.wait()
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
