#!/usr/bin/env bash
# 38-rename-and-input: synthetics are tracked by ifindex once found, and bad
# input is refused in one line without changing anything.
#   1. `run --synthetic hn0` joins vf0 (tso off, gso 30000/40) and is stopped;
#      hn0 is renamed hnR; a new `run --synthetic hn0` adopts the pinned pair
#      anyway (and says so); vf0 leaves and hnR reads exactly as before the
#      join; `detach --synthetic hnR` leaves nothing.
#   2. Config files that are 20 MB on one line, raw binary, not a file, or
#      hold control characters; `--settle-ms -1`; a bridge port as the VF;
#      HNXDP_BPFFS relative: exit
#      2, one short stderr line with no raw bytes, nothing pinned.
#   3. A config file with a UTF-8 byte order mark is read like one without.
. "$(dirname "$0")/../lib/rig.sh"
. "$(dirname "$0")/../lib/run_helpers.sh"

rig_begin
rig_create
rig_vf_less_capable
run_dev_snapshot hn0 "$RIG_TMP/hn0.before"

# ---- 1. renamed synthetic
run_start RUN --synthetic hn0 --settle-ms 0
run_wait_dump 15 "pair hn0 active" "p and p['state'] == 'active'" || true
run_stop "$RUN" || true
ip -n "$RIG_GUEST" link set hn0 down
ip -n "$RIG_GUEST" link set hn0 name hnR
ip -n "$RIG_GUEST" link set hnR up
run_start RUN --synthetic hn0 --settle-ms 0
assert_eq "the renamed pair is adopted" "$(run_log_has 'adopting pinned pair of hnR' && echo yes)" yes
run_wait_dump 15 "pair hnR active again" "p and p['state'] == 'active'" hnR || true
rig__vf_delete
run_wait_dump 15 "pair hnR idle after vf0 left" "p and p['state'] == 'idle'" hnR || true
run_stop "$RUN" || true
run_dev_snapshot hnR "$RIG_TMP/hnR.after"
sed 's/hnR/hn0/g' "$RIG_TMP/hnR.after" >"$RIG_TMP/hn0.after"
assert_files_equal "hnR reads exactly as hn0 did before the join" "$RIG_TMP/hn0.before" "$RIG_TMP/hn0.after"
rig_try hnxdp_g detach --synthetic hnR
assert_eq "detach hnR" "$RIG_RC" 0
assert_eq "no pins left" "$(test -e "$RIG_PIN_DIR" && echo present || echo absent)" absent

# ---- 2. bad input
bad() { # DESC CMD...
	local d=$1
	shift
	rig_try "$@"
	set -- "$d"
	assert_eq "$1: exit 2" "$RIG_RC" 2
	assert_one_stderr_line "$1"
	assert_le "$1: stderr is short" "${#RIG_ERR}" 300
	if LC_ALL=C grep -q '[^[:print:][:space:]]' <<<"$RIG_ERR"; then fail "$1: raw bytes on stderr"; else pass "$1: no raw bytes on stderr"; fi
	assert_eq "$1: nothing pinned" "$(test -e "$RIG_PIN_DIR" && echo present || echo absent)" absent
}
"$RIG_PY" -c "import sys; sys.stdout.write('synthetic = ' + 'x' * 20000000 + '\n')" >"$RIG_TMP/huge.conf"
head -c 4096 /dev/urandom >"$RIG_TMP/binary.conf"
printf 'settle-ms = 1\x01\x1b[31m\n' >"$RIG_TMP/control.conf"
bad "20 MB config line" hnxdp_g run --config "$RIG_TMP/huge.conf"
bad "binary config" hnxdp_g run --config "$RIG_TMP/binary.conf"
bad "config with control characters" hnxdp_g run --config "$RIG_TMP/control.conf"
bad "config is a directory" hnxdp_g run --config "$RIG_TMP"
bad "--settle-ms -1" hnxdp_g run --synthetic hnR --settle-ms -1
bad "attach --settle-ms -1" hnxdp_g attach --synthetic hnR --vf vf0 --settle-ms -1
rig_vf_add
ip -n "$RIG_GUEST" link add br9 type bridge
ip -n "$RIG_GUEST" link set vf0 master br9
bad "a bridge port as VF" hnxdp_g attach --synthetic hnR --vf vf0
assert_contains "a bridge port as VF: the line names the bridge" "$RIG_ERR" "port of br9"
ip -n "$RIG_GUEST" link set vf0 nomaster
ip -n "$RIG_GUEST" link del br9
bad "HNXDP_BPFFS relative" env HNXDP_BPFFS=relative/dir timeout -k 5 60 nsenter --net="/run/netns/$RIG_GUEST" -- "$HNXDP" status

# ---- 3. a byte order mark is not a key
printf '\xef\xbb\xbfsettle-ms = 123\nsynthetic = hnR\n' >"$RIG_TMP/bom.conf"
run_start RUN --config "$RIG_TMP/bom.conf"
assert_eq "a config with a BOM is read (settle 123 ms)" "$(run_log_has 'settle 123 ms' && echo yes)" yes
run_stop "$RUN" || true
assert_eq "a run that managed a pair without a VF leaves its pins (pair installed)" \
	"$(test -e "$RIG_PIN_DIR" && echo present || echo absent)" present
rig_try hnxdp_g detach --all
assert_eq "detach --all" "$RIG_RC" 0

rig_finish
