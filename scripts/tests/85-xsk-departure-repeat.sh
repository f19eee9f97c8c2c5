#!/usr/bin/env bash
# 85-xsk-departure-repeat: AF_XDP sockets on the pair keep receiving after the
# VF leaves, run after run (B17; issue 14).
#   ITER runs (default 20), each with a fresh VF: attach joins it, one ping
#   from the guest to the remote, `hnxdp xsk count` steering every frame (no
#   --udp-port), 1000 datagrams from the remote through the VF, a planned
#   departure (host to the synthetic, vf0 deleted), 1000 more through the
#   synthetic. Every run must count >= 950 on the VF, >= 950 on the synthetic
#   and >= 1900 in total. IPv4 and IPv6 alternate.
#   The remote re-validates its neighbour entry of the guest within about two
#   seconds (short neighbour timers; the defaults take 5-8 s): a datapath
#   that keeps the guest's stack from answering ARP or IPv6 neighbour
#   discovery while the sockets run makes the remote stop sending to the
#   guest, as it did in issue 14 about 1 run in 4 with the default timers.
. "$(dirname "$0")/../lib/rig.sh"

ITER=${ITER:-20}
N=1000     # datagrams per phase
RATE=2500  # per second
PORT=6000
MIN_DEV=950
MIN_TOTAL=1900


send_n() { # DST: N datagrams from the remote; prints the number sent
	rig_r "$RIG_PY" "$RIG_TOOLS/udp_send.py" --dst "$1" --port "$PORT" --count "$N" --rate "$RATE" --seconds 5 || true
}

rig_begin
rig_create

for sys in ipv4 ipv6; do
	rig_r sysctl -qw "net.$sys.neigh.eth0.base_reachable_time_ms=1000" "net.$sys.neigh.eth0.delay_first_probe_time=1" \
		"net.$sys.neigh.eth0.retrans_time_ms=200"
done

ok=0
failed_runs=""
for ((it = 1; it <= ITER; it++)); do
	if ((it > 1)); then rig_vf_add; fi
	rig_try hnxdp_g attach --synthetic hn0 --vf vf0
	[[ $RIG_RC == 0 ]] || fatal "run $it: attach hn0/vf0 failed: $RIG_ERR"
	rig_host_switch vf
	vf=$(rig_ifindex "$RIG_GUEST" vf0)
	syn=$(rig_ifindex "$RIG_GUEST" hn0)
	if ((it % 2)); then dst=$RIG_G4; else dst=$RIG_G6; fi
	rig_try rig_g ping -n -c 1 -W 2 "$RIG_R4"

	EV="$RIG_TMP/events.$it"
	OUT="$RIG_TMP/count.$it"
	# nsenter execs hnxdp: the pid is hnxdp's own (SIGTERM ends the count cleanly).
	rig_bg cpid timeout -k 5 40 nsenter --net="/run/netns/$RIG_GUEST" -- "$HNXDP" xsk count --synthetic hn0 \
		--seconds 30 --json --events >"$OUT" 2>"$EV"
	wait_until 10 "run $it: xsk count bound to vf0" grep -q "bound to VF vf0 (ifindex $vf)" "$EV" || true

	sent1=$(send_n "$dst")
	rig_vf_remove_planned
	wait_until 5 "run $it: sockets noticed the departure" grep -q "left" "$EV" || true
	sleep 0.5
	sent2=$(send_n "$dst")
	sleep 0.3
	hpid=$(pgrep -P "$cpid" -x hnxdp || true)
	[[ -n $hpid ]] && kill -TERM "$hpid" 2>/dev/null
	crc=0
	rig_wait_pid "$cpid" 15 || crc=$?

	json=$(cat "$OUT")
	on_vf=$(rig_json --default 0 "per_binding.vf0@$vf" <<<"$json")
	on_syn=$(rig_json --default 0 "per_binding.hn0@$syn" <<<"$json")
	total=$(rig_json --default 0 total <<<"$json")
	line="run $it ($dst): sent $sent1+$sent2, counted vf0 $on_vf, hn0 $on_syn, total $total (exit $crc)"
	if [[ $crc == 0 ]] && ((on_vf >= MIN_DEV && on_syn >= MIN_DEV && total >= MIN_TOTAL)); then
		ok=$((ok + 1))
		note "$line"
	else
		failed_runs+=" $it"
		fail "$line: $json | events: $(rig__short "$(cat "$EV")") | remote: $(ip -n "$RIG_REMOTE" neigh show dev eth0 | tr '\n' ';')"
	fi
done
assert_eq "runs that counted >= $MIN_TOTAL frames from both devices (failed:${failed_runs:- none})" "$ok" "$ITER"

assert_not_contains "no XDP on hn0 after the last application exited" "$(ip -n "$RIG_GUEST" -d link show dev hn0)" "prog/xdp"
rig_try hnxdp_g detach --synthetic hn0
assert_eq "detach hn0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
rig_finish
