#!/usr/bin/env bash
# 78-run-reload: operations basics of `hnxdp run` (issue 12): SIGHUP reloads
# --config without touching joined pairs, versions, journald log lines.
#   1. `hnxdp --version` prints "hnxdp X.Y.Z"; dump --json and status --json
#      carry the same "version" and "schema_version": 1.
#   2. `run --config FILE` (synthetic hn0, settle-ms 0) joins vf0; log lines
#      have millisecond timestamps.
#   3. FILE gets settle-ms 1500, SIGHUP: the same process keeps running, logs
#      one reload line "settle-ms 0 -> 1500", the pair stays active with the
#      same tcx link ids.
#   4. vf0 leaves and returns: the pair goes through settling and is joined
#      only after the new 1500 ms settle delay.
#   5. transparent = off in FILE, SIGHUP: refused with a warning, the pair
#      untouched. A FILE that does not parse, SIGHUP: an error line, run keeps
#      running; FILE good again, SIGHUP: "nothing changed" (the settings in use
#      were kept). SIGTERM: exit 0, no unexpected error line.
#   6. With JOURNAL_STREAM naming stderr's device:inode (as systemd sets it),
#      run's lines start with an sd-daemon priority (<6> info, <4> warning)
#      and carry no timestamp.
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/run_helpers.sh"

P='pairs[synthetic.name=hn0]'
NEW_SETTLE=1500

write_conf() { # LINES... -> $CONF
	printf '%s\n' "# written by $RIG_TEST" "$@" >"$CONF.tmp"
	mv "$CONF.tmp" "$CONF"
}
log_count() { grep -Ec -- "$1" "$RUN_LOG" || true; }
log_count_above() { (($(log_count "$1") > $2)); }
vf0h_gone() { ! ip -n "$RIG_HOST" link show dev vf0h >/dev/null 2>&1; }
# SIGHUP to the run and wait for the next log line matching REGEX.
hup_and_wait() { # DESC REGEX
	local before
	before=$(log_count "$2")
	kill -HUP "$RUN"
	wait_until 10 "$1" log_count_above "$2" "$before"
}

rig_begin
rig_create
CONF="$RIG_TMP/run.conf"

# ---- 1. versions.
rig_try hnxdp_g --version
assert_eq "--version exits 0" "$RIG_RC" 0
if [[ "$RIG_OUT" =~ ^hnxdp\ ([0-9]+\.[0-9]+\.[0-9]+)$ ]]; then
	VERSION=${BASH_REMATCH[1]}
	pass "--version prints 'hnxdp $VERSION'"
else
	VERSION=unknown
	fail "--version should print 'hnxdp X.Y.Z', printed '$RIG_OUT'"
fi

# ---- 2. run --config joins vf0 at once (settle-ms 0).
write_conf "synthetic = hn0" "settle-ms = 0"
run_start RUN --config "$CONF"
run_wait_dump 15 "pair hn0 active with vf0" \
	"p and p['state'] == 'active' and (p['vf'] or {}).get('name') == 'vf0'" || true
assert_eq "dump --json: version is the binary's" "$(rig_dump_get version)" "$VERSION"
assert_eq "dump --json: schema_version 1" "$(rig_dump_get schema_version)" 1
status=$(hnxdp_g status --json)
assert_eq "status --json: version" "$(rig_json --default missing version <<<"$status")" "$VERSION"
assert_eq "status --json: schema_version 1" "$(rig_json --default missing schema_version <<<"$status")" 1
first=$(grep -m 1 "control plane running" "$RUN_LOG" || true)
if [[ "$first" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}[+-][0-9]{4}\ info\  ]]; then
	pass "log lines have millisecond timestamps ($(rig__short "$first"))"
else
	fail "log line without a millisecond timestamp: $first"
fi
links0=$(rig_tcx_summary hn0 vf0)
assert_eq "three hnxdp tcx links (hn0 ingress+egress, vf0 ingress)" "$(wc -w <<<"$links0")" 3

# ---- 3. SIGHUP with a new settle delay: same process, pair untouched.
write_conf "synthetic = hn0" "settle-ms = $NEW_SETTLE"
if hup_and_wait "the reload is logged" "SIGHUP: reloaded .*settle-ms 0 -> $NEW_SETTLE"; then
	pass "reload logged: $(grep 'SIGHUP: reloaded' "$RUN_LOG" | tail -n 1 | sed 's/^.*SIGHUP/SIGHUP/')"
fi
if run_alive "$RUN"; then pass "run (pid $RUN) still running after SIGHUP"; else fail "run (pid $RUN) exited on SIGHUP"; fi
assert_eq "pair still active after the reload" "$(rig_dump_get "$P.state")" active
assert_eq "same tcx link ids after the reload" "$(rig_tcx_summary hn0 vf0)" "$links0"
assert_eq "one reload line per reload" "$(log_count 'SIGHUP: reloaded')" 1

# ---- 4. vf0 leaves and returns: joined only after the new settle delay.
run_vf_del surprise
wait_until 10 "vf0h gone" vf0h_gone || true
run_wait_dump 10 "pair hn0 idle after vf0 left" "p and p['state'] == 'idle'" || true
run_vf_prepare
vf_ifindex=$(rig_ifindex "$RIG_GUEST" vf0)
run_dump_watch_start 15 "pair hn0 active with the returned vf0" \
	"p and p['state'] == 'active' and (p['vf'] or {}).get('name') == 'vf0'"
if run_react --trace hn0 15 "vf0 returns: pair active with it in the map" "$(run_vf_take_mac_cmd)" \
	state:hn0=active "vf:hn0=$vf_ifindex"; then
	note "map states: $RUN_TRACE"
	assert_ge "the join waited for the new settle delay ($NEW_SETTLE ms)" "${RUN_REACT_MS%.*}" "$NEW_SETTLE"
	if [[ "$RUN_TRACE" =~ ^idle@0,settling@[0-9]+,active@[0-9]+$ ]]; then
		pass "map: idle, settling, then active ($RUN_TRACE)"
	else
		fail "map: expected idle, settling, then active: $RUN_TRACE"
	fi
else
	fail "vf0 not joined within 15 s of returning (map states: $RUN_TRACE)"
fi
if run_dump_watch_end; then
	if [[ "$RUN_SEEN" =~ ^(idle,)?settling,active$ ]]; then
		pass "dump showed settling before active ($RUN_SEEN)"
	else
		fail "dump should show settling, then active: saw $RUN_SEEN"
	fi
fi
links1=$(rig_tcx_summary hn0 vf0)

# ---- 5. refused and broken reloads.
write_conf "synthetic = hn0" "settle-ms = $NEW_SETTLE" "transparent = off"
if hup_and_wait "transparent off is refused with a warning" "warning .*SIGHUP: transparent on -> off is not applied"; then
	pass "transparent on -> off refused at run time, with a warning"
fi
assert_eq "pair still active after the refused change" "$(rig_dump_get "$P.state")" active
assert_eq "same tcx link ids after the refused change" "$(rig_tcx_summary hn0 vf0)" "$links1"

write_conf "synthetic = hn0" "settle-ms = banana"
if hup_and_wait "a broken config is logged as an error" "error .*SIGHUP: reloading .* failed, keeping the settings in use"; then
	pass "broken config: $(grep 'SIGHUP: reloading' "$RUN_LOG" | tail -n 1 | sed 's/^.*SIGHUP/SIGHUP/')"
fi
if run_alive "$RUN"; then pass "run (pid $RUN) still running after a broken config"; else fail "run exited on a broken config"; fi
write_conf "synthetic = hn0" "settle-ms = $NEW_SETTLE"
if hup_and_wait "a good config again is reloaded" "SIGHUP: reloaded .*: nothing changed"; then
	pass "the settings in use were kept through the broken config (reload: nothing changed)"
fi
assert_eq "pair still active at the end" "$(rig_dump_get "$P.state")" active
assert_eq "same tcx link ids at the end" "$(rig_tcx_summary hn0 vf0)" "$links1"

rc=0
run_stop "$RUN" || rc=$?
assert_eq "SIGTERM: run exits 0" "$rc" 0
errors=$(grep -E '^[^ ]+ (error|critical) ' "$RUN_LOG" | grep -v 'SIGHUP: reloading' || true)
assert_eq "no error line but the broken config's" "$errors" ""

# ---- 6. journald: JOURNAL_STREAM names stderr (run_start's log file).
jlog="$RIG_TMP/run-$((RUN_N + 1)).log"
: >"$jlog"
export JOURNAL_STREAM
JOURNAL_STREAM=$(stat -c '%d:%i' "$jlog")
run_start RUN --config "$CONF"
unset JOURNAL_STREAM
assert_eq "run_start logs to the file named by JOURNAL_STREAM" "$RUN_LOG" "$jlog"
write_conf "synthetic = hn0" "settle-ms = $NEW_SETTLE" "transparent = off"
hup_and_wait "journald: the refused change is logged" "SIGHUP: transparent on -> off" || true
running=$(grep -m 1 'control plane running' "$RUN_LOG" || true)
assert_contains "journald: info line starts with <6>" "${running:0:8}" "<6>info "
warning=$(grep -m 1 'SIGHUP: transparent' "$RUN_LOG" || true)
assert_contains "journald: warning line starts with <4>" "${warning:0:11}" "<4>warning "
other=$(grep -Ev '^<[0-7]>(debug|info|notice|warning|error|critical) hnxdp\.' "$RUN_LOG" || true)
assert_eq "journald: every line has a priority prefix and no timestamp" "$other" ""
rc=0
run_stop "$RUN" || rc=$?
assert_eq "SIGTERM: second run exits 0" "$rc" 0

rig_finish
