#!/usr/bin/env bash
# 76-run-flap-soak: `hnxdp run` joins and leaves a VF FLAP_CYCLES times (default
# 1000) and nothing accumulates: no fd, no memory beyond allocator slack, no
# BPF object, pin or write-ahead record (B13, B19, B21; issue "crash-consistent
# pairing", soak).
#   hn0 is managed by `run --settle-ms 0 --hold-down-ms 50 --flap-threshold
#   1000`: every arrival is joined at once and no arrival is ever held down,
#   so every cycle is a real join and a real leave. A cycle: vf0 arrives (a
#   VF without TSO and with smaller GSO limits, set up before it takes hn0's
#   MAC, so the join really changes hn0); wait until the pinned pair entry is
#   active with vf0's new ifindex and the write-ahead record says "joined";
#   vf0 is deleted (surprise removal); wait until the entry is idle with no
#   VF and the record is gone. (One waiter process answers every wait, by
#   reading the pinned map and the record: no process per wait.)
#   Measured while joined and while idle, after the first, the middle and the
#   last cycle: the run process's fds, VmRSS, the BPF progs/maps/links it
#   holds, the namespace's pins and BPF links, its files under /run/hnxdp, and the
#   machine's hnxdp programs and links. Asserted, last vs first, in the same
#   phase: fds, BPF fds, pins, links and state files exactly equal; RSS at most
#   4 MiB higher (the process's malloc arenas and Swift runtime caches may
#   keep a few pages they touched once at a peak and never return them:
#   that is slack, not a leak; a leak of 8 KiB per cycle would be 8 MiB
#   at 1000 cycles, twice the slack); machine-wide counts equal (counted only with
#   RIG_STRICT_GLOBAL=1). The log counts exactly one join and one leave per
#   cycle and no hold-down; after the last leave no record is left and hn0
#   reads exactly as before the first join; the run log has no error line.
# Knobs: FLAP_CYCLES (default 1000), FLAP_MAX_SECONDS (bound of the loop,
#   default 120 + 1 s per cycle).
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/run_helpers.sh"

FLAPS=${FLAP_CYCLES:-1000}
[[ "$FLAPS" =~ ^[0-9]+$ ]] && ((FLAPS >= 2)) || { echo "FLAP_CYCLES must be an integer >= 2" >&2; exit 2; }
MID=$(((FLAPS + 1) / 2))
LOOP_MAX=${FLAP_MAX_SECONDS:-$((120 + FLAPS))}
RUN_MAX_SECONDS=$((LOOP_MAX + 180))
STATE_ROOT=${HNXDP_STATE_DIR:-/run/hnxdp}
RSS_SLACK_KB=4096
P='pairs[synthetic.name=hn0]'

# ---- measurements: M[phase.point.metric]
declare -A M=()
METRICS=(fds rss_kb bpf_fds pins ns_links state_files hnxdp_progs hnxdp_links)
state_files() { # this namespace's files under the state root (relative), ";"-separated
	local f out=()
	while IFS= read -r f; do out+=("${f#"$STATE_ROOT"/}"); done < <(
		find "$STATE_ROOT/$RIG_GUEST_INO" "$STATE_ROOT/$RIG_GUEST_INO.lock" "$STATE_ROOT/$RIG_GUEST_INO.run" 2>/dev/null | sort)
	local IFS=';'
	echo "${#out[@]}:${out[*]}"
}
# The fewest fds of 10 looks 20 ms apart: while joined, run compares the
# multicast lists every second and an event may be in progress, each with a
# socket open for a moment; a leaked fd stays and shows in every look.
run_fds() {
	local n min="" j
	for ((j = 0; j < 10; j++)); do
		n=$(find "/proc/$RUN/fd" -mindepth 1 -maxdepth 1 | wc -l)
		[[ -n "$min" ]] && ((n >= min)) || min=$n
		sleep 0.02
	done
	echo "$min"
}
measure() { # PHASE POINT
	local k="$1.$2"
	M[$k.fds]=$(run_fds)
	M[$k.rss_kb]=$(awk '/^VmRSS:/ { print $2 }' "/proc/$RUN/status")
	M[$k.bpf_fds]=$(run_bpf_fds "$RUN" | tr ' ' '/')
	M[$k.pins]=$(find "$RIG_PIN_DIR" 2>/dev/null | wc -l)
	M[$k.ns_links]=$(run_our_links | wc -l)
	M[$k.state_files]=$(state_files)
	M[$k.hnxdp_progs]=$(rig_hnxdp_progs | wc -l)
	M[$k.hnxdp_links]=$(rig_hnxdp_links | wc -l)
}
print_table() {
	local phase m
	for phase in joined idle; do
		printf '  %-8s %-12s %-28s %-28s %-28s\n' "$phase" metric "start (cycle 1)" "middle (cycle $MID)" "end (cycle $FLAPS)"
		for m in "${METRICS[@]}"; do
			printf '  %-8s %-12s %-28s %-28s %-28s\n' "" "$m" "${M[$phase.start.$m]:-?}" "${M[$phase.middle.$m]:-?}" "${M[$phase.end.$m]:-?}"
		done
	done
	echo "  (bpf_fds: progs/maps/links the run process holds; ns_links: BPF links of this namespace's programs;"
	echo "   state_files: count:names under $STATE_ROOT; hnxdp_progs/links: machine-wide, other runs count too)"
}

log_count_is() { [[ $(grep -c -- "$1" "$RUN_LOG") == "$2" ]]; }
hn0_as_before() {
	run_dev_snapshot hn0 "$RIG_TMP/hn0.after"
	cmp -s "$RIG_TMP/hn0.before" "$RIG_TMP/hn0.after"
}

rig_begin
rig_create

# The VF lacks TSO and has smaller GSO limits: every join changes hn0 and
# every leave must put it back.
VF_SETUP=("ethtool -K vf0 tso off" "ip link set vf0 gso_max_size 40000 gso_max_segs 200")
rig__vf_delete
run_dev_snapshot hn0 "$RIG_TMP/hn0.before"

run_start RUN --synthetic hn0 --settle-ms 0 --hold-down-ms 50 --flap-threshold 1000
run_wait_dump 15 "hn0 managed, idle" "p and p['state'] == 'idle'" || true
[[ -d "$RIG_PIN_DIR" ]] || fatal "no pins at $RIG_PIN_DIR after run started"
pw_start
switches0=$(rig_dump_get "$P.switches")
note "$FLAPS cycles (middle: $MID), loop bound ${LOOP_MAX}s"

t0=$EPOCHREALTIME
done_cycles=0
join_max=0 leave_max=0 join_sum=0 leave_sum=0
for ((i = 1; i <= FLAPS; i++)); do
	point=""
	case $i in 1) point=start ;; "$MID") point=middle ;; "$FLAPS") point=end ;; esac
	run_vf_add_prepared "${VF_SETUP[@]}"
	if ! pw active vf0 10; then
		fail "cycle $i: vf0 not joined within 10 s ($PW_ANSWER)"
		break
	fi
	read -r _ ms _ <<<"$PW_ANSWER"
	ms=${ms%.*}
	join_sum=$((join_sum + ms)); ((ms <= join_max)) || join_max=$ms
	if [[ -n "$point" ]]; then
		# The join's last step is its log line (after the XDP steering and the
		# multicast copy): measure once it is there, not in the middle of it.
		wait_until 10 "cycle $i: the join's log line" log_count_is "joined: datapath vf" "$i" || true
		measure joined "$point"
		assert_eq "cycle $i: the join changed hn0 (gso_max_size of the VF)" "$(run_link_field hn0 gso_max_size)" 40000
	fi
	rig__vf_delete
	if ! pw idle 10; then
		fail "cycle $i: pair not idle with its record gone within 10 s of vf0's removal ($PW_ANSWER)"
		break
	fi
	read -r _ ms _ <<<"$PW_ANSWER"
	ms=${ms%.*}
	leave_sum=$((leave_sum + ms)); ((ms <= leave_max)) || leave_max=$ms
	if [[ -n "$point" ]]; then
		wait_until 10 "cycle $i: the leave's log line" log_count_is "left: datapath synthetic" "$i" || true
		measure idle "$point"
		# hn0 is restored right after the record goes; read it settled.
		wait_until 5 "cycle $i: hn0 reads as before the first join" hn0_as_before || true
		assert_files_equal "cycle $i: hn0 reads exactly as before the first join" "$RIG_TMP/hn0.before" "$RIG_TMP/hn0.after"
	fi
	done_cycles=$i
	if ((i % 100 == 0)); then note "cycle $i: $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s"; fi
	if (($(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", b - a }') > LOOP_MAX)); then
		fail "time bound: only $i of $FLAPS cycles within ${LOOP_MAX}s"
		break
	fi
done
elapsed=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
assert_eq "all cycles done, each a join that finished and a leave that finished" "$done_cycles" "$FLAPS"
((done_cycles > 0)) || done_cycles=1
note "$FLAPS cycles in ${elapsed} s ($(awk -v e="$elapsed" -v n="$done_cycles" 'BEGIN { printf "%.0f", e * 1000 / n }') ms per cycle);" \
	"arrival -> joined: mean $((join_sum / done_cycles)) ms, max $join_max ms;" \
	"vf0h gone -> idle, record gone: mean $((leave_sum / done_cycles)) ms, max $leave_max ms"

echo "  resources of run (pid $RUN) and of this namespace:"
print_table

for phase in joined idle; do
	for m in fds bpf_fds pins ns_links state_files; do
		assert_eq "$phase: $m at the end as at the start" "${M[$phase.end.$m]:-?}" "${M[$phase.start.$m]:-none}"
	done
	assert_le "$phase: VmRSS at the end <= start + $RSS_SLACK_KB KiB (kB)" "${M[$phase.end.rss_kb]:-?}" \
		"$((${M[$phase.start.rss_kb]:-0} + RSS_SLACK_KB))"
	for m in hnxdp_progs hnxdp_links; do
		assert_global_eq "$phase: machine-wide $m at the end as at the start" "${M[$phase.end.$m]:-?}" "${M[$phase.start.$m]:-none}"
	done
done
assert_eq "idle: only hn0's two link pins left" "$(find "$RIG_PIN_DIR" -name 'link_*' | wc -l)" 2
assert_eq "idle: no write-ahead record left after the last leave" \
	"$(find "$STATE_ROOT/$RIG_GUEST_INO" -name 'pair-*' 2>/dev/null | wc -l)" 0
assert_eq "log: one join per cycle" "$(grep -c "joined: datapath vf" "$RUN_LOG" || true)" "$FLAPS"
assert_eq "log: one leave per cycle" "$(grep -c "left: datapath synthetic" "$RUN_LOG" || true)" "$FLAPS"
assert_eq "log: never held down" "$(grep -c "held-down" "$RUN_LOG" || true)" 0
assert_eq "dump: switches = 2 per cycle" "$(rig_dump_get "$P.switches")" "$((switches0 + 2 * FLAPS))"
assert_eq "dump: idle at the end" "$(run_state)" idle
nwarn=$(grep -Ec '^[^ ]+ warning ' "$RUN_LOG" || true)
((nwarn == 0)) || note "$nwarn warning line(s) in the run log, e.g.: $(grep -E '^[^ ]+ warning ' "$RUN_LOG" | head -n 3 | tr '\n' '|')"

exec {PW_IN}>&- # the waiter ends at end of input
rc=0
run_stop "$RUN" || rc=$?
assert_eq "run exits 0 on SIGTERM" "$rc" 0
run_assert_no_error "no error in the run log"

rig_finish
