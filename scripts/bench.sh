#!/usr/bin/env bash
# bench.sh - hnxdp benchmark (cases, method and results: docs/benchmarks.md).
#
#   scripts/bench.sh [--rounds N] [--quick] [--json FILE] [--cases P1,P1b,...]
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
#   P4b  hnxdp / a tcx egress program on hn0 doing only bpf_redirect(vf0, 0)
#        (bpf/bench/redirect_egress_only.bpf.c), same load
#   P10  P1 (rx) and P4 (tx, "P10t") with hnxdp attached as classic tc filters (clsact +
#        cls_bpf, what kernels without tcx get) / attached with tcx; guest B takes guest
#        A's configuration for this case and is put back after it
#   P6   ns per frame of each hnxdp program minus an empty tc program (BPF_PROG_TEST_RUN)
#   P1g, P2g  P1 and P2 with `hnxdp gen` (BPF_PROG_TEST_RUN live frames) as the generator
#        instead of trafgen (guest vf0 with GRO on, so the veth takes XDP frames, in A and B)
#   P5   frames/s counted by `hnxdp xsk count` (AF_XDP, copy mode on veth) on guest A's pair /
#        by an AF_PACKET TPACKET_V3 ring reader on hn0 (scripts/bench/tpacket_v3.c); same
#        trafgen load into vf0h; a UDP sink on hn0 takes what the reader lets through
#   P5g  P5 with `hnxdp gen` as the load (trafgen alone cannot offer more than ~0.5 Mpps)
#   P7   frames lost around one VF departure at 100k frames/s (scripts/bench/pace.c, one
#        frame every 10 us; trafgen -b/-t cannot pace that finely here and `hnxdp gen --rate`
#        sends ~50 ms bursts, which makes losses all-or-nothing). Own rig: guest/host/remote,
#        host tc mirred switch as in scripts/lib/rig.sh, `hnxdp run` in the guest.
#        "P7 planned" (host switches, then vf0 deleted) and "P7 surprise" (vf0 deleted, then
#        host switches): lost frames; lost ms = lost / rate in the JSON. Each loss is split
#        by where it happened: "P7 surprise guest" (and planned): frames the guest's datapath
#        took (hnxdp's vf_rx + syn_rx) that did not reach the socket, target 0; host_lost in
#        the JSON: frames the host took in (remh rx) and sent towards the VF (not out of hn0h)
#        that never reached the guest's datapath: the emulated host's and the VF's teardown
#   P8   P1 in a guest with 256 pairs attached / P1 in guest A (1 pair); "P8 attach": wall
#        clock of 256 `hnxdp attach` invocations (per attach and process start-up as notes)
#   P11  with P8's 256 pairs attached (P8's guest): "P11 adopt": `hnxdp run` started
#        over them, time from its start to its "control plane running" log line (every
#        pinned pair adopted); "P11 status": wall time of `hnxdp status`, start to exit
#        (P11_STATUS_RUNS runs, default 10; the median). Needs P8's rig: P11 alone runs
#        P8's attaches too
#   P9   `hnxdp run` (own guest, 1 pair joined) idle CPU (utime+stime) from its start to the
#        end of the run, at least 60 s (--quick 20 s), and VmRSS (VmHWM as a note); it idles
#        alongside the other cases
#   G1   generators: frames/s of `hnxdp gen` / trafgen into the same veth, its peer running
#        a counting XDP_DROP program (bpf/bench/xdp_drop.bpf.c), counted in that program's map
# Controls, run before hnxdp is attached (nothing attached anywhere; expect 1.0: they
# show how far guest A and guest B differ by themselves):
#   C1   P1's traffic to a socket on vf0: guest A / guest B
#   C4   P4's traffic sent on vf0: guest A / guest B
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
#   --cases LIST    comma-separated subset of C1,C4,P1,P1g,P1b,P2,P2g,P3,P3r,P4,P4b,P10,P5,P5g,P6,P7,P8,P11,P9,G1
#   --window S      counting window per measurement in seconds (default 2)
#   --perf DIR      after the rounds of P1, P1b, P2, P4 profile one more window
#                   of each configuration (perf record -a -g -e cpu-clock): DIR/<case>-<A|B>.data
#                   and .count (frames delivered); then scripts/bench/perf_phases.py DIR
#                   P1-B P1-A ... prints ns per frame per phase of the path
# --quick: P8 (and P11) with 16 pairs instead of 256, P9 over about 20 s instead of 60 s.
# Environment: HNXDP (binary; default: a release build made in .build-bench),
#   CLANG (default: clang on PATH, else the clang next to swift in the Swift toolchain),
#   HNXDP_TC_MODE (passed through: P8/P11 attach with tcx or classic; default auto),
#   P11_STATUS_RUNS (runs of `hnxdp status` in P11, default 10),
#   P9_RUN_ARGS (more options for P9's `hnxdp run`, e.g. its metrics:
#   P9_RUN_ARGS="--metrics-listen 127.0.0.1:9469 --metrics-textfile /tmp/p9.prom").

set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
. "$REPO/scripts/lib/as_root.sh"
as_root "$@" # root (namespaces, BPF); else again through sudo; else exit 3
HELPERS="$BENCH_DIR/bench"
# The benchmark measures a release build as the package ships it (scripts/package.sh:
# the Swift runtime linked in, which also starts faster): built here (in .build-bench,
# its own scratch directory) unless HNXDP names a binary.
BUILD_NOTE="HNXDP=${HNXDP:-} (given)"
if [[ -z "${HNXDP:-}" ]]; then
	echo "bench: swift build -c release --static-swift-stdlib --scratch-path .build-bench" >&2
	(cd "$REPO" && swift build -c release --static-swift-stdlib --scratch-path .build-bench >&2) || { echo "bench.sh: the release build failed" >&2; exit 1; }
	HNXDP="$REPO/.build-bench/release/hnxdp"
	BUILD_NOTE="release build of $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo "this tree") ($HNXDP)"
fi
if [[ -z "${CLANG:-}" ]]; then
	CLANG=$(command -v clang || true)
	if [[ -z "$CLANG" ]] && command -v swift >/dev/null 2>&1; then
		CLANG="$(dirname "$(readlink -f "$(command -v swift)")")/clang"
	fi
fi
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)

ARGS="$*"
ROUNDS=""
QUICK=0
JSON_OUT=""
CASES="C1,C4,P1,P1g,P1b,P2,P2g,P3,P3r,P4,P4b,P10,P5,P5g,P6,P7,P8,P11,P9,G1"
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
	IPERF_OMIT=0
	TESTRUN_REPEAT=100000
	TESTRUN_FRESH=20000
	P7_SECONDS=0.6
	P8_PAIRS=16
	P9_SECONDS=20
else
	ROUNDS=${ROUNDS:-5}
	WINDOW=${WINDOW:-2}
	WARMUP=0.3
	IPERF_SECONDS=3
	IPERF_OMIT=1
	TESTRUN_REPEAT=1000000
	TESTRUN_FRESH=200000
	P7_SECONDS=1
	P8_PAIRS=256
	P9_SECONDS=60
fi
[[ -n $JSON_OUT ]] && JSON_OUT=$(realpath -m "$JSON_OUT")
# trafgen runs at most ~2 Mpps here; the count bound is a safety net above that,
# the time bound (timeout) the other one.
TRAFGEN_MAX_PPS=5000000
TRAFGEN_SECONDS=$(awk -v w="$WINDOW" -v u="$WARMUP" 'BEGIN { printf "%d", w + u + 4 }')
TRAFGEN_COUNT=$((TRAFGEN_MAX_PPS * TRAFGEN_SECONDS))
# hnxdp gen is stopped with SIGTERM (background jobs inherit SIGINT ignored); its own
# --seconds bound ends it just past the window anyway.
GEN_SECONDS=$(awk -v w="$WINDOW" -v u="$WARMUP" 'BEGIN { printf "%.2f", w + u + 0.4 }')

want() { [[ ",$CASES," == *",$1,"* ]]; }
log() { echo "bench: $*" >&2; }
die() { echo "bench.sh: $*" >&2; exit 1; }

# ------------------------------------------------------------------ checks

for t in ip tc trafgen iperf3 nsenter gcc jq awk timeout; do
	command -v "$t" >/dev/null || die "missing tool: $t"
done
[[ -n $CLANG && -x $CLANG ]] || die "no clang for BPF: none on PATH and no swift on PATH to find the toolchain's (set CLANG)"
[[ -x $HNXDP ]] || die "missing hnxdp binary: $HNXDP"
[[ -f /usr/include/bpf/libbpf.h ]] || die "missing libbpf-dev"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

# ------------------------------------------------------------------ rig state

ID="hnxb-$$-$RANDOM"
GA="$ID-ga" HA="$ID-ha" GB="$ID-gb" HB="$ID-hb"
TMP=$(mktemp -d "/tmp/$ID.XXXXXX")
LINK_PINS="/sys/fs/bpf/$ID"   # this run's own pins (P1b baseline, G1 counter)
RECORDS="$TMP/records.tsv"
NAMESPACES=()
HNXDP_NS=("$GA") # namespaces where hnxdp may have pinned something: detach --all at exit
PIDS=()
GMAC="02:48:4e:$(printf '%02x:%02x:%02x' $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)))"
HMAC="02:48:4f:$(printf '%02x:%02x:%02x' $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)))"
G4=198.18.0.1
H4=198.18.0.2
PORT=9

cleanup() {
	local rc=$? pid ns
	set +e
	trap - EXIT INT TERM ERR
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null
	done
	for ns in "${HNXDP_NS[@]}"; do
		[[ -e /run/netns/$ns ]] || continue
		nsenter --net="/run/netns/$ns" "$HNXDP" detach --all >/dev/null 2>"$TMP/detach.err" ||
			echo "bench.sh: hnxdp detach --all in $ns: $(head -1 "$TMP/detach.err")" >&2
	done
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
	for f in empty redirect_only redirect_egress_only xdp_drop; do
		"$CLANG" -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu \
			-c "$REPO/bpf/bench/$f.bpf.c" -o "$TMP/$f.bpf.o"
	done
	gcc -O2 -Wall -o "$TMP/testrun" "$HELPERS/testrun.c" -lbpf
	gcc -O2 -Wall -o "$TMP/tcxattach" "$HELPERS/tcxattach.c" -lbpf
	gcc -O2 -Wall -o "$TMP/xdpdrop" "$HELPERS/xdpdrop.c" -lbpf
	gcc -O2 -Wall -o "$TMP/tpacket_v3" "$HELPERS/tpacket_v3.c"
	gcc -O2 -Wall -o "$TMP/pace" "$HELPERS/pace.c"
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
# children_cpu_ms VAR: VAR = user + system ms of this shell's finished children so far
# (bash `times`, run in this shell: in a $(...) subshell it would see other children)
children_cpu_ms() {
	times >"$TMP/times"
	printf -v "$1" '%s' "$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.0f", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * 1000 }' "$TMP/times")"
}

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
		-O "$IPERF_OMIT" -J --connect-timeout 3000 ${3:-}) || die "iperf3 from $2 failed"
	printf -v "$var" '%s' "$(jq -r '.end.sum_received.bits_per_second | floor' <<<"$out")"
}

IPERF_DIR=""
case_p3() { # case_p3 [-R]
	local s1 s2 i id=P3 dir="guest -> host"
	IPERF_DIR=${1:-}
	[[ -n $IPERF_DIR ]] && id=P3r dir="host -> guest"
	case_header "$id" "TCP (iperf3, 1 stream) $dir: via hn0 (hnxdp) / on vf0" ratio ">=" 0.98 bps \
		"iperf3 $( (iperf3 -v 2>/dev/null || true) | awk 'NR == 1 {print $2}'), 1 stream, ${IPERF_SECONDS}s (+${IPERF_OMIT}s omitted), $dir"
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

tx4b_b() { rate VALUE "$GB" hn0 "$TMP/tx.cfg" "$HB" -q; }
case_p4b() {
	local sa sb
	case_header P4b "UDP 64B tx: sent on hn0, leaves via vf0: hnxdp / tcx egress bpf_redirect(vf0, 0) only" ratio ">=" 0.99 pps "$GEN_TX"
	nsnet "$GB" "$TMP/tcxattach" "$TMP/redirect_egress_only.bpf.o" "$(ifindex "$GB" hn0)" \
		"$(ifindex "$GB" vf0)" "$LINK_PINS/redirect_egress_only" egress
	hold_socket sa "$HA" vf0h
	hold_socket sb "$HB" vf0h
	interleave P4b tx_a tx4b_b
	maybe_perf P4b-B "$GB" hn0 "$TMP/tx.cfg" "$HB" -q
	stop "$sa"; stop "$sb"
	rm -f "$LINK_PINS/redirect_egress_only" # last reference: detaches the baseline
}

# P10: the classic tc attachment (what kernels without tcx get) against tcx, same run.
# Guest B becomes a copy of guest A (the address moves to hn0) with hnxdp attached
# --tc-mode classic; guest A is hnxdp with tcx. Afterwards B is put back.
case_p10() {
	local sa sb
	case_header P10 "UDP 64B rx: hnxdp attached with classic tc (clsact + cls_bpf) / with tcx" ratio ">=" 0.98 pps "$GEN_RX"
	case_header P10t "UDP 64B tx: hnxdp attached with classic tc / with tcx" ratio ">=" 0.98 pps "$GEN_TX"
	in_ns "$GB" ip addr del "$G4/24" dev vf0
	in_ns "$GB" ip addr add "$G4/24" dev hn0
	nsnet "$GB" "$HNXDP" attach --tc-mode classic --synthetic hn0 --vf vf0 >/dev/null || die "attach --tc-mode classic in guest B failed"
	[[ $(nsnet "$GB" "$HNXDP" dump --json | jq -r '.pairs[0].attachment') == classic ]] || die "guest B's pair is not classic"
	in_ns "$GB" ping -c 1 -W 2 "$H4" >/dev/null || die "guest B (classic) cannot reach host B through the pair"
	hold_socket sa "$GA" hn0
	hold_socket sb "$GB" hn0
	interleave P10 rx_b rx_a
	stop "$sa"; stop "$sb"
	hold_socket sa "$HA" vf0h
	hold_socket sb "$HB" vf0h
	interleave P10t p10t_classic tx_a
	stop "$sa"; stop "$sb"
	nsnet "$GB" "$HNXDP" detach --synthetic hn0 >/dev/null || die "detach in guest B failed"
	in_ns "$GB" ip addr del "$G4/24" dev hn0
	in_ns "$GB" ip addr add "$G4/24" dev vf0
}
p10t_classic() { rate VALUE "$GB" hn0 "$TMP/tx.cfg" "$HB" -q; }

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

# ------------------------------------------------------------------ hnxdp gen as generator

# rate_gen VAR TX_NS TX_DEV DST_MAC SRC_MAC RX_NS: like rate, with `hnxdp gen` (as fast as
# it goes) instead of trafgen. The frame is P1's (198.18.0.2:1024 -> 198.18.0.1:9, 64 bytes).
rate_gen() {
	local var=$1 txns=$2 dev=$3 dmac=$4 smac=$5 rxns=$6 g c0 c1 t0 t1 n0 n1 x
	bg g nsenter --net="/run/netns/$txns" "$HNXDP" gen --dev "$dev" --dst-mac "$dmac" --src-mac "$smac" \
		--dst-ip "$G4" --src-ip "$H4" --dst-port "$PORT" --src-port 1024 \
		--count "$TRAFGEN_COUNT" --seconds "$GEN_SECONDS" >>"$TMP/gen.log" 2>&1
	sleep "$WARMUP"
	t0=$(now); read -r c0 n0 < <(udp_delivered "$rxns"); t0=$(((t0 + $(now)) / 2))
	sleep "$WINDOW"
	t1=$(now); read -r c1 n1 < <(udp_delivered "$rxns"); t1=$(((t1 + $(now)) / 2))
	kill -0 "$g" 2>/dev/null || log "warning: hnxdp gen ended before the window closed ($txns $dev)"
	stop "$g" # TERM: background jobs of a script inherit SIGINT ignored
	x=$(awk -v c="$((c1 - c0))" -v t="$((t1 - t0))" 'BEGIN { printf "%.0f", c * 1e6 / t }')
	((n1 - n0 == 0)) || log "warning: $((n1 - n0)) datagrams found no socket in $rxns (wrong device?)"
	((c1 > c0)) || die "nothing delivered in $rxns (hnxdp gen on $dev in $txns)"
	printf -v "$var" '%s' "$x"
}
GEN_RX_GEN="hnxdp gen (BPF_PROG_TEST_RUN live frames, XDP redirect out of vf0h), 64-byte UDP, as fast as it goes; guest vf0 GRO on (veth NAPI) in A and B; sink: socket bound to the device, Udp InDatagrams+RcvbufErrors"
rxg_a() { rate_gen VALUE "$HA" vf0h "$GMAC" "$HMAC" "$GA"; }
rxg_b() { rate_gen VALUE "$HB" vf0h "$GMAC" "$HMAC" "$GB"; }
gro_vf0() { in_ns "$GA" ethtool -K vf0 gro "$1" >/dev/null; in_ns "$GB" ethtool -K vf0 gro "$1" >/dev/null; }

case_p1g() {
	local sa sb
	case_header P1g "P1 with hnxdp gen: UDP 64B rx: vf0 -> hn0 socket (hnxdp) / vf0 socket, nothing attached" ratio ">=" 0.95 pps "$GEN_RX_GEN"
	gro_vf0 on
	hold_socket sa "$GA" hn0
	hold_socket sb "$GB" vf0
	interleave P1g rxg_a rxg_b
	stop "$sa"; stop "$sb"
	gro_vf0 off
}

case_p2g() {
	local sa sb
	case_header P2g "P2 with hnxdp gen: UDP 64B rx: hnxdp / tc u32 + mirred ingress redirect" ratio ">=" 1.02 pps "$GEN_RX_GEN"
	gro_vf0 on
	in_ns "$GB" tc qdisc add dev vf0 clsact
	in_ns "$GB" tc filter add dev vf0 ingress protocol all prio 1 u32 match u32 0 0 \
		action mirred ingress redirect dev hn0
	hold_socket sa "$GA" hn0
	hold_socket sb "$GB" hn0
	interleave P2g rxg_a rxg_b
	stop "$sa"; stop "$sb"
	in_ns "$GB" tc qdisc del dev vf0 clsact
	gro_vf0 off
}

# ------------------------------------------------------------------ G1: generators

G1S="$ID-g1s" G1R="$ID-g1r"
g1_count() { "$TMP/xdpdrop" count "$LINK_PINS/g1_count"; }
# g1_rate VAR PID: frames/s counted by the XDP_DROP sink while generator PID runs
g1_rate() {
	local var=$1 pid=$2 c0 c1 t0 t1
	sleep "$WARMUP"
	t0=$(now); c0=$(g1_count); t0=$(((t0 + $(now)) / 2))
	sleep "$WINDOW"
	t1=$(now); c1=$(g1_count); t1=$(((t1 + $(now)) / 2))
	kill -0 "$pid" 2>/dev/null || log "warning: generator ended before the window closed (G1)"
	stop "$pid" "${3:-TERM}"
	((c1 > c0)) || die "G1: nothing counted by the XDP_DROP sink"
	printf -v "$var" '%s' "$(awk -v c="$((c1 - c0))" -v t="$((t1 - t0))" 'BEGIN { printf "%.0f", c * 1e6 / t }')"
}
g1_a() {
	local g
	bg g nsenter --net="/run/netns/$G1S" "$HNXDP" gen --dev g1 --dst-mac "$G1_PMAC" --src-mac "$G1_SMAC" \
		--dst-ip "$G4" --src-ip "$H4" --dst-port "$PORT" --src-port 1024 \
		--count "$TRAFGEN_COUNT" --seconds "$GEN_SECONDS" >>"$TMP/gen.log" 2>&1
	g1_rate VALUE "$g" TERM
}
g1_b() {
	local g
	bg g timeout -s INT "$TRAFGEN_SECONDS" ip netns exec "$G1S" \
		trafgen -i "$TMP/g1.cfg" -o g1 -P 1 -n "$TRAFGEN_COUNT" --no-sock-mem -Q -C >>"$TMP/trafgen.log" 2>&1
	g1_rate VALUE "$g" INT
}
case_g1() {
	local ns
	for ns in "$G1S" "$G1R"; do
		ip netns add "$ns"
		NAMESPACES+=("$ns")
		in_ns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	done
	ip -n "$G1S" link add g1 address "$HMAC" type veth peer name g1p netns "$G1R" address "$GMAC"
	ip -n "$G1S" link set g1 up
	ip -n "$G1R" link set g1p up
	G1_SMAC=$HMAC G1_PMAC=$GMAC
	frame_cfg "$TMP/g1.cfg" "$G1_SMAC" "$G1_PMAC" "$H4" "$G4"
	nsnet "$G1R" "$TMP/xdpdrop" attach "$TMP/xdp_drop.bpf.o" "$(ifindex "$G1R" g1p)" "$LINK_PINS/g1_count"
	case_header G1 "generators into one veth (peer: XDP_DROP, counted in its map): hnxdp gen / trafgen" ratio ">=" 3 pps \
		"A: hnxdp gen (BPF_PROG_TEST_RUN live frames), B: trafgen $TRAFGEN_VERSION -P 1 (qdisc bypass); 64-byte UDP"
	interleave G1 g1_a g1_b
	ip netns del "$G1S"; ip netns del "$G1R"
	rm -f "$LINK_PINS/g1_count"
}

# ------------------------------------------------------------------ P5: AF_XDP vs TPACKET_V3

# p5_recv VAR CMD...: start trafgen into host A's vf0h, after WARMUP run the receiver CMD
# (which counts for WINDOW seconds by itself and prints JSON); VAR = its frames / WINDOW.
p5_recv() {
	local var=$1 tg out
	shift
	bg tg timeout -s INT "$TRAFGEN_SECONDS" ip netns exec "$HA" \
		trafgen -i "$TMP/rx.cfg" -o vf0h -P 1 -n "$TRAFGEN_COUNT" --no-sock-mem -Q -C >>"$TMP/trafgen.log" 2>&1
	sleep "$WARMUP"
	out=$("$@") || die "P5 receiver failed: $*"
	echo "$out" >>"$TMP/p5.log"
	kill -0 "$tg" 2>/dev/null || log "warning: trafgen ended before the P5 receiver finished"
	stop "$tg" INT
	printf -v "$var" '%s' "$(jq -r --arg w "$WINDOW" 'if .fps then .fps else (.total / ($w | tonumber)) end | floor' <<<"$out")"
}
# p5g_recv VAR CMD...: the same with hnxdp gen (as fast as it goes) as the load.
p5g_recv() {
	local var=$1 g out
	shift
	bg g nsenter --net="/run/netns/$HA" "$HNXDP" gen --dev vf0h --dst-mac "$GMAC" --src-mac "$HMAC" \
		--dst-ip "$G4" --src-ip "$H4" --dst-port "$PORT" --src-port 1024 \
		--count "$TRAFGEN_COUNT" --seconds "$(awk -v s="$GEN_SECONDS" 'BEGIN { print s + 1.5 }')" >>"$TMP/gen.log" 2>&1
	sleep "$WARMUP"
	out=$("$@") || die "P5g receiver failed: $*" # xsk count needs up to ~1 s to set up: gen runs 1.5 s longer
	echo "$out" >>"$TMP/p5.log"
	kill -0 "$g" 2>/dev/null || log "warning: hnxdp gen ended before the P5g receiver finished"
	stop "$g"
	printf -v "$var" '%s' "$(jq -r --arg w "$WINDOW" 'if .fps then .fps else (.total / ($w | tonumber)) end | floor' <<<"$out")"
}
p5g_a() { p5g_recv VALUE nsenter --net="/run/netns/$GA" "$HNXDP" xsk count --synthetic hn0 --seconds "$WINDOW" --json; }
p5g_b() { p5g_recv VALUE nsenter --net="/run/netns/$GA" "$TMP/tpacket_v3" hn0 "$WINDOW"; }
case_p5g() {
	local sa
	case_header P5g "P5 with hnxdp gen: rx frames/s on guest A's pair: xsk count (AF_XDP) / TPACKET_V3 reader on hn0" ratio ">=" 3 pps \
		"hnxdp gen (live frames) 64-byte UDP into vf0h as fast as it goes; guest A vf0 GRO on (so the veth takes XDP frames without an XDP program: B)"
	in_ns "$GA" ethtool -K vf0 gro on >/dev/null
	hold_socket sa "$GA" hn0
	interleave P5g p5g_a p5g_b
	stop "$sa"
	in_ns "$GA" ethtool -K vf0 gro off >/dev/null
	note P5g tpacket_kernel_drops_last "$(grep kernel_drops "$TMP/p5.log" | tail -1 | jq .kernel_drops)"
}
p5_a() { p5_recv VALUE nsenter --net="/run/netns/$GA" "$HNXDP" xsk count --synthetic hn0 --seconds "$WINDOW" --json; }
p5_b() { p5_recv VALUE nsenter --net="/run/netns/$GA" "$TMP/tpacket_v3" hn0 "$WINDOW"; }
case_p5() {
	local sa
	case_header P5 "rx frames/s on guest A's pair: hnxdp xsk count (AF_XDP) / TPACKET_V3 ring reader on hn0" ratio ">=" 3 pps \
		"trafgen $TRAFGEN_VERSION 64-byte UDP into vf0h (as P1), 1 CPU; A counts frames/--seconds, B frames/its own clock"
	hold_socket sa "$GA" hn0 # as in P1: frames the reader lets through end in a socket, not in ICMP port-unreachable work
	interleave P5 p5_a p5_b
	stop "$sa"
	note P5 xsk_mode "\"$(grep -o '"mode":"[^"]*"' "$TMP/p5.log" | head -1 | cut -d'"' -f4)\""
	note P5 tpacket_kernel_drops_last "$(grep kernel_drops "$TMP/p5.log" | tail -1 | jq .kernel_drops)"
}

# ------------------------------------------------------------------ P7: VF departure

G7="$ID-g7" H7="$ID-h7" R7="$ID-r7"
P7_RATE=100000
p7_switch() { # p7_switch vf0h|hn0h: the host's datapath switch (as rig.sh's rig_host_switch)
	tc -n "$H7" filter replace dev remh ingress pref 10 protocol all handle 800::800 \
		u32 match u32 0 0 action mirred egress redirect dev "$1"
}
p7_fwd() { # p7_fwd DEV: everything arriving on host port DEV goes out of remh
	tc -n "$H7" qdisc add dev "$1" clsact
	tc -n "$H7" filter add dev "$1" ingress pref 10 protocol all u32 match u32 0 0 action mirred egress redirect dev remh
}
p7_state() { nsnet "$G7" "$HNXDP" dump --json 2>/dev/null | jq -r '.pairs[0].state // "none"'; }
# p7_counts: "remh_rx hn0h_tx vf_rx syn_rx": what the host took in from the remote and sent
# out of its synthetic port (kernel device counters), and what the guest's datapath took in on
# each path (hnxdp's counters; they survive the VF, and `run` keeps them across departures).
p7_counts() {
	local h
	h=$(ip -n "$H7" -s -j link show | jq -r '[(.[] | select(.ifname == "remh") | .stats64.rx.packets),
		(.[] | select(.ifname == "hn0h") | .stats64.tx.packets)] | @tsv')
	echo "$h $(nsnet "$G7" "$HNXDP" dump --json | jq -r '.pairs[0].stats | [.vf_rx_packets, .syn_rx_packets] | @tsv')"
}
p7_wait_state() { # p7_wait_state STATE
	local i
	for ((i = 0; i < 200; i++)); do
		[[ $(p7_state) == "$1" ]] && return 0
		sleep 0.05
	done
	die "P7: pair did not become $1 (now $(p7_state))"
}
p7_vf_add() {
	ip -n "$G7" link add vf0 address "$P7_MAC" type veth peer name vf0h netns "$H7"
	ip -n "$H7" link set vf0h up
	p7_fwd vf0h
	ip -n "$G7" link set vf0 up
	p7_wait_state active
	p7_switch vf0h
}
p7_vf_del() {
	local i
	ip -n "$G7" link del vf0
	for ((i = 0; i < 100; i++)); do
		ip -n "$H7" link show dev vf0h >/dev/null 2>&1 || return 0
		sleep 0.01
	done
	die "P7: vf0h still there 1 s after deleting vf0"
}
# p7_round MODE: send P7_SECONDS of 100k frames/s from remote to guest, the departure
# MODE (planned|surprise|none) in the middle; VALUE = frames lost; P7_STEP_MS = how long
# the two departure steps (ip link del, tc filter replace) took together. `ip link del`
# returns after both veth ends are unregistered, so no waiting is needed in between.
p7_round() {
	local mode=$1 g c0 c1 x n out t0 t1 i r0 h0 v0 s0 r1 h1 v1 s1
	p7_wait_state active
	read -r r0 h0 v0 s0 < <(p7_counts)
	read -r c0 x < <(udp_delivered "$G7")
	n=$(awk -v r="$P7_RATE" -v s="$P7_SECONDS" 'BEGIN { printf "%d", r * s }')
	bg g timeout -s INT $((${P7_SECONDS%.*} + 10)) ip netns exec "$R7" \
		"$TMP/pace" eth0 "$P7_MAC" "$H4" "$G4" "$P7_RATE" "$n" $((${P7_SECONDS%.*} + 5)) >"$TMP/p7.pace"
	for ((x = 0; x < 300; x++)); do # until the traffic flows (trafgen takes a while to start)
		read -r c1 t1 < <(udp_delivered "$G7")
		((c1 > c0)) && break
		sleep 0.01
	done
	sleep "$(awk -v s="$P7_SECONDS" 'BEGIN { print s / 3 }')"
	t0=$(now)
	case $mode in
	planned) p7_switch hn0h; p7_vf_del ;;
	surprise) p7_vf_del; p7_switch hn0h ;;
	esac
	t1=$(now)
	wait "$g" || die "P7: pace failed or timed out"
	stop "$g"
	sleep 0.2
	read -r c1 x < <(udp_delivered "$G7")
	read -r r1 h1 v1 s1 < <(p7_counts)
	out=$(jq -r .sent "$TMP/p7.pace")
	VALUE=$((out - (c1 - c0)))
	# Where the frames were lost: before the host (remote -> remh), in the host or the VF's
	# teardown (taken in, not sent to hn0h, never seen by the guest's datapath), or in the
	# guest after its datapath took them (hnxdp's share). The sink's 2 queued datagrams of
	# the control round are in the last one (see control_lost_no_departure).
	P7_REMOTE=$((out - (r1 - r0)))
	P7_HOST=$(((r1 - r0) - (h1 - h0) - (v1 - v0)))
	P7_GUEST=$(((v1 - v0) + (s1 - s0) - (c1 - c0)))
	P7_STEP_MS=$(awk -v d="$((t1 - t0))" 'BEGIN { printf "%.1f", d / 1000 }')
	log "P7 $mode: sent $out, delivered $((c1 - c0)), lost $VALUE (before the host $P7_REMOTE, host/VF teardown $P7_HOST, guest after hnxdp took them $P7_GUEST); departure steps took $P7_STEP_MS ms"
	[[ $mode == none ]] || p7_vf_add
}
p7_lost_ms() { awk -v l="$VALUE" -v r="$P7_RATE" 'BEGIN { printf "%.2f", l * 1000 / r }'; }
p7_a() { p7_round planned; P7_STEPS_A+=("$P7_STEP_MS"); P7_MS_A+=("$(p7_lost_ms)"); P7_HOST_A+=("$P7_HOST"); P7_REM_A+=("$P7_REMOTE"); }
p7_b() { p7_round surprise; P7_STEPS_B+=("$P7_STEP_MS"); P7_MS_B+=("$(p7_lost_ms)"); P7_HOST_B+=("$P7_HOST"); P7_REM_B+=("$P7_REMOTE"); }
case_p7() {
	local ns sink run r
	P7_MAC="02:48:4d:$(printf '%02x:%02x:%02x' $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)))"
	for ns in "$G7" "$H7" "$R7"; do
		ip netns add "$ns"
		NAMESPACES+=("$ns")
		in_ns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
		ip -n "$ns" link set lo up
	done
	HNXDP_NS+=("$G7")
	ip -n "$R7" link add eth0 type veth peer name remh netns "$H7"
	ip -n "$H7" link set remh up
	tc -n "$H7" qdisc add dev remh clsact
	ip -n "$G7" link add hn0 address "$P7_MAC" type veth peer name hn0h netns "$H7"
	ip -n "$H7" link set hn0h up
	p7_fwd hn0h
	p7_switch hn0h
	ip -n "$G7" addr add "$G4/24" dev hn0
	ip -n "$G7" link set hn0 up
	ip -n "$R7" addr add "$H4/24" dev eth0
	ip -n "$R7" link set eth0 up
	bg run nsenter --net="/run/netns/$G7" "$HNXDP" run --synthetic hn0 --settle-ms 0 --hold-down-ms 1 \
		--flap-threshold 1000 >"$TMP/p7.run.log" 2>&1
	hold_socket sink "$G7" hn0
	p7_wait_state idle
	p7_vf_add
	P7_STEPS_A=() P7_STEPS_B=() P7_MS_A=() P7_MS_B=() P7_HOST_A=() P7_HOST_B=() P7_REM_A=() P7_REM_B=()
	case_header "P7 planned" "frames lost, planned switch (host -> synthetic, then vf0 deleted), 100k frames/s" value "<=" 0 frames \
		"scripts/bench/pace.c: 64-byte UDP every 10 us (busy-wait pacing, no bursts) remote -> host (tc mirred switch) -> guest, ${P7_SECONDS}s per round, departure in the middle; hnxdp run in the guest; sink: socket on hn0, Udp counters"
	case_header "P7 surprise" "frames lost, surprise removal (vf0 deleted, then host -> synthetic), 100k frames/s" value "<=" 500 frames \
		"as P7 planned; target 500 frames = 5 ms at 100k frames/s"
	case_header "P7 planned guest" "of P7 planned's lost frames: those the guest's datapath took (hnxdp vf_rx + syn_rx) that did not reach the socket" value "<=" 0 frames \
		"as P7 planned; the rest (host_lost, remote_lost in the JSON) is the emulated host's and the VF's teardown"
	case_header "P7 surprise guest" "of P7 surprise's lost frames: those the guest's datapath took (hnxdp vf_rx + syn_rx) that did not reach the socket" value "<=" 0 frames \
		"as P7 surprise; the rest (host_lost, remote_lost in the JSON) is the emulated host's and the VF's teardown"
	p7_round none
	note "P7 planned" control_lost_no_departure "$VALUE" # the never-read sink keeps its first 2 datagrams queued (not counted)
	for ((r = 0; r < ROUNDS; r++)); do
		local order=(A B)
		((r % 2)) && order=(B A)
		for cfg in "${order[@]}"; do
			if [[ $cfg == A ]]; then
				p7_a; record "P7 planned" "$r" A "$VALUE"; record "P7 planned guest" "$r" A "$P7_GUEST"
			else
				p7_b; record "P7 surprise" "$r" A "$VALUE"; record "P7 surprise guest" "$r" A "$P7_GUEST"
			fi
		done
	done
	note "P7 planned" departure_steps_ms "[$(IFS=,; echo "${P7_STEPS_A[*]}")]"
	note "P7 surprise" departure_steps_ms "[$(IFS=,; echo "${P7_STEPS_B[*]}")]"
	note "P7 planned" lost_ms "[$(IFS=,; echo "${P7_MS_A[*]}")]"
	note "P7 surprise" lost_ms "[$(IFS=,; echo "${P7_MS_B[*]}")]"
	note "P7 surprise" rate_fps "$P7_RATE"
	note "P7 planned" host_lost "[$(IFS=,; echo "${P7_HOST_A[*]}")]"
	note "P7 surprise" host_lost "[$(IFS=,; echo "${P7_HOST_B[*]}")]"
	note "P7 planned" remote_lost "[$(IFS=,; echo "${P7_REM_A[*]}")]"
	note "P7 surprise" remote_lost "[$(IFS=,; echo "${P7_REM_B[*]}")]"
	note "P7 planned" rate_fps "$P7_RATE"
	stop "$run"; stop "$sink"
}

# ------------------------------------------------------------------ P8: 256 pairs

G8="$ID-g8" H8="$ID-h8"
rx8_a() { rate VALUE "$H8" vf0h "$TMP/rx.cfg" "$G8"; }
case_p8() {
	local i mac sa sb t0 t1 ta tb per=() start=() bat8 bath tot
	make_side "$G8" "$H8"
	HNXDP_NS+=("$G8")
	ip -n "$G8" addr add "$G4/24" dev hn0
	bat8="$TMP/p8.batch" bath="$TMP/p8h.batch"
	: >"$bat8"; : >"$bath"
	for ((i = 1; i < P8_PAIRS; i++)); do
		mac=$(printf '02:48:50:%02x:%02x:%02x' $((RANDOM % 256)) $((i / 256)) $((i % 256)))
		echo "link add hn$i address $mac type veth peer name hn${i}h netns $H8" >>"$bat8"
		echo "link add vf$i address $mac type veth peer name vf${i}h netns $H8" >>"$bat8"
		echo "link set hn$i up" >>"$bat8"; echo "link set vf$i up" >>"$bat8"
		echo "link set hn${i}h up" >>"$bath"; echo "link set vf${i}h up" >>"$bath"
	done
	ip -n "$G8" -batch "$bat8"
	ip -n "$H8" -batch "$bath"
	log "P8: $P8_PAIRS pairs of veths in $G8; attaching them one CLI invocation each"
	for ((i = 0; i < 10; i++)); do # process start-up + argument parsing alone
		ta=$(now); nsnet "$G8" "$HNXDP" attach --help >/dev/null; tb=$(now)
		start+=($((tb - ta)))
	done
	t0=$(now)
	nsnet "$G8" "$HNXDP" attach --synthetic hn0 --vf vf0 >/dev/null
	t1=$(now); per+=($((t1 - t0)))
	for ((i = 1; i < P8_PAIRS; i++)); do
		ta=$(now)
		nsnet "$G8" "$HNXDP" attach --synthetic "hn$i" --vf "vf$i" >/dev/null
		tb=$(now); per+=($((tb - ta)))
	done
	t1=$(now)
	tot=$(nsnet "$G8" "$HNXDP" dump --json | jq '.pairs | length')
	((tot == P8_PAIRS)) || die "P8: $tot pairs attached, wanted $P8_PAIRS"
	want P11 && case_p11
	want P8 || return 0
	local op="<="
	((P8_PAIRS == 256)) || op=info # the target is for 256 pairs
	case_header "P8 attach" "wall clock of $P8_PAIRS \`hnxdp attach\` invocations (one per pair, first loads the datapath)" value "$op" 2 s \
		"hnxdp $HNXDP, sequential CLI invocations under nsenter, tc mode ${HNXDP_TC_MODE:-auto}"
	record "P8 attach" 0 A "$(awk -v d="$((t1 - t0))" 'BEGIN { printf "%.3f", d / 1e6 }')"
	note "P8 attach" per_attach_ms "$(printf '%s\n' "${per[@]}" | sort -n | awk '{ v[NR] = $1 / 1000 } END { printf "{\"first\": %.1f, \"median\": %.1f, \"p90\": %.1f, \"max\": %.1f}", '"${per[0]}"' / 1000, v[int((NR + 1) / 2)], v[int(NR * 0.9)], v[NR] }')"
	note "P8 attach" process_startup_ms_median "$(printf '%s\n' "${start[@]}" | sort -n | awk '{ v[NR] = $1 / 1000 } END { printf "%.1f", v[int((NR + 1) / 2)] }')"
	note "P8 attach" pairs "$P8_PAIRS"
	case_header P8 "P1 with $P8_PAIRS pairs attached / P1 with 1 pair (guest A)" ratio ">=" 0.95 pps "$GEN_RX"
	in_ns "$G8" ping -c 1 -W 2 "$H4" >/dev/null || die "P8 guest cannot reach its host"
	hold_socket sa "$G8" hn0
	hold_socket sb "$GA" hn0
	interleave P8 rx8_a rx_a
	stop "$sa"; stop "$sb"
}

# ------------------------------------------------------------------ P11: adopting and reading 256 pairs

# P11 in P8's guest, with its P8_PAIRS pairs attached: `run` adopting them all, and `status`.
case_p11() {
	local r i pid log t0 t1 line vals=() ms runs=${P11_STATUS_RUNS:-10} op="<="
	((P8_PAIRS == 256)) || op=info # the targets are for 256 pairs
	case_header "P11 adopt" "hnxdp run over $P8_PAIRS pinned pairs: start to its \"control plane running\" line (ms)" value "$op" 500 ms \
		"hnxdp $HNXDP, nsenter, no --synthetic (the pinned pairs)"
	for ((r = 0; r < ROUNDS; r++)); do
		log="$TMP/p11.run.$r.log"
		t0=$(now)
		bg pid nsenter --net="/run/netns/$G8" "$HNXDP" run --settle-ms 0 >"$log" 2>&1
		line=""
		for ((i = 0; i < 6000; i++)); do # up to 60 s
			line=$(grep -m1 'control plane running' "$log" || true)
			[[ -n $line ]] && break
			kill -0 "$pid" 2>/dev/null || die "P11: hnxdp run ended before it ran: $(tail -1 "$log")"
			sleep 0.01
		done
		t1=$(now)
		[[ -n $line ]] || die "P11: hnxdp run logged no \"control plane running\" within 60 s"
		[[ $line == *"$P8_PAIRS pair(s)"* ]] || die "P11: run did not adopt the $P8_PAIRS pairs: $line"
		stop "$pid"
		# The poll above adds up to 10 ms; the line's own timestamp is the start-up's end.
		ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
		record "P11 adopt" "$r" A "$ms"
	done
	case_header "P11 status" "wall time of \`hnxdp status\` with $P8_PAIRS pairs, start to exit (ms, median of $runs)" value "$op" 20 ms \
		"hnxdp $HNXDP under nsenter"
	local c0 c1
	children_cpu_ms c0
	for ((r = 0; r < runs; r++)); do
		t0=$(now)
		nsnet "$G8" "$HNXDP" status >/dev/null
		t1=$(now)
		record "P11 status" "$r" A "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1000 }')"
	done
	children_cpu_ms c1
	# CPU (user + system) per run, the mean over the runs (the kernel's accounting has a
	# 10 ms tick): on a busy machine wall time is CPU time plus waiting for a CPU.
	note "P11 status" cpu_ms_per_run "$(awk -v a="$c0" -v b="$c1" -v n="$runs" 'BEGIN { printf "%.1f", (b - a) / n }')"
	[[ $(nsnet "$G8" "$HNXDP" status | wc -l) == "$P8_PAIRS" ]] || die "P11: status did not list $P8_PAIRS pairs"
}

# ------------------------------------------------------------------ P9: idle control plane

G9="$ID-g9" H9="$ID-h9"
P9_PID=""
p9_start() {
	local i st=""
	make_side "$G9" "$H9"
	HNXDP_NS+=("$G9")
	ip -n "$G9" addr add "$G4/24" dev hn0
	# shellcheck disable=SC2086 # P9_RUN_ARGS is a list of options
	bg P9_PID nsenter --net="/run/netns/$G9" "$HNXDP" run --synthetic hn0 --settle-ms 0 ${P9_RUN_ARGS:-} >"$TMP/p9.run.log" 2>&1
	for ((i = 0; i < 200; i++)); do
		st=$(nsnet "$G9" "$HNXDP" dump --json 2>/dev/null | jq -r '.pairs[0].state // "none"')
		[[ $st == active ]] && break
		sleep 0.05
	done
	[[ $st == active ]] || die "P9: hnxdp run did not join vf0 (state $st)"
	sleep 0.5
	P9_C0=$(awk '{ print $14 + $15 }' "/proc/$P9_PID/stat")
	P9_T0=$(now)
	log "P9: hnxdp run (pid $P9_PID) idle from now, measured at the end (>= ${P9_SECONDS}s)"
}
p9_finish() {
	local c1 t1 tick rest cpu_s wall rss hwm
	rest=$(awk -v t0="$P9_T0" -v n="$(now)" -v s="$P9_SECONDS" 'BEGIN { r = s - (n - t0) / 1e6; print (r > 0 ? r : 0) }')
	sleep "$rest"
	c1=$(awk '{ print $14 + $15 }' "/proc/$P9_PID/stat")
	t1=$(now)
	tick=$(getconf CLK_TCK)
	rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$P9_PID/status")
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$P9_PID/status")
	cpu_s=$(awk -v c="$((c1 - P9_C0))" -v k="$tick" 'BEGIN { printf "%.3f", c / k }')
	wall=$(awk -v d="$((t1 - P9_T0))" 'BEGIN { printf "%.1f", d / 1e6 }')
	case_header "P9 cpu" "hnxdp run idle CPU (utime+stime) over ${wall}s, 1 pair joined, % of one CPU" value "<=" 0.1 % \
		"/proc/PID/stat, CLK_TCK $tick (resolution $(awk -v k="$tick" -v w="$wall" 'BEGIN { printf "%.3f", 100 / k / w }') %)"
	record "P9 cpu" 0 A "$(awk -v c="$cpu_s" -v w="$wall" 'BEGIN { printf "%.4f", 100 * c / w }')"
	note "P9 cpu" cpu_seconds "$cpu_s"
	note "P9 cpu" wall_seconds "$wall"
	case_header "P9 rss" "hnxdp run resident memory VmRSS (MiB)" value "<=" 30 MiB "/proc/PID/status, debug build"
	record "P9 rss" 0 A "$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')"
	note "P9 rss" vmhwm_mib "$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')"
	stop "$P9_PID"
}

# ------------------------------------------------------------------ main

START=$(date +%s)
timed() { # timed CMD...: run one case, log how long it took
	local t0=$EPOCHREALTIME
	"$@"
	log "$* took $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
}
build
make_rig
: >"$RECORDS"
want C1 && timed case_c1
want C4 && timed case_c4
want P9 && timed p9_start
attach_hnxdp
want P1 && timed case_p1
want P1b && timed case_p1b
want P2 && timed case_p2
want P3 && timed case_p3
want P3r && timed case_p3 -R
want P4 && timed case_p4
want P4b && timed case_p4b
want P10 && timed case_p10
want P6 && timed case_p6
want G1 && timed case_g1
want P1g && timed case_p1g
want P2g && timed case_p2g
want P5 && timed case_p5
want P5g && timed case_p5g
want P7 && timed case_p7
if want P8 || want P11; then timed case_p8; fi
want P9 && p9_finish

echo
echo "hnxdp benchmark: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, Linux $(uname -r), rounds $ROUNDS, window ${WINDOW}s$( ((QUICK)) && echo ", quick")"
echo "build: $BUILD_NOTE"
echo "load: P1/P1b/P2: $GEN_RX"
echo "      P4: $GEN_TX"
if want P1g || want P2g; then echo "      P1g/P2g: $GEN_RX_GEN"; fi
if want G1; then echo "      G1: hnxdp gen vs trafgen into one veth; sink: XDP_DROP program on the peer, counted in its map"; fi
echo
"$PY" "$HELPERS/report.py" "$RECORDS" ${JSON_OUT:+--json "$JSON_OUT"} \
	--meta "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" --meta "nproc=$(nproc)" --meta "kernel=$(uname -r)" \
	--meta "rounds=$ROUNDS" --meta "window_s=$WINDOW" --meta "quick=$QUICK" \
	--meta "command=scripts/bench.sh $ARGS"
echo
echo "elapsed: $(($(date +%s) - START)) s${JSON_OUT:+; JSON: $JSON_OUT}"
