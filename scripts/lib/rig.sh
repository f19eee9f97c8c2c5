# shellcheck shell=bash
# rig.sh - the emulated hypervisor rig for hnxdp's integration tests and demo.
#
# Source it from a bash script. It sets `set -Eeuo pipefail` and traps: ERR
# (one FAIL line naming the command and line), EXIT (rig_cleanup, and a tally
# that never reads as success if rig_finish was not reached), INT/TERM/HUP
# (exit, so EXIT runs):
#
#   . "$(dirname "$0")/../lib/rig.sh"
#   rig_begin                  # checks root, tools, binary; names the test
#   rig_create                 # builds the rig; cleanup runs on EXIT
#   rig_host_switch vf
#   hnxdp_g attach --synthetic hn0 --vf vf0
#   ...
#   rig_finish                 # prints "NAME: N passed, N failed", exits 0/1
#
# Topology (three network namespaces, names unique per run:
# hnxrig-<pid>-<random>-{guest,host,remote}):
#
#   guest: hn0 (synthetic, 198.18.0.1/24, fd00::1/64)   vf0 (VF, no address)
#            |  same locally administered MAC ($RIG_MAC)   |
#   host:  hn0h                                          vf0h      remh
#            \________ tc ingress: mirred -> remh ________/          |
#            remh ingress: mirred -> vf0h ("vf") or hn0h ("syn")      |
#   remote:                                                         eth0 (198.18.0.2/24, fd00::2/64)
#
# The host plays the hypervisor's virtual switch with tc only (clsact +
# `u32 match u32 0 0` + `mirred egress redirect`): every frame from hn0h or
# vf0h goes to remh; every frame from remh goes to vf0h or hn0h depending on
# the host datapath switch. The host has no addresses and IPv6 is off there,
# so it emits nothing of its own. vf0 keeps IPv6 (a link-local address, like
# a real VF), so a frame wrongly left on vf0 can reach a socket bound to it.
# DAD is off in guest and remote.
#
# Variables set by rig_create:
#   RIG_ID                      unique prefix of this run's names
#   RIG_GUEST RIG_HOST RIG_REMOTE   namespace names
#   RIG_GUEST_INO               inode of the guest netns (pin directory key)
#   RIG_PIN_ROOT                ${HNXDP_BPFFS:-/sys/fs/bpf/hnxdp}
#   RIG_PIN_DIR                 $RIG_PIN_ROOT/$RIG_GUEST_INO
#   RIG_MAC                     the shared MAC of hn0 and vf0
#   RIG_DATAPATH                current host switch: vf | syn
#   RIG_TMP                     scratch directory, removed at cleanup
# Constants: RIG_G4=198.18.0.1 RIG_R4=198.18.0.2 RIG_G6=fd00::1 RIG_R6=fd00::2
# Other globals: RIG_REPO (repository root), RIG_TOOLS (scripts/tools),
#   HNXDP (binary; default $RIG_REPO/.build/debug/hnxdp), RIG_PY (python3),
#   RIG_TEST (test name, from $0). HNXDP_BPFFS is passed through untouched
#   (hnxdp then uses it instead of its default); the rig never passes --bpffs.
# Knobs: RIG_VF_UP=1 (bring vf0 up at creation); RIG_HNXDP_TIMEOUT=60 (s per
#   hnxdp command); RIG_STRICT_GLOBAL (count machine-wide BPF checks: default
#   1 when $CI is set, else 0 because other runs may share the machine).
#
# Functions:
#   rig_begin                   name the test, check root + tools + hnxdp binary
#   rig_require_root | rig_require_tools TOOL... | rig_require_hnxdp
#   rig_create                  build the rig (the EXIT trap, set when this file
#                               is sourced, runs rig_cleanup even on failure)
#   rig_cleanup                 delete everything the rig made (idempotent): stop
#                               background jobs, `hnxdp detach --all` in the
#                               guest, remove leftover pins, delete namespaces
#   rig_host_switch vf|syn      point the host's remote->guest path
#   rig_vf_remove_surprise      delete vf0, then switch the host to syn
#   rig_vf_remove_planned       switch the host to syn, then delete vf0
#   rig_vf_add                  create vf0 again (same MAC, new ifindex); host
#                               stays as it is: call rig_host_switch vf after
#   rig_vf_less_capable [NS] [DEV]  vf0: tso off, gso 30000/40
#   rig_count_udp TAG PORT EXPECTED  $N datagrams remote -> guest, counted by a socket on hn0
#   rig_g / rig_h / rig_r CMD   run CMD in guest / host / remote (ip netns exec;
#                               never for hnxdp)
#   hnxdp_g ARGS                run hnxdp in the guest (nsenter, host mounts kept)
#   rig_try CMD...              run CMD, set RIG_RC, RIG_OUT, RIG_ERR (never fails)
#   rig_dump_json               print `hnxdp dump --json` of the guest
#   rig_dump_get PATH           one value of `dump --json` (jsonq path; never fails)
#   rig_stat NAME [SYN]         one counter of the pair of SYN (default hn0)
#   rig_json PATH...            tools/jsonq.py on stdin
#   rig_ifindex NS DEV          ifindex of DEV in namespace NS
#   rig_link_stat NS DEV rx|tx  veth packet counter of DEV in NS
#   rig_tcx DEV...              tcx attachments of guest devices (JSON)
#   rig_tcx_count DEV DIR [PREFIX]  number of tcx programs (name PREFIX*, default hnxdp_)
#   rig_tcx_summary DEV...      "dev/dir=link_id ..." of the hnxdp tcx attachments
#   rig_bg VAR CMD...           start CMD in the background, pid in $VAR (killed at cleanup)
#   rig_wait_pid PID SECONDS    wait for a background job; its exit code (124 on timeout)
#   rig_wait_file PATH SECONDS  wait until PATH exists
#   wait_until SECONDS DESC CMD...  poll CMD until it succeeds; fail on timeout
#   rig_snapshot FILE [DEV...]  what "no change" means: guest links, features,
#                               tc, tcx, pins and pinned links (+ every hnxdp
#                               link of the machine when RIG_STRICT_GLOBAL=1)
#   rig_reap_stale              remove namespaces/pins of rigs whose process died
# Assertions (each prints one PASS/FAIL line and keeps going):
#   pass DESC | fail DESC | fatal DESC (FAIL and exit now)
#   assert_eq DESC ACTUAL EXPECTED       assert_ne DESC ACTUAL UNEXPECTED
#   assert_ge DESC ACTUAL MIN            assert_le DESC ACTUAL MAX
#   assert_in DESC ACTUAL "A|B|C"        assert_contains DESC HAYSTACK NEEDLE
#   assert_not_contains DESC HAYSTACK NEEDLE
#   assert_files_equal DESC FILE1 FILE2  (shows the diff on failure)
#   assert_one_stderr_line DESC          (about RIG_ERR of the last rig_try)
#   assert_global_eq DESC ACTUAL EXPECTED  (machine-wide state; see RIG_STRICT_GLOBAL)

set -Eeuo pipefail

RIG_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RIG_REPO=$(cd "$RIG_LIB_DIR/../.." && pwd)
RIG_TOOLS="$RIG_REPO/scripts/tools"
HNXDP=${HNXDP:-"$RIG_REPO/.build/debug/hnxdp"}
RIG_PY=${RIG_PY:-$(command -v python3 || echo python3)}
RIG_TEST=${RIG_TEST:-$(basename "$0" .sh)}
RIG_VF_UP=${RIG_VF_UP:-1}
RIG_HNXDP_TIMEOUT=${RIG_HNXDP_TIMEOUT:-60}
if [[ -n "${CI:-}" ]]; then RIG_STRICT_GLOBAL=${RIG_STRICT_GLOBAL:-1}; else RIG_STRICT_GLOBAL=${RIG_STRICT_GLOBAL:-0}; fi

RIG_G4=198.18.0.1
RIG_R4=198.18.0.2
RIG_G6=fd00::1
RIG_R6=fd00::2

RIG_PASSED=0
RIG_FAILED=0
RIG_CREATED=0
RIG_BG_PIDS=()
RIG_ID=""
RIG_GUEST=""
RIG_HOST=""
RIG_REMOTE=""
RIG_TMP=""
RIG_DATAPATH=""
RIG_RC=0
RIG_OUT=""
RIG_ERR=""

# Tools whose absence makes a test fail (CI has them all).
RIG_TOOLS_NEEDED=(ip tc ethtool bpftool nsenter setpriv timeout ping tcpdump stat mountpoint pgrep)

# ---------------------------------------------------------------- reporting

pass() { RIG_PASSED=$((RIG_PASSED + 1)); echo "PASS: $RIG_TEST: $*"; }
fail() { RIG_FAILED=$((RIG_FAILED + 1)); echo "FAIL: $RIG_TEST: $*"; }
fatal() { fail "$*"; exit 1; }
note() { echo "  .. $*"; }

assert_eq() {
	if [[ "$2" == "$3" ]]; then pass "$1 ($2)"; else fail "$1: got '$2', expected '$3'"; fi
}
assert_ne() {
	if [[ "$2" != "$3" ]]; then pass "$1 ($2)"; else fail "$1: got '$2', expected anything else"; fi
}
rig__is_int() { [[ "$1" =~ ^-?[0-9]+$ ]]; }
assert_ge() {
	if rig__is_int "$2" && rig__is_int "$3" && (($2 >= $3)); then pass "$1 ($2 >= $3)"
	else fail "$1: got '$2', expected >= $3"; fi
}
assert_le() {
	if rig__is_int "$2" && rig__is_int "$3" && (($2 <= $3)); then pass "$1 ($2 <= $3)"
	else fail "$1: got '$2', expected <= $3"; fi
}
assert_in() {
	local v
	IFS='|' read -r -a v <<<"$3"
	local x
	for x in "${v[@]}"; do
		if [[ "$2" == "$x" ]]; then pass "$1 ($2)"; return 0; fi
	done
	fail "$1: got '$2', expected one of $3"
}
assert_contains() {
	if [[ "$2" == *"$3"* ]]; then pass "$1"; else fail "$1: '$3' not found in: $(rig__short "$2")"; fi
}
assert_not_contains() {
	if [[ "$2" != *"$3"* ]]; then pass "$1"; else fail "$1: '$3' found in: $(rig__short "$2")"; fi
}
assert_files_equal() {
	if cmp -s "$2" "$3"; then pass "$1"; else
		fail "$1: differs (diff below, '<' before, '>' after)"
		diff "$2" "$3" | head -n 40 | sed 's/^/    /' || true
	fi
}
assert_one_stderr_line() {
	local n
	n=$(printf '%s' "$RIG_ERR" | grep -c . || true)
	if [[ "$n" == 1 ]]; then pass "$1: one stderr line: $RIG_ERR"
	else fail "$1: expected exactly one line on stderr, got $n: $(rig__short "$RIG_ERR")"; fi
}
rig__short() { printf '%s' "$1" | tr '\n' '|' | cut -c1-400; }

RIG_FINISHED=0
rig_finish() {
	RIG_FINISHED=1
	echo "$RIG_TEST: $RIG_PASSED passed, $RIG_FAILED failed"
	if ((RIG_FAILED > 0 || RIG_PASSED == 0)); then exit 1; fi
	exit 0
}

# EXIT trap: clean the rig up; a script that stops before rig_finish (errexit,
# fatal, a signal) still prints its tally and never exits 0.
rig__on_exit() {
	local rc=$?
	rig_cleanup
	if [[ $RIG_FINISHED == 0 ]]; then
		((rc != 0)) || rc=1
		echo "$RIG_TEST: stopped early (exit $rc): $RIG_PASSED passed, $((RIG_FAILED > 0 ? RIG_FAILED : 1)) failed"
	fi
	exit "$rc"
}

rig__on_err() {
	local rc=$1 line=$2 cmd=$3
	# Only report once, from the shell that owns the test (not from subshells).
	if [[ "${BASHPID:-$$}" == "$$" ]]; then
		fail "unexpected failure (exit $rc) at ${BASH_SOURCE[1]:-?}:$line: $cmd"
	fi
}
trap 'rig__on_err $? $LINENO "$BASH_COMMAND"' ERR
trap rig__on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# ---------------------------------------------------------------- requirements

rig_require_root() {
	[[ $(id -u) == 0 ]] || fatal "must run as root (try: sudo $0)"
}
rig_require_tools() {
	local t missing=()
	for t in "$@"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
	((${#missing[@]} == 0)) || fatal "missing tools: ${missing[*]} (run scripts/install-deps.sh as root)"
	"$RIG_PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 7) else 1)' \
		|| fatal "python3 >= 3.7 needed ($RIG_PY)"
}
rig_require_hnxdp() {
	[[ -x "$HNXDP" ]] || fatal "hnxdp binary not found or not executable at $HNXDP (run 'swift build' or set HNXDP)"
}
rig_require_bpffs() {
	mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf \
		|| fatal "bpffs is not mounted at /sys/fs/bpf and mounting it failed"
}
rig_begin() {
	echo "== $RIG_TEST"
	rig_require_root
	rig_require_tools "${RIG_TOOLS_NEEDED[@]}"
	rig_require_bpffs
	rig_require_hnxdp
}

# ---------------------------------------------------------------- namespaces

rig_g() { ip netns exec "$RIG_GUEST" "$@"; }
rig_h() { ip netns exec "$RIG_HOST" "$@"; }
rig_r() { ip netns exec "$RIG_REMOTE" "$@"; }

# hnxdp in the guest: nsenter switches only the network namespace, so the
# host's mount namespace (and /sys/fs/bpf) stays; `ip netns exec` would give
# hnxdp a private /sys and its pins would vanish.
hnxdp_g() {
	timeout -k 5 "$RIG_HNXDP_TIMEOUT" nsenter --net="/run/netns/$RIG_GUEST" -- "$HNXDP" "$@"
}

rig_try() {
	local out="$RIG_TMP/try.out" err="$RIG_TMP/try.err"
	RIG_RC=0
	"$@" >"$out" 2>"$err" || RIG_RC=$?
	RIG_OUT=$(cat "$out")
	RIG_ERR=$(cat "$err")
}

rig_json() { "$RIG_PY" "$RIG_TOOLS/jsonq.py" "$@"; }

rig_dump_json() { hnxdp_g dump --json "$@"; }

# One value of `dump --json` (never fails: prints "missing" or "unreadable").
rig_dump_get() {
	local path=$1 v
	v=$(rig_dump_json | rig_json --default missing "$path") || v="unreadable"
	printf '%s\n' "$v"
}

rig_stat() {
	rig_dump_get "pairs[synthetic.name=${2:-hn0}].stats.$1"
}

rig_ifindex() {
	ip -n "$1" -j link show dev "$2" | rig_json '[0].ifindex'
}

rig_link_stat() {
	local dir=$3
	ip -n "$1" -j -s link show dev "$2" | rig_json "[0].stats64.$dir.packets"
}

rig_tcx() { nsenter --net="/run/netns/$RIG_GUEST" -- "$RIG_PY" "$RIG_TOOLS/tcx_query.py" "$@"; }

rig_tcx_count() {
	local dev=$1 dir=$2 prefix=${3-hnxdp_}
	rig_tcx "$dev" | "$RIG_PY" -c '
import json, sys
d = json.load(sys.stdin)[sys.argv[1]]
print(0 if d is None else sum(1 for p in d[sys.argv[2]] if p["name"].startswith(sys.argv[3])))
' "$dev" "$dir" "$prefix"
}

# "dev/dir=link_id ..." of the hnxdp tcx attachments of guest devices.
rig_tcx_summary() {
	rig_tcx "$@" | "$RIG_PY" -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join(f"{dev}/{dir}={p['"'"'link_id'"'"']}" for dev in sorted(d) if d[dev]
               for dir in ("ingress", "egress") for p in d[dev][dir] if p["name"].startswith("hnxdp_")))'
}

# ---------------------------------------------------------------- waiting and jobs

wait_until() {
	local secs=$1 desc=$2
	shift 2
	local end=$((SECONDS + secs))
	# SECONDS has 1 s granularity; also bound the number of polls.
	local i=0 max=$((secs * 20 + 20))
	while ! "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		if ((SECONDS > end || i > max)); then
			fail "timed out after ${secs}s waiting for: $desc"
			return 1
		fi
		sleep 0.05
	done
	return 0
}

rig_wait_file() {
	local path=$1 secs=$2 i=0
	while [[ ! -e "$path" ]]; do
		i=$((i + 1))
		((i <= secs * 20)) || return 1
		sleep 0.05
	done
}

rig_bg() {
	local __var=$1
	shift
	"$@" &
	local pid=$!
	RIG_BG_PIDS+=("$pid")
	printf -v "$__var" '%s' "$pid"
}

rig_wait_pid() {
	local pid=$1 secs=$2 i=0 rc=0
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		if ((i > secs * 20)); then
			kill "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
			echo "rig: job $pid still running after ${secs}s: stopped" >&2
			return 124
		fi
		sleep 0.05
	done
	wait "$pid" || rc=$?
	return "$rc"
}

# ---------------------------------------------------------------- the rig

rig__random_mac() {
	# 02:... = locally administered, unicast.
	printf '02:48:4e:%02x:%02x:%02x' $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256))
}

rig__host_forward() {
	# Everything arriving on $1 (a host-side port) goes out of remh.
	local dev=$1
	tc -n "$RIG_HOST" qdisc add dev "$dev" clsact
	tc -n "$RIG_HOST" filter add dev "$dev" ingress pref 10 protocol all \
		u32 match u32 0 0 action mirred egress redirect dev remh
}

rig_create() {
	[[ $RIG_CREATED == 0 ]] || fatal "rig_create called twice"
	RIG_ID="hnxrig-$$-$RANDOM"
	RIG_GUEST="$RIG_ID-guest"
	RIG_HOST="$RIG_ID-host"
	RIG_REMOTE="$RIG_ID-remote"
	RIG_TMP=$(mktemp -d "/tmp/$RIG_ID.XXXXXX")
	chmod 755 "$RIG_TMP"
	RIG_MAC=$(rig__random_mac)
	RIG_CREATED=1 # from here on the EXIT trap deletes what exists

	ip netns add "$RIG_GUEST"
	ip netns add "$RIG_HOST"
	ip netns add "$RIG_REMOTE"
	RIG_GUEST_INO=$(stat -L -c %i "/run/netns/$RIG_GUEST")
	RIG_PIN_ROOT=${HNXDP_BPFFS:-/sys/fs/bpf/hnxdp}
	RIG_PIN_DIR="$RIG_PIN_ROOT/$RIG_GUEST_INO"
	if [[ -e "$RIG_PIN_DIR" ]]; then
		# The namespace is brand new, so nothing can own pins under its inode:
		# they are leftovers of a killed run whose namespace had the same inode.
		echo "rig: removing stale pin directory $RIG_PIN_DIR (left by an earlier run)" >&2
		rm -rf "$RIG_PIN_DIR"
	fi

	# Sysctls first, so devices created below inherit them.
	rig_g sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
	rig_r sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
	rig_h sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1

	ip -n "$RIG_GUEST" link set lo up
	ip -n "$RIG_REMOTE" link set lo up
	ip -n "$RIG_HOST" link set lo up

	# Remote and the host's uplink port.
	ip -n "$RIG_REMOTE" link add eth0 type veth peer name remh netns "$RIG_HOST"
	ip -n "$RIG_HOST" link set remh up
	tc -n "$RIG_HOST" qdisc add dev remh clsact

	# Synthetic.
	ip -n "$RIG_GUEST" link add hn0 type veth peer name hn0h netns "$RIG_HOST"
	ip -n "$RIG_GUEST" link set hn0 address "$RIG_MAC"
	ip -n "$RIG_HOST" link set hn0h up
	rig__host_forward hn0h

	# VF.
	rig_vf_add

	# Host datapath starts on the synthetic path, as before any VF is offered.
	rig_host_switch syn

	ip -n "$RIG_GUEST" addr add "$RIG_G4/24" dev hn0
	ip -n "$RIG_GUEST" addr add "$RIG_G6/64" dev hn0 nodad
	ip -n "$RIG_GUEST" link set hn0 up
	ip -n "$RIG_REMOTE" addr add "$RIG_R4/24" dev eth0
	ip -n "$RIG_REMOTE" addr add "$RIG_R6/64" dev eth0 nodad
	ip -n "$RIG_REMOTE" link set eth0 up

	wait_until 10 "guest hn0 and remote eth0 have carrier" rig__carrier_up
	echo "rig: $RIG_ID up (guest netns inode $RIG_GUEST_INO, MAC $RIG_MAC)"
}

rig__carrier_up() {
	ip -n "$RIG_GUEST" link show dev hn0 | grep -q LOWER_UP \
		&& ip -n "$RIG_REMOTE" link show dev eth0 | grep -q LOWER_UP
}

rig_vf_add() {
	if ip -n "$RIG_GUEST" link show dev vf0 >/dev/null 2>&1; then
		fatal "rig_vf_add: vf0 already exists"
	fi
	ip -n "$RIG_GUEST" link add vf0 type veth peer name vf0h netns "$RIG_HOST"
	ip -n "$RIG_GUEST" link set vf0 address "$RIG_MAC"
	ip -n "$RIG_HOST" link set vf0h up
	rig__host_forward vf0h
	if [[ $RIG_VF_UP == 1 ]]; then
		ip -n "$RIG_GUEST" link set vf0 up
	fi
}

# The VF offers less than the synthetic (tso off, gso_max_size 30000,
# gso_max_segs 40), so a join visibly changes the synthetic.
rig_count_udp() { # TAG PORT EXPECTED: send $N UDP datagrams from the remote, count what a socket bound to hn0 gets
	rm -f "$RIG_TMP/ready-$2"
	rig_bg kpid rig_g "$RIG_PY" "$RIG_TOOLS/udp_sink.py" --dev hn0 --port "$2" --seconds 8 --expect "$N" --linger 0.5 \
		--ready-file "$RIG_TMP/ready-$2" >"$RIG_TMP/sink-$2"
	rig_wait_file "$RIG_TMP/ready-$2" 10 || fail "$1: sink on port $2 did not start"
	rig_try rig_r "$RIG_PY" "$RIG_TOOLS/udp_send.py" --dst "$RIG_G4" --port "$2" --count "$N" --rate 1000
	rig_wait_pid "$kpid" 15 || true
	assert_eq "$1: UDP to port $2: socket on hn0 received" "$(cat "$RIG_TMP/sink-$2")" "$3"
}

rig_vf_less_capable() { # [NS] [DEV]
	local ns=${1:-$RIG_GUEST} dev=${2:-vf0}
	ip netns exec "$ns" ethtool -K "$dev" tso off
	ip -n "$ns" link set "$dev" gso_max_size 30000 gso_max_segs 40
}

rig_host_switch() {
	local to=$1 dev
	case $to in
	vf) dev=vf0h ;;
	syn) dev=hn0h ;;
	*) fatal "rig_host_switch: expected vf or syn, got '$to'" ;;
	esac
	if ! ip -n "$RIG_HOST" link show dev "$dev" >/dev/null 2>&1; then
		fatal "rig_host_switch $to: $dev does not exist in the host"
	fi
	# `replace` with a fixed handle swaps the action atomically: no frame
	# meets an empty ingress hook.
	tc -n "$RIG_HOST" filter replace dev remh ingress pref 10 protocol all handle 800::800 \
		u32 match u32 0 0 action mirred egress redirect dev "$dev"
	RIG_DATAPATH=$to
}

rig__vf_delete() {
	ip -n "$RIG_GUEST" link del vf0 # takes vf0h with it
	local i=0
	while ip -n "$RIG_HOST" link show dev vf0h >/dev/null 2>&1; do
		i=$((i + 1))
		((i < 100)) || fatal "vf0h still present 5 s after deleting vf0"
		sleep 0.05
	done
}

rig_vf_remove_surprise() {
	rig__vf_delete
	rig_host_switch syn
}

rig_vf_remove_planned() {
	rig_host_switch syn
	rig__vf_delete
}

# Stop a background job of ours and the processes it started (by pid).
rig__kill_tree() {
	local pid=$1 child
	for child in $(pgrep -P "$pid" 2>/dev/null); do rig__kill_tree "$child"; done
	kill "$pid" 2>/dev/null || true
}

rig_cleanup() {
	set +e
	trap - ERR
	[[ $RIG_CREATED == 1 ]] || return 0
	RIG_CREATED=0
	local pid
	for pid in "${RIG_BG_PIDS[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then
			rig__kill_tree "$pid"
			wait "$pid" 2>/dev/null
		fi
	done
	if [[ -e "/run/netns/$RIG_GUEST" && -x "$HNXDP" ]]; then
		if ! timeout -k 5 30 nsenter --net="/run/netns/$RIG_GUEST" -- "$HNXDP" detach --all \
			>"$RIG_TMP/cleanup.out" 2>&1; then
			echo "rig: cleanup: 'hnxdp detach --all' failed: $(rig__short "$(cat "$RIG_TMP/cleanup.out")")" >&2
		fi
	fi
	# AF_XDP pair lock files of the guest (left by an application killed with -9;
	# hnxdp removes them itself on a normal end).
	[[ -n "${RIG_GUEST_INO:-}" ]] && rm -f "${HNXDP_STATE_DIR:-/run/hnxdp}/xsk-$RIG_GUEST_INO-"*.lock
	if [[ -n "${RIG_PIN_DIR:-}" && -e "$RIG_PIN_DIR" ]]; then
		echo "rig: cleanup: removing leftover pins $RIG_PIN_DIR" >&2
		rm -rf "$RIG_PIN_DIR"
	fi
	local ns
	for ns in "$RIG_GUEST" "$RIG_HOST" "$RIG_REMOTE"; do
		[[ -n "$ns" && -e "/run/netns/$ns" ]] && ip netns del "$ns"
	done
	[[ -n "$RIG_TMP" && -d "$RIG_TMP" ]] && rm -rf "$RIG_TMP"
	return 0
}

# Remove what killed runs left: namespaces named hnxrig-<pid>-... whose
# process no longer exists, and the pins of their guest namespace.
rig_reap_stale() {
	local f name pid ino root=${HNXDP_BPFFS:-/sys/fs/bpf/hnxdp}
	for f in /run/netns/hnxrig-*; do
		[[ -e "$f" ]] || continue
		name=$(basename "$f")
		pid=$(cut -d- -f2 <<<"$name")
		[[ "$pid" =~ ^[0-9]+$ ]] || continue
		kill -0 "$pid" 2>/dev/null && continue
		if [[ "$name" == *-guest ]]; then
			ino=$(stat -L -c %i "$f" 2>/dev/null || true)
			if [[ -x "$HNXDP" ]]; then
				timeout -k 5 30 nsenter --net="$f" -- "$HNXDP" detach --all >/dev/null 2>&1 || true
			fi
			[[ -n "$ino" && -e "$root/$ino" ]] && rm -rf "${root:?}/$ino"
		fi
		echo "rig: removing stale namespace $name"
		ip netns del "$name" 2>/dev/null || true
	done
}

# ---------------------------------------------------------------- snapshots

# Everything an hnxdp command could change, in a stable text form. Used to
# prove that a refused command changed nothing, and that detach restored all.
rig_snapshot() {
	local out=$1
	shift
	local devs=("$@") dev dir
	((${#devs[@]} > 0)) || devs=(hn0 vf0)
	{
		echo "## ip -d link (guest; bridge timers masked)"
		ip -n "$RIG_GUEST" -d link show | sed 's/\([a-z_]*_timer\) *[0-9.]*/\1 -/g'
		for dev in "${devs[@]}"; do
			echo "## ethtool -k $dev"
			rig_g ethtool -k "$dev" 2>&1 || true
		done
		echo "## tc qdisc (guest)"
		tc -n "$RIG_GUEST" qdisc show
		for dev in "${devs[@]}"; do
			for dir in ingress egress; do
				echo "## tc filter $dev $dir"
				tc -n "$RIG_GUEST" filter show dev "$dev" "$dir" 2>&1 || true
			done
		done
		echo "## tcx (guest)"
		rig_tcx "${devs[@]}"
		echo "## pins"
		if [[ -e "$RIG_PIN_DIR" ]]; then (cd "$RIG_PIN_DIR" && find . | sort); else echo absent; fi
		echo "## pinned links"
		rig__pinned_links
		if [[ $RIG_STRICT_GLOBAL == 1 ]]; then
			echo "## bpf links of hnxdp programs (global)"
			rig_hnxdp_links
		fi
	} >"$out" 2>&1
}

rig__pinned_links() {
	[[ -d "$RIG_PIN_DIR" ]] || return 0
	local f
	while IFS= read -r f; do
		printf '%s: ' "${f#"$RIG_PIN_DIR"/}"
		bpftool link show pinned "$f" 2>&1 | head -n 1
	done < <(find "$RIG_PIN_DIR" -name 'link_*' | sort)
}

# assert_global_eq DESC ACTUAL EXPECTED: a check of machine-wide BPF state
# (every program/link of the kernel, not only this rig's). Counted only when
# RIG_STRICT_GLOBAL=1 (the default under CI, where nothing else runs); on a
# shared development machine other runs load hnxdp programs too, so there a
# mismatch is only reported.
assert_global_eq() {
	if [[ $RIG_STRICT_GLOBAL == 1 ]]; then
		assert_eq "$@"
	elif [[ "$2" == "$3" ]]; then
		pass "$1 ($2)"
	else
		echo "NOTE: $RIG_TEST: $1: got '$2', expected '$3' (not counted: RIG_STRICT_GLOBAL=0, other BPF users may be running)"
	fi
}

# "link_id prog_id prog_name" of every BPF link whose program is named hnxdp_*.
rig_hnxdp_links() {
	local links progs
	links=$(bpftool -j link show 2>/dev/null || echo '[]')
	progs=$(bpftool -j prog show 2>/dev/null || echo '[]')
	"$RIG_PY" -c '
import json, sys
links = json.loads(sys.argv[1] or "[]")
progs = {p["id"]: p.get("name", "") for p in json.loads(sys.argv[2] or "[]")}
for l in sorted(links, key=lambda l: l["id"]):
    name = progs.get(l.get("prog_id"), "")
    if name.startswith("hnxdp"):
        print(l["id"], l.get("type"), l.get("prog_id"), name)
' "$links" "$progs"
}

# "id name" of every loaded program named hnxdp_*.
rig_hnxdp_progs() {
	bpftool -j prog show 2>/dev/null | "$RIG_PY" -c '
import json, sys
for p in sorted(json.load(sys.stdin), key=lambda p: p["id"]):
    if p.get("name", "").startswith("hnxdp"):
        print(p["id"], p["name"])
'
}
