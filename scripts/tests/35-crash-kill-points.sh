#!/usr/bin/env bash
# 35-crash-kill-points: no kill -9 anywhere in a join or a leave loses the
# devices' original settings (B21).
#   The VF is less capable and differently configured than the synthetic (tso
#   off, gso 30000/40, MTU 2000, down, allmulti on); the synthetic has MTU
#   1400. strace kills hnxdp with SIGKILL at spread points of its bpf, ioctl
#   and sendto calls:
#     A. `attach`, recovered by `detach`
#     B. `detach`, recovered by `detach`
#     C. `run` while it joins a VF that arrives, recovered by a new `run`
#     D. `run` while it undoes a VF that stopped matching, recovered by `detach`
#   After the recovery, and again after a further attach + detach, the guest's
#   devices read exactly as before the first attach (`ip -d link`, ethtool -k,
#   multicast lists, the VF's IPv6 autoconfiguration) and no pin, tcx link,
#   filter or state file is left.
#   KILL_POINTS_PER_CALL (default 7) bounds the points per syscall and phase.
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/run_helpers.sh"

PER_CALL=${KILL_POINTS_PER_CALL:-7}
STATE_DIR=${HNXDP_STATE_DIR:-/run/hnxdp}
SYSCALLS=(bpf ioctl sendto)
TRIED=0
HELD=0

rig_begin
rig_require_tools strace
rig_create

rig_vf_less_capable
ip -n "$RIG_GUEST" link set vf0 mtu 2000 allmulticast on
ip -n "$RIG_GUEST" link set hn0 mtu 1400

# What must read the same before the first attach and after every recovery.
snap() { # FILE
	rig_snapshot "$1"
	{
		echo "## multicast (guest)"
		ip -n "$RIG_GUEST" maddr show
		echo "## vf0 IPv6 autoconfiguration"
		rig_g sysctl net.ipv6.conf.vf0.autoconf net.ipv6.conf.vf0.accept_ra 2>&1 || true
		echo "## state files"
		find "$STATE_DIR" -path "*$RIG_GUEST_INO*" 2>/dev/null | sort || true
	} >>"$1"
}
snap "$RIG_TMP/before"

# count SYSCALL TRACEFILE: calls of SYSCALL in an strace -o file.
count() { grep -c " $1(" "$2" || true; }

# spread N M: up to M distinct points evenly over 1..N (first and last included).
spread() {
	local n=$1 m=$2 i
	((n > 0)) || return 0
	((m > n)) && m=$n
	if ((m == 1)); then echo 1; return; fi
	for ((i = 0; i < m; i++)); do echo $((1 + i * (n - 1) / (m - 1))); done | uniq
}

# killed SYSCALL K ARGS...: hnxdp ARGS in the guest, SIGKILLed at its K-th SYSCALL.
# Sets KILLED=1 when the kill happened (else the command ran to its end).
killed() {
	local sc=$1 k=$2 rc=0
	shift 2
	timeout -k 5 60 nsenter --net="/run/netns/$RIG_GUEST" -- \
		strace -f -qq -o /dev/null -e inject="$sc":signal=KILL:when="$k" "$HNXDP" "$@" >/dev/null 2>&1 || rc=$?
	KILLED=0
	((rc == 137)) && KILLED=1
	return 0
}

# The devices and the namespace read as before the first attach.
as_before() { # LABEL
	snap "$RIG_TMP/now"
	if cmp -s "$RIG_TMP/before" "$RIG_TMP/now"; then
		return 0
	fi
	fail "$1: not as before: $(diff "$RIG_TMP/before" "$RIG_TMP/now" | grep '^[<>]' | head -n 8 | tr '\n' '|')"
	return 1
}

# recover_detach LABEL: `detach` after a kill: 0, or 2 "not attached" when the kill
# came before anything was recorded; then the devices read as before.
recover_detach() {
	rig_try hnxdp_g detach --synthetic hn0
	if [[ $RIG_RC != 0 ]] && ! [[ $RIG_RC == 2 && $RIG_ERR == *"not attached"* ]]; then
		fail "$1: detach after the kill: exit $RIG_RC: $RIG_ERR"
		return 1
	fi
	as_before "$1: after detach"
}

# again LABEL: a further attach + detach also ends as before (nothing recorded an
# already-changed value as original).
again() {
	rig_try hnxdp_g attach --synthetic hn0 --vf vf0
	[[ $RIG_RC == 0 ]] || { fail "$1: attach after recovery: exit $RIG_RC: $RIG_ERR"; return 1; }
	rig_try hnxdp_g detach --synthetic hn0
	[[ $RIG_RC == 0 ]] || { fail "$1: detach after recovery: exit $RIG_RC: $RIG_ERR"; return 1; }
	as_before "$1: after attach + detach"
}

tally() { # LABEL OK
	TRIED=$((TRIED + 1))
	if [[ $2 == 0 ]]; then HELD=$((HELD + 1)); fi
}

# ---- A. attach
hnxdp_g attach --synthetic hn0 --vf vf0 >/dev/null # warm-up: counts below include nothing first-time
hnxdp_g detach --synthetic hn0 >/dev/null
nsenter --net="/run/netns/$RIG_GUEST" -- strace -f -qq -o "$RIG_TMP/attach.trace" -e trace=bpf,ioctl,sendto \
	"$HNXDP" attach --synthetic hn0 --vf vf0 >/dev/null
nsenter --net="/run/netns/$RIG_GUEST" -- strace -f -qq -o "$RIG_TMP/detach.trace" -e trace=bpf,ioctl,sendto \
	"$HNXDP" detach --synthetic hn0 >/dev/null
as_before "A: traced attach + detach" || true
for sc in "${SYSCALLS[@]}"; do
	n=$(count "$sc" "$RIG_TMP/attach.trace")
	note "attach makes $n $sc calls"
	for k in $(spread "$n" "$PER_CALL"); do
		killed "$sc" "$k" attach --synthetic hn0 --vf vf0
		ok=0
		recover_detach "A attach $sc#$k (killed=$KILLED)" || ok=1
		again "A attach $sc#$k" || ok=1
		((KILLED)) && tally A "$ok"
	done
done

# ---- B. detach
for sc in "${SYSCALLS[@]}"; do
	n=$(count "$sc" "$RIG_TMP/detach.trace")
	note "detach makes $n $sc calls"
	for k in $(spread "$n" "$PER_CALL"); do
		rig_try hnxdp_g attach --synthetic hn0 --vf vf0
		[[ $RIG_RC == 0 ]] || { fail "B: attach: $RIG_ERR"; continue; }
		killed "$sc" "$k" detach --synthetic hn0
		ok=0
		recover_detach "B detach $sc#$k (killed=$KILLED)" || ok=1
		again "B detach $sc#$k" || ok=1
		((KILLED)) && tally B "$ok"
	done
done

# ---- C and D: run, traced while it is idle in poll(2), so the calls counted are
# those of the join (vf0 takes the synthetic's MAC: a VF arrives) or of the leave
# (vf0 takes another MAC: it stops being the VF).
OTHER_MAC=02:00:00:00:35:35
vf_mac() { ip -n "$RIG_GUEST" link set vf0 address "$1"; }

# traced_run TRACEFILE|SYSCALL:K TRIGGER: run idle with the trigger's precondition;
# strace attaches to it, the trigger starts the join/leave. With a trace file,
# every call is written there; with SYSCALL:K, SIGKILL at that call.
# Sets KILLED, RUNPID.
traced_run() {
	local how=$1 trigger=$2 spid i
	run_start RUNPID --synthetic hn0 --settle-ms 0
	if [[ $trigger == leave ]]; then
		run_wait_dump 15 "pair active before the leave" "p and p['state'] == 'active'" || return 1
	fi
	if [[ $how == *:* ]]; then
		strace -f -qq -o /dev/null -p "$RUNPID" -e inject="${how%%:*}":signal=KILL:when="${how##*:}" &
	else
		strace -f -qq -o "$how" -p "$RUNPID" -e trace=bpf,ioctl,sendto &
	fi
	spid=$!
	for ((i = 0; i < 200; i++)); do
		[[ $(awk '/^TracerPid:/ {print $2}' "/proc/$RUNPID/status" 2>/dev/null) == "$spid" ]] && break
		sleep 0.025
	done
	case $trigger in
	join) vf_mac "$RIG_MAC" ;;
	leave) vf_mac "$OTHER_MAC" ;;
	esac
	KILLED=0
	if [[ $how == *:* ]]; then
		for ((i = 0; i < 200; i++)); do
			run_alive "$RUNPID" || break
			sleep 0.025
		done
		if run_alive "$RUNPID"; then
			# The point lies past this phase: stop it normally.
			kill "$spid" 2>/dev/null || true
			wait "$spid" 2>/dev/null || true
			run_stop "$RUNPID" || true
		else
			KILLED=1
			wait "$spid" 2>/dev/null || true
			rig_wait_pid "${RUN_WRAPPER[$RUNPID]}" 10 || true
		fi
	else
		if [[ $trigger == join ]]; then
			run_wait_dump 15 "traced run joins vf0" "p and p['state'] == 'active'" || true
		else
			run_wait_dump 15 "traced run lets vf0 go" "p and p['state'] != 'active'" || true
		fi
		kill "$spid" 2>/dev/null || true
		wait "$spid" 2>/dev/null || true
		run_stop "$RUNPID" || true
	fi
}

# C. vf0 has another MAC while run starts idle; it takes the synthetic's and is joined.
vf_mac "$OTHER_MAC"
traced_run "$RIG_TMP/join.trace" join
hnxdp_g detach --synthetic hn0 >/dev/null || true
as_before "C: traced join + detach" || true
for sc in "${SYSCALLS[@]}"; do
	n=$(count "$sc" "$RIG_TMP/join.trace")
	note "run's join makes $n $sc calls"
	for k in $(spread "$n" "$PER_CALL"); do
		vf_mac "$OTHER_MAC"
		traced_run "$sc:$k" join || { fail "C: run did not start"; continue; }
		ok=0
		# Recovery by a new control plane: it finishes the cut join and joins again.
		run_start RUNPID --synthetic hn0 --settle-ms 0
		run_wait_dump 15 "C run $sc#$k: a new run joins vf0" "p and p['state'] == 'active'" || ok=1
		run_stop "$RUNPID" || true
		rig_try hnxdp_g detach --synthetic hn0
		[[ $RIG_RC == 0 ]] || { fail "C run $sc#$k: detach: exit $RIG_RC: $RIG_ERR"; ok=1; }
		as_before "C run $sc#$k (killed=$KILLED)" || ok=1
		((KILLED)) && tally C "$ok"
	done
done

# D. run has joined vf0; vf0's MAC changes (it stops being the VF) and run undoes the join.
traced_run "$RIG_TMP/leave.trace" leave
vf_mac "$RIG_MAC"
hnxdp_g detach --synthetic hn0 >/dev/null || true
as_before "D: traced leave + detach" || true
for sc in "${SYSCALLS[@]}"; do
	n=$(count "$sc" "$RIG_TMP/leave.trace")
	note "run's leave makes $n $sc calls"
	for k in $(spread "$n" "$PER_CALL"); do
		traced_run "$sc:$k" leave || { fail "D: run did not join"; continue; }
		ok=0
		vf_mac "$RIG_MAC"
		recover_detach "D run $sc#$k (killed=$KILLED)" || ok=1
		again "D run $sc#$k" || ok=1
		((KILLED)) && tally D "$ok"
	done
done

note "kill points tried: $TRIED, held: $HELD"
assert_ge "at least 60 kill points were hit" "$TRIED" 60
assert_eq "every kill point held (originals back, nothing left)" "$HELD" "$TRIED"
rig_finish
