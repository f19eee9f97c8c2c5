#!/usr/bin/env bash
# bench.sh - hnxdp benchmark (design: /work/shared/design/bench.md).
#
#   sudo scripts/bench.sh [--rounds N] [--quick] [--json FILE] [--cases P1,P1b,...]
#
# Every figure is a ratio of two configurations measured in this run, in
# interleaved rounds (A B, then B A, ...): the table shows the median of the
# per-round ratios and their spread (min..max). Absolute numbers are printed
# too, but only the ratios mean anything across runs. Cases:
#   P1   frames/s to a socket bound to hn0 via vf0 (hnxdp) / to a socket on vf0, nothing attached
#   P1b  hnxdp / a tcx program doing only bpf_redirect(hn0, BPF_F_INGRESS) (bpf/bench/redirect_only.bpf.c)
#   P2   hnxdp / tc clsact u32 + `mirred ingress redirect dev hn0`
#   P3   iperf3 TCP throughput via hn0 (through the pair) / directly on vf0, guest -> host
#   P3r  the same, host -> guest (iperf3 -R)
#   P4   frames/s sent on hn0 leaving via vf0 (hnxdp) / sent on vf0, nothing attached
#   P6   ns per frame of each hnxdp program minus an empty tc program (BPF_PROG_TEST_RUN)
# Controls, run before hnxdp is attached (nothing attached anywhere; expect 1.0: they
# show how far guest A and guest B differ by themselves):
#   C1   P1's traffic to a socket on vf0: guest A / guest B
#   C4   P4's traffic sent on vf0: guest A / guest B
# And, for a prototype of a cheaper datapath (bpf/bench/hnxdp_proto.bpf.c, attached to
# guest B by scripts/bench/protoattach.c), informative cases without a target:
#   X1   P1's traffic: prototype / hnxdp      X4   P4's traffic: prototype / hnxdp
#   X6   ns per frame of each prototype program minus the empty program
#
# Rig (names unique per run, all deleted on exit; addresses only 198.18.0.0/15):
#   guest A (hnxdp):     hn0 198.18.0.1/24 + vf0 (no address), same MAC, hnxdp attached
#   guest B (baselines): hn0 (no address) + vf0 198.18.0.1/24, same MAC, nothing or
#                        the case's baseline on vf0 ingress
#   host A / host B:     hn0h, vf0h 198.18.0.2/24 (peers of the guest's hn0/vf0)
# A and B are built alike, so one round of a case measures A then B (or B then A)
# without re-attaching anything. Load: trafgen (netsniff-ng) with a fixed 64-byte
# UDP frame (bounded by count and time, one CPU); the receiver is a UDP socket
# bound to the device that never reads (scripts/bench/udp_hold.py), counted by
# the kernel in the namespace's Udp InDatagrams + RcvbufErrors over a fixed window.
#
# Options:
#   --rounds N      rounds per case (default 5; --quick: 2)
#   --quick         short windows, fewer repeats: the whole run < 1 minute
#   --json FILE     write the results as JSON (one object per case id)
#   --cases LIST    comma-separated subset of C1,C4,P1,P1b,P2,P3,P3r,P4,P6,X1,X4,X6
#   --window S      counting window per measurement in seconds (default 2)
#   --perf DIR      after the rounds of P1, P1b, P2, P4, X1, X4 profile one more window
#                   of each configuration (perf record -a -g -e cpu-clock): DIR/<case>-<A|B>.data
#                   and .count (frames delivered); then scripts/bench/perf_phases.py DIR
#                   P1-B P1-A ... prints ns per frame per phase of the path
# Environment: HNXDP (binary; default .build-bench/debug/hnxdp, else .build/debug/hnxdp),
#   CLANG (default /opt/swift/usr/bin/clang).

set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
HELPERS="$BENCH_DIR/bench"
if [[ -z "${HNXDP:-}" ]]; then
	HNXDP="$REPO/.build-bench/debug/hnxdp"
	[[ -x "$HNXDP" ]] || HNXDP="$REPO/.build/debug/hnxdp"
fi
CLANG=${CLANG:-/opt/swift/usr/bin/clang}
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)

ARGS="$*"
ROUNDS=""
QUICK=0
JSON_OUT=""
CASES="C1,C4,P1,P1b,P2,P3,P3r,P4,P6,X1,X4,X6"
WINDOW=""
PERF_DIR=""

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }
while (($#)); do
	case "$1" in
	--rounds) ROUNDS=${2:?}; shift 2 ;;
	--quick) QUICK=1; shift ;;
	--json) JSON_OUT=${2:?}; shift 2 ;;
	--cases) CASES=${2:?}; shift 2 ;;
	--window) WINDOW=${2:?}; shift 2 ;;
	--perf) PERF_DIR=$(realpath -m "${2:?}"); shift 2 ;;
	-h | --help) usage ;;
	*) echo "bench.sh: unknown option $1" >&2; usage ;;
	esac
done
[[ -z $ROUNDS || $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --rounds needs a positive integer" >&2; exit 2; }

if ((QUICK)); then
	ROUNDS=${ROUNDS:-2}
	WINDOW=${WINDOW:-0.3}
	WARMUP=0.15
	IPERF_SECONDS=1
	TESTRUN_REPEAT=100000
	TESTRUN_FRESH=20000
else
	ROUNDS=${ROUNDS:-5}
	WINDOW=${WINDOW:-2}
	WARMUP=0.3
	IPERF_SECONDS=3
	TESTRUN_REPEAT=1000000
	TESTRUN_FRESH=200000
fi
[[ -n $JSON_OUT ]] && JSON_OUT=$(realpath -m "$JSON_OUT")
# trafgen runs at most ~2 Mpps here; the count bound is a safety net above that,
# the time bound (timeout) the other one.
TRAFGEN_MAX_PPS=5000000
TRAFGEN_SECONDS=$(awk -v w="$WINDOW" -v u="$WARMUP" 'BEGIN { printf "%d", w + u + 4 }')
TRAFGEN_COUNT=$((TRAFGEN_MAX_PPS * TRAFGEN_SECONDS))

want() { [[ ",$CASES," == *",$1,"* ]]; }
log() { echo "bench: $*" >&2; }
die() { echo "bench.sh: $*" >&2; exit 1; }

# ------------------------------------------------------------------ checks

[[ $(id -u) == 0 ]] || die "needs root (namespaces, BPF)"
for t in ip tc trafgen iperf3 nsenter gcc jq awk timeout; do
	command -v "$t" >/dev/null || die "missing tool: $t"
done
[[ -x $CLANG ]] || die "missing clang for BPF: $CLANG"
[[ -x $HNXDP ]] || die "missing hnxdp binary: $HNXDP (swift build --scratch-path .build-bench)"
[[ -f /usr/include/bpf/libbpf.h ]] || die "missing libbpf-dev"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

# ------------------------------------------------------------------ rig state

ID="hnxb-$$-$RANDOM"
GA="$ID-ga" HA="$ID-ha" GB="$ID-gb" HB="$ID-hb"
TMP=$(mktemp -d "/tmp/$ID.XXXXXX")
LINK_PINS="/sys/fs/bpf/$ID"   # this run's own pins (P1b baseline, prototype)
RECORDS="$TMP/records.tsv"
NAMESPACES=()
PIDS=()
GMAC="02:48:4e:$(printf '%02x:%02x:%02x' $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)))"
HMAC="02:48:4f:$(printf '%02x:%02x:%02x' $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)))"
G4=198.18.0.1
H4=198.18.0.2
PORT=9

cleanup() {
	local rc=$? pid ns
	set +e
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null
	done
	if [[ -e /run/netns/$GA ]]; then
		nsenter --net="/run/netns/$GA" "$HNXDP" detach --all >/dev/null 2>"$TMP/detach.err" ||
			echo "bench.sh: hnxdp detach --all in $GA: $(head -1 "$TMP/detach.err")" >&2
	fi
	[[ -d $LINK_PINS ]] && rm -rf "$LINK_PINS"
	for ns in "${NAMESPACES[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "bench.sh: failed (line $LINENO): $BASH_COMMAND" >&2' ERR

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }    # ordinary tools
nsnet() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@"; } # hnxdp, bpf helpers
ifindex() { ip -n "$1" -j link show dev "$2" | jq -r '.[0].ifindex'; }

bg() { # bg VAR CMD...: start CMD in the background, remember its pid
	local __var=$1; shift
	"$@" &
	PIDS+=($!)
	printf -v "$__var" '%s' "$!"
}
stop() { # stop PID [SIGNAL]: stop one of our own background processes
	local pid=$1 sig=${2:-TERM} i
	kill -"$sig" "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	for i in "${!PIDS[@]}"; do
		[[ ${PIDS[$i]} == "$pid" ]] && unset 'PIDS[i]'
	done
	PIDS=("${PIDS[@]}")
}

# ------------------------------------------------------------------ build

build() {
	log "building BPF baselines and helpers in $TMP"
	local f
	for f in empty redirect_only hnxdp_proto; do
		"$CLANG" -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu \
			-c "$REPO/bpf/bench/$f.bpf.c" -o "$TMP/$f.bpf.o"
	done
	gcc -O2 -Wall -o "$TMP/testrun" "$HELPERS/testrun.c" -lbpf
	gcc -O2 -Wall -o "$TMP/tcxattach" "$HELPERS/tcxattach.c" -lbpf
	gcc -O2 -Wall -o "$TMP/protoattach" "$HELPERS/protoattach.c" -lbpf
}

# ------------------------------------------------------------------ rig

make_side() { # make_side G H: guest G (hn0, vf0 same MAC) and host H (hn0h, vf0h)
	local g=$1 h=$2 ns
	for ns in "$g" "$h"; do
		ip netns add "$ns"
		NAMESPACES+=("$ns")
		in_ns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
			net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
		ip -n "$ns" link set lo up
	done
	ip -n "$g" link add hn0 address "$GMAC" type veth peer name hn0h netns "$h"
	ip -n "$g" link add vf0 address "$GMAC" type veth peer name vf0h netns "$h" address "$HMAC"
	ip -n "$g" link set hn0 up
	ip -n "$g" link set vf0 up
	ip -n "$h" link set hn0h up
	ip -n "$h" link set vf0h up
	ip -n "$h" addr add "$H4/24" dev vf0h
}

make_rig() {
	log "rig $ID: guest A $GA (hnxdp), guest B $GB (baselines), hosts $HA $HB"
	make_side "$GA" "$HA"
	make_side "$GB" "$HB"
	ip -n "$GA" addr add "$G4/24" dev hn0
	ip -n "$GB" addr add "$G4/24" dev vf0
	mkdir -p "$LINK_PINS"
	# Frames: 64 bytes (Ethernet + IPv4 + UDP + 22 bytes), UDP checksum 0.
	frame_cfg "$TMP/rx.cfg" "$HMAC" "$GMAC" "$H4" "$G4" # host -> guest (P1, P1b, P2)
	frame_cfg "$TMP/tx.cfg" "$GMAC" "$HMAC" "$G4" "$H4" # guest -> host (P4)
}

attach_hnxdp() {
	nsnet "$GA" "$HNXDP" attach --synthetic hn0 --vf vf0 >/dev/null
	GA_INO=$(stat -L -c %i "/run/netns/$GA")
	GA_PINS="${HNXDP_BPFFS:-/sys/fs/bpf/hnxdp}/$GA_INO"
	[[ -e $GA_PINS/hnxdp_vf_ingress ]] || die "hnxdp attach made no pins under $GA_PINS"
	# Resolve ARP both ways once, so no measurement window pays for it.
	in_ns "$GA" ping -c 1 -W 2 "$H4" >/dev/null || die "guest A cannot reach host A through the pair"
	in_ns "$GB" ping -c 1 -W 2 "$H4" >/dev/null || die "guest B cannot reach host B on vf0"
}

frame_cfg() { # frame_cfg FILE SMAC DMAC SADDR DADDR
	cat >"$1" <<EOF
{
  eth(da=$3, sa=$2, type=0x0800),
  ipv4(saddr=$4, daddr=$5, ttl=64, df),
  udp(sport=1024, dport=$PORT, csum=0),
  fill(0x00, 22)
}
EOF
}

# ------------------------------------------------------------------ measuring

udp_delivered() { # udp_delivered NS: Udp InDatagrams + RcvbufErrors of NS
	nsnet "$1" cat /proc/net/snmp | awk '
		/^Udp:/ { if (!h) { for (i = 2; i <= NF; i++) k[i] = $i; h = 1 } else { for (i = 2; i <= NF; i++) v[k[i]] = $i } }
		END { print v["InDatagrams"] + v["RcvbufErrors"], v["NoPorts"] }'
}

now() { echo "${EPOCHREALTIME/./}"; } # microseconds

hold_socket() { # hold_socket VAR NS DEV: a never-reading UDP socket bound to DEV
	local var=$1 ns=$2 dev=$3 ready="$TMP/ready.$RANDOM" i
	bg "$var" ip netns exec "$ns" "$PY" "$HELPERS/udp_hold.py" --dev "$dev" --port "$PORT" \
		--seconds 1800 --ready-file "$ready"
	for ((i = 0; i < 100; i++)); do
		[[ -e $ready ]] && return 0
		sleep 0.05
	done
	die "sink on $dev in $ns did not start"
}

# rate VAR TX_NS TX_DEV CFG RX_NS [trafgen options]: frames/s delivered to RX_NS's
# socket while trafgen sends CFG on TX_DEV, over a WINDOW-second window after WARMUP.
rate() {
	local var=$1 txns=$2 dev=$3 cfg=$4 rxns=$5 tg c0 c1 t0 t1 n0 n1 x
	shift 5
	bg tg timeout -s INT "$TRAFGEN_SECONDS" ip netns exec "$txns" \
		trafgen -i "$cfg" -o "$dev" -P 1 -n "$TRAFGEN_COUNT" --no-sock-mem -Q -C "$@" >>"$TMP/trafgen.log" 2>&1
	sleep "$WARMUP"
	t0=$(now); read -r c0 n0 < <(udp_delivered "$rxns"); t0=$(((t0 + $(now)) / 2))
	sleep "$WINDOW"
	t1=$(now); read -r c1 n1 < <(udp_delivered "$rxns"); t1=$(((t1 + $(now)) / 2))
	kill -0 "$tg" 2>/dev/null || log "warning: trafgen ended before the window closed ($txns $dev)"
	stop "$tg" INT
	x=$(awk -v c="$((c1 - c0))" -v t="$((t1 - t0))" 'BEGIN { printf "%.0f", c * 1e6 / t }')
	((n1 - n0 == 0)) || log "warning: $((n1 - n0)) datagrams found no socket in $rxns (wrong device?)"
	((c1 > c0)) || die "nothing delivered in $rxns (trafgen on $dev in $txns)"
	printf -v "$var" '%s' "$x"
}

hnxdp_stat() { # hnxdp_stat NAME: one counter of guest A's pair
	nsnet "$GA" "$HNXDP" dump --json | jq -r --arg n "$1" '.pairs[] | select(.synthetic.name == "hn0") | .stats[$n]'
}

case_header() { # case_header ID WHAT KIND OP TARGET UNIT GENERATOR
	printf 'case\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RECORDS"
}
record() { printf 'val\t%s\t%s\t%s\t%s\n' "$@" >>"$RECORDS"; }   # record ID ROUND A|B VALUE
note() { printf 'note\t%s\t%s\t%s\n' "$@" >>"$RECORDS"; }        # note ID KEY JSON

# interleave ID MEASURE_A MEASURE_B: ROUNDS rounds, A first in even rounds, B first in odd
# ones; MEASURE_X is a function that sets $VALUE.
interleave() {
	local id=$1 fa=$2 fb=$3 r cfg
	for ((r = 0; r < ROUNDS; r++)); do
		local order=(A B)
		((r % 2)) && order=(B A)
		for cfg in "${order[@]}"; do
			VALUE=""
			if [[ $cfg == A ]]; then "$fa"; else "$fb"; fi
			record "$id" "$r" "$cfg" "$VALUE"
			log "$id round $r $cfg: $VALUE"
		done
	done
}

TRAFGEN_VERSION=$( (trafgen -v 2>/dev/null || true) | awk 'NR == 1 {print $2}')
GEN_RX="trafgen $TRAFGEN_VERSION (netsniff-ng), 64-byte UDP into vf0h, 1 CPU, qdisc bypass; sink: socket bound to the device, Udp InDatagrams+RcvbufErrors"
GEN_TX="trafgen $TRAFGEN_VERSION (netsniff-ng), 64-byte UDP in the guest, 1 CPU, -q (qdisc path); sink: socket on vf0h, Udp InDatagrams+RcvbufErrors"

# ------------------------------------------------------------------ cases

rx_a() { rate VALUE "$HA" vf0h "$TMP/rx.cfg" "$GA"; }
rx_b() { rate VALUE "$HB" vf0h "$TMP/rx.cfg" "$GB"; }

# maybe_perf LABEL TX_NS TX_DEV CFG RX_NS [trafgen options]: with --perf, one more window
# of the case under `perf record -a -g -e cpu-clock`; DIR/LABEL.count holds the frames
# the sink got in that window, for scripts/bench/perf_phases.py (ns per frame per phase).
maybe_perf() {
	[[ -n $PERF_DIR ]] || return 0
	local label=$1 txns=$2 dev=$3 cfg=$4 rxns=$5 tg c0 c1 x
	shift 5
	mkdir -p "$PERF_DIR"
	bg tg timeout -s INT "$TRAFGEN_SECONDS" ip netns exec "$txns" \
		trafgen -i "$cfg" -o "$dev" -P 1 -n "$TRAFGEN_COUNT" --no-sock-mem -Q -C "$@" >>"$TMP/trafgen.log" 2>&1
	sleep "$WARMUP"
	read -r c0 x < <(udp_delivered "$rxns")
	rm -f "$PERF_DIR/$label.data" "$PERF_DIR/$label.data.old"
	perf record -q -a -g -e cpu-clock -F 4999 -o "$PERF_DIR/$label.data" -- sleep "$WINDOW" >/dev/null 2>&1 ||
		log "perf record failed ($label)"
	read -r c1 x < <(udp_delivered "$rxns")
	stop "$tg" INT
	echo "$((c1 - c0))" >"$PERF_DIR/$label.count"
	log "profile of $label: $PERF_DIR/$label.data ($((c1 - c0)) frames)"
}

case_c1() {
	local sa sb
	case_header C1 "control, nothing attached: UDP 64B rx to a vf0 socket, guest A / guest B" ratio info 1 pps "$GEN_RX"
	hold_socket sa "$GA" vf0
	hold_socket sb "$GB" vf0
	interleave C1 rx_a rx_b
	stop "$sa"; stop "$sb"
}

case_c4() {
	local sa sb
	case_header C4 "control, nothing attached: UDP 64B tx on vf0, guest A / guest B" ratio info 1 pps "$GEN_TX"
	hold_socket sa "$HA" vf0h
	hold_socket sb "$HB" vf0h
	interleave C4 c4_a tx_b
	stop "$sa"; stop "$sb"
}
c4_a() { rate VALUE "$GA" vf0 "$TMP/tx.cfg" "$HA" -q; }

case_p1() {
	local sa sb v0 v1
	case_header P1 "UDP 64B rx: vf0 -> hn0 socket (hnxdp) / vf0 socket, nothing attached" ratio ">=" 0.95 pps "$GEN_RX"
	hold_socket sa "$GA" hn0
	hold_socket sb "$GB" vf0
	v0=$(hnxdp_stat vf_rx_packets)
	interleave P1 rx_a rx_b
	v1=$(hnxdp_stat vf_rx_packets)
	note P1 hnxdp_vf_rx_packets "$((v1 - v0))"
	maybe_perf P1-A "$HA" vf0h "$TMP/rx.cfg" "$GA"
	maybe_perf P1-B "$HB" vf0h "$TMP/rx.cfg" "$GB"
	stop "$sa"; stop "$sb"
}

case_p1b() {
	local sa sb
	case_header P1b "UDP 64B rx: hnxdp / tcx bpf_redirect(hn0, INGRESS) only" ratio ">=" 0.99 pps "$GEN_RX"
	nsnet "$GB" "$TMP/tcxattach" "$TMP/redirect_only.bpf.o" "$(ifindex "$GB" vf0)" \
		"$(ifindex "$GB" hn0)" "$LINK_PINS/redirect_only"
	hold_socket sa "$GA" hn0
	hold_socket sb "$GB" hn0
	interleave P1b rx_a rx_b
	maybe_perf P1b-B "$HB" vf0h "$TMP/rx.cfg" "$GB"
	stop "$sa"; stop "$sb"
	rm -f "$LINK_PINS/redirect_only" # last reference: detaches the baseline
}

case_p2() {
	local sa sb
	case_header P2 "UDP 64B rx: hnxdp / tc u32 + mirred ingress redirect" ratio ">=" 1.02 pps "$GEN_RX"
	in_ns "$GB" tc qdisc add dev vf0 clsact
	in_ns "$GB" tc filter add dev vf0 ingress protocol all prio 1 u32 match u32 0 0 \
		action mirred ingress redirect dev hn0
	hold_socket sa "$GA" hn0
	hold_socket sb "$GB" hn0
	interleave P2 rx_a rx_b
	maybe_perf P2-B "$HB" vf0h "$TMP/rx.cfg" "$GB"
	stop "$sa"; stop "$sb"
	in_ns "$GB" tc qdisc del dev vf0 clsact
}

iperf_a() { iperf_run VALUE "$GA" $IPERF_DIR; }
iperf_b() { iperf_run VALUE "$GB" $IPERF_DIR; }
iperf_run() { # iperf_run VAR GUEST [-R]: bits/s received (by the host's server, or with -R the guest)
	local var=$1 out
	out=$(in_ns "$2" timeout $((IPERF_SECONDS + 15)) iperf3 -c "$H4" -p 5201 -t "$IPERF_SECONDS" \
		-O 1 -J --connect-timeout 3000 ${3:-}) || die "iperf3 from $2 failed"
	printf -v "$var" '%s' "$(jq -r '.end.sum_received.bits_per_second | floor' <<<"$out")"
}

IPERF_DIR=""
case_p3() { # case_p3 [-R]
	local s1 s2 i id=P3 dir="guest -> host"
	IPERF_DIR=${1:-}
	[[ -n $IPERF_DIR ]] && id=P3r dir="host -> guest"
	case_header "$id" "TCP (iperf3, 1 stream) $dir: via hn0 (hnxdp) / on vf0" ratio ">=" 0.98 bps \
		"iperf3 $( (iperf3 -v 2>/dev/null || true) | awk 'NR == 1 {print $2}'), 1 stream, ${IPERF_SECONDS}s (+1s omitted), $dir"
	# Started directly (not through a shell function), so the pid is the process's own.
	bg s1 timeout 1800 ip netns exec "$HA" iperf3 -s -B "$H4" -p 5201 >"$TMP/iperf3-a.log" 2>&1
	bg s2 timeout 1800 ip netns exec "$HB" iperf3 -s -B "$H4" -p 5201 >"$TMP/iperf3-b.log" 2>&1
	for ((i = 0; i < 50; i++)); do # until both servers listen
		in_ns "$HA" ss -Hltn "sport = :5201" | grep -q . && in_ns "$HB" ss -Hltn "sport = :5201" | grep -q . && break
		sleep 0.1
	done
	interleave "$id" iperf_a iperf_b
	stop "$s1"; stop "$s2"
}

tx_a() { rate VALUE "$GA" hn0 "$TMP/tx.cfg" "$HA" -q; }
tx_b() { rate VALUE "$GB" vf0 "$TMP/tx.cfg" "$HB" -q; }

# What path does trafgen take on hn0? Its default PACKET_QDISC_BYPASS sends with
# dev_direct_xmit(), which skips __dev_queue_xmit() and so tcx egress; -q does not.
p4_path_check() {
	local n=2000 mode v0 v1 c0 c1 x sa
	hold_socket sa "$HA" vf0h
	for mode in bypass qdisc; do
		v0=$(hnxdp_stat vf_tx_packets)
		read -r c0 x < <(udp_delivered "$HA")
		if [[ $mode == qdisc ]]; then x=-q; else x=""; fi
		in_ns "$GA" timeout 10 trafgen -i "$TMP/tx.cfg" -o hn0 -P 1 -n "$n" --no-sock-mem -Q -C $x >/dev/null 2>&1
		sleep 0.2
		v1=$(hnxdp_stat vf_tx_packets)
		read -r c1 x < <(udp_delivered "$HA")
		log "P4 path check: trafgen ($mode) sent $n on hn0: hnxdp vf_tx_packets +$((v1 - v0)), host vf0h socket +$((c1 - c0))"
		note P4 "path_check_${mode}" "{\"sent\": $n, \"hnxdp_vf_tx_packets\": $((v1 - v0)), \"host_vf0h_delivered\": $((c1 - c0))}"
	done
	stop "$sa"
}

case_p4() {
	local sa sb v0 v1
	case_header P4 "UDP 64B tx: sent on hn0, leaves via vf0 (hnxdp) / sent on vf0" ratio ">=" 0.95 pps "$GEN_TX"
	p4_path_check
	hold_socket sa "$HA" vf0h
	hold_socket sb "$HB" vf0h
	v0=$(hnxdp_stat vf_tx_packets)
	interleave P4 tx_a tx_b
	v1=$(hnxdp_stat vf_tx_packets)
	note P4 hnxdp_vf_tx_packets "$((v1 - v0))"
	maybe_perf P4-A "$GA" hn0 "$TMP/tx.cfg" "$HA" -q
	maybe_perf P4-B "$GB" vf0 "$TMP/tx.cfg" "$HB" -q
	stop "$sa"; stop "$sb"
}

# testrun_cases PREFIX NS PINS PROGS [ref]: BPF_PROG_TEST_RUN of each of PROGS (pinned in
# PINS, attached in NS) against the empty program, in both test-run modes. With "ref"
# the bare redirect program (redirect_only, target ifindex 0: only the helper call
# counts) runs alongside as a reference row without a target.
testrun_cases() {
	local prefix=$1 ns=$2 pins=$3 progs=$4 ref=${5:-} vf hn out prog mode args
	vf=$(ifindex "$ns" vf0)
	hn=$(ifindex "$ns" hn0)
	for mode in repeat fresh; do
		local flag="" n=$TESTRUN_REPEAT
		[[ $mode == fresh ]] && flag=-f n=$TESTRUN_FRESH
		args=("$TMP/empty.bpf.o=$vf")
		for prog in $progs; do
			if [[ $prog == *vf_ingress ]]; then args+=("$pins/$prog=$vf"); else args+=("$pins/$prog=$hn"); fi
		done
		[[ -n $ref ]] && args+=("$TMP/redirect_only.bpf.o=$vf")
		out=$(nsnet "$ns" "$TMP/testrun" $flag -r "$n" -n "$ROUNDS" "${args[@]}") || die "testrun failed"
		echo "$out" >"$TMP/testrun.$prefix.$mode"
		for prog in $progs ${ref:+redirect_only}; do
			local id="$prefix $prog" gen op="<="
			if [[ $mode == repeat ]]; then
				gen="BPF_PROG_TEST_RUN repeat $n (one skb reused for all repeats), 64-byte UDP frame, ctx ifindex set"
			else
				# Only the VF program changes the skb (tc_index) in a way the next repeat sees.
				[[ $prog == *vf_ingress || $prog == redirect_only ]] || continue
				id="$prefix $prog (fresh skb)"
				gen="BPF_PROG_TEST_RUN repeat 1, $n runs (a new skb each), 64-byte UDP frame, ctx ifindex set"
			fi
			[[ $prog == redirect_only ]] && op=info id="$id, reference"
			case_header "$id" "ns/frame: $prog - empty tc program" delta "$op" 10 ns "$gen"
			awk -v p="$prog" -v id="$id" '
				$2 == "empty" { e[$1] = $4 }
				$2 == p { a[$1] = $4; rv = $5 }
				END { for (r in a) { printf "val\t%s\t%s\tA\t%s\n", id, r, a[r]; printf "val\t%s\t%s\tB\t%s\n", id, r, e[r] }
				      printf "note\t%s\tretval\t%s\n", id, rv }' <<<"$out" >>"$RECORDS"
		done
	done
}

case_p6() {
	testrun_cases P6 "$GA" "$GA_PINS" "hnxdp_vf_ingress hnxdp_syn_ingress hnxdp_syn_egress" ref
}

# The prototype (bpf/bench/hnxdp_proto.bpf.c) replaces guest B's baseline for X1, X4, X6.
PROTO_ATTACHED=0
proto_attach() {
	((PROTO_ATTACHED)) && return 0
	mkdir -p "$LINK_PINS/proto"
	nsnet "$GB" "$TMP/protoattach" "$TMP/hnxdp_proto.bpf.o" "$(ifindex "$GB" vf0)" \
		"$(ifindex "$GB" hn0)" "$LINK_PINS/proto"
	PROTO_ATTACHED=1
}

px_rx_a() { rate VALUE "$HB" vf0h "$TMP/rx.cfg" "$GB"; }
px_rx_b() { rate VALUE "$HA" vf0h "$TMP/rx.cfg" "$GA"; }
px_tx_a() { rate VALUE "$GB" hn0 "$TMP/tx.cfg" "$HB" -q; }
px_tx_b() { rate VALUE "$GA" hn0 "$TMP/tx.cfg" "$HA" -q; }

case_x1() {
	local sa sb
	proto_attach
	case_header X1 "UDP 64B rx via vf0 -> hn0 socket: prototype / hnxdp" ratio info 1 pps "$GEN_RX"
	hold_socket sa "$GB" hn0
	hold_socket sb "$GA" hn0
	interleave X1 px_rx_a px_rx_b
	maybe_perf X1-A "$HB" vf0h "$TMP/rx.cfg" "$GB"
	stop "$sa"; stop "$sb"
}

case_x4() {
	local sa sb
	proto_attach
	case_header X4 "UDP 64B tx on hn0 leaving via vf0: prototype / hnxdp" ratio info 1 pps "$GEN_TX"
	hold_socket sa "$HB" vf0h
	hold_socket sb "$HA" vf0h
	interleave X4 px_tx_a px_tx_b
	maybe_perf X4-A "$GB" hn0 "$TMP/tx.cfg" "$HB" -q
	stop "$sa"; stop "$sb"
}

case_x6() {
	proto_attach
	testrun_cases X6 "$GB" "$LINK_PINS/proto" "proto_vf_ingress proto_syn_ingress proto_syn_egress"
}

# ------------------------------------------------------------------ main

START=$(date +%s)
build
make_rig
: >"$RECORDS"
want C1 && case_c1
want C4 && case_c4
attach_hnxdp
want P1 && case_p1
want P1b && case_p1b
want P2 && case_p2
want P3 && case_p3
want P3r && case_p3 -R
want P4 && case_p4
want P6 && case_p6
want X1 && case_x1
want X4 && case_x4
want X6 && case_x6

echo
echo "hnxdp benchmark: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, Linux $(uname -r), rounds $ROUNDS, window ${WINDOW}s$( ((QUICK)) && echo ", quick")"
echo "load: P1/P1b/P2: $GEN_RX"
echo "      P4: $GEN_TX"
echo
"$PY" "$HELPERS/report.py" "$RECORDS" ${JSON_OUT:+--json "$JSON_OUT"} \
	--meta "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" --meta "nproc=$(nproc)" --meta "kernel=$(uname -r)" \
	--meta "rounds=$ROUNDS" --meta "window_s=$WINDOW" --meta "quick=$QUICK" \
	--meta "command=scripts/bench.sh $ARGS"
echo
echo "elapsed: $(($(date +%s) - START)) s${JSON_OUT:+; JSON: $JSON_OUT}"
