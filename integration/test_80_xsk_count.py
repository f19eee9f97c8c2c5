"""AF_XDP sockets on the pair follow the VF (B17), ported from
scripts/tests/80-xsk-count.sh.

`hnxdp xsk count --udp-port` receives UDP the remote sends through the VF; the
VF is deleted mid-stream (surprise) and the count goes on through the
synthetic; a new VF returns (attached again with `hnxdp attach`) and the count
goes on through it, without the application re-opening anything. What is lost
is only what was in flight at the surprise departure: the frames the host
sent to the deleted vf0 before it switched (counted by the host, so the
budget does not depend on this machine's speed) and at most MAX_LOST more.
Frames no socket asked for keep the stack path; the steering program is on
both devices while the application runs and gone after it.
"""
from __future__ import annotations

import pytest

from lib.rig import G4, G6, Rig
from lib.traffic import PingStats, ping, udp_send
from lib.user_xdp import STEER, xdp_pins, xdp_prog
from lib.xsk import XskApp, host_tx, per_binding, rejoin_vf, vf_remove_surprise_counted, wait_host_delivered

PORT = 6000
RATE = 1000  # datagrams per second
ACROSS = 6000  # datagrams of the stream the departure and the return happen in
AFTER = 2000  # datagrams through the returned VF once the stream is over
PHASE = 1000  # frames each binding counts at least
OTHER = 100  # frames a phase may carry besides the stream (neighbour discovery): waited for too
# Lost at the surprise departure besides the frames the host sent to the deleted vf0
# (counted, vf_remove_surprise_counted): at most those in flight on vf0's receive
# ring (none seen in practice; the bash test allowed 200 for both together).
MAX_LOST = 50


def start_on_vf(rig: Rig, **kw: object) -> tuple[XskApp, int]:
    """`xsk count` bound to the synthetic and to vf0; returns it and vf0's ifindex."""
    app = XskApp.start(rig, "count", **kw)
    vf = rig.ifindex(rig.guest, "vf0")
    app.wait_bound_vf(vf)
    return app, vf


def test_bind_mode_on_veth_is_copy(joined: Rig) -> None:
    app, _ = start_on_vf(joined, udp_port=PORT)
    binds = [e for e in app.events() if e.kind.startswith("bound-")]
    report = app.stop()
    assert report["mode"] == "copy", f"xsk count --json: {report}"
    assert [(e.dev, e.mode) for e in binds] == [("hn0", "copy"), ("vf0", "copy")], binds


def test_steering_program_on_both_devices(joined: Rig) -> None:
    rig = joined
    app, _ = start_on_vf(rig, udp_port=PORT)
    assert xdp_prog(rig, "hn0") == STEER
    assert xdp_prog(rig, "vf0") == STEER
    app.stop()


@pytest.mark.parametrize("dst", (G4, G6), ids=("ipv4", "ipv6"))
def test_other_frames_keep_the_stack_path(joined: Rig, dst: str) -> None:
    """With --udp-port, pings (and their neighbour discovery) reach the stack
    while the sockets run, and none is counted."""
    rig = joined
    app, _ = start_on_vf(rig, udp_port=PORT)
    r = ping(rig, rig.remote, dst, count=3)
    stats = PingStats.parse(r.out)
    assert r.rc == 0 and stats == PingStats(3, 3), f"remote pings {dst} while the sockets run: {r.out}"
    report = app.stop()
    assert report["total"] == 0, f"frames the sockets did not ask for were counted: {report}"


def test_count_follows_vf_across_departure_and_return(joined: Rig) -> None:
    rig = joined
    syn = rig.ifindex(rig.guest, "hn0")
    app, old_vf = start_on_vf(rig, udp_port=PORT)

    on_vf_before = host_tx(rig, "vf0h")
    stream = rig.bg(rig.remote, *rig.tool("udp_send.py"), "--dst", G4, "--port", str(PORT), "--count",
                    str(ACROSS), "--rate", str(RATE), "--seconds", "60", name="udp-send-across")
    wait_host_delivered(rig, "vf0h", on_vf_before + PHASE + OTHER)
    # Surprise: vf0 is deleted with the host still sending to it, then the host switches.
    on_syn_before = host_tx(rig, "hn0h")
    dropped = vf_remove_surprise_counted(rig)
    app.wait_left(old_vf)
    wait_host_delivered(rig, "hn0h", on_syn_before + PHASE + OTHER)
    new_vf = rejoin_vf(rig, app)
    assert new_vf != old_vf
    assert stream.wait(60) == 0, f"udp_send: {stream.errors().strip()}"
    sent = int(stream.output())

    base = host_tx(rig, "vf0h")
    sent += udp_send(rig, rig.remote, G4, PORT, AFTER, rate=RATE)
    wait_host_delivered(rig, "vf0h", base + AFTER)
    report = app.stop()

    assert sent == ACROSS + AFTER, f"the remote sent {sent} of {ACROSS + AFTER}"
    counts = {"first vf0": per_binding(report, "vf0", old_vf), "hn0": per_binding(report, "hn0", syn),
              "returned vf0": per_binding(report, "vf0", new_vf)}
    for where, n in counts.items():
        assert n >= PHASE, f"received {n} through the {where}, expected >= {PHASE}: {report}"
    assert sum(counts.values()) == report["total"], f"per-binding counts do not add up to the total: {report}"
    assert report["total"] <= sent, f"received more than was sent ({sent}): {report}"
    lost = sent - report["total"]
    assert lost <= dropped + MAX_LOST, (f"lost {lost} of {sent}: more than the {dropped} the host sent to the deleted "
                                        f"vf0 and {MAX_LOST} in flight on its ring: {report}")
    assert (report["departures"], report["rebinds"]) == (1, 2), f"one departure, binds to two VFs: {report}"


def test_steering_leaves_with_the_application(joined: Rig) -> None:
    """The sockets followed a departure and a return; when the application
    exits, no XDP program is left on hn0 or the returned vf0 and no XDP pin,
    while the pair itself stays active."""
    rig = joined
    app, _ = start_on_vf(rig, udp_port=PORT)
    rig.vf_remove_surprise()
    rejoin_vf(rig, app)
    assert xdp_prog(rig, "vf0") == STEER, "the join put the steering on the returned vf0"
    assert xdp_pins(rig), "the pair's XDP objects are pinned while the application runs"
    app.stop()
    assert xdp_prog(rig, "hn0") is None
    assert xdp_prog(rig, "vf0") is None
    assert xdp_pins(rig) == []
    pair = rig.hnxdp.pair("hn0")
    assert pair is not None and pair["state"] == "active", pair
