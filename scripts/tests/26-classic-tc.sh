#!/usr/bin/env bash
# 26-classic-tc: the bash namespace tests not ported to integration/ yet, again
# with the classic tc attachment (kernels without tcx, before 6.6, get it),
# forced here with HNXDP_TC_MODE=classic: kill points, kill -9 and adoption.
# What the classic attachment itself does (filters on clsact, the user's tc
# kept, adoption as classic, detach, refusals) is integration/test_26_classic_tc.py;
# receive, fallback, VF namespace moves, run's arrivals and departures, egress
# qdisc copies and capture under classic tc are the `classic` parametrization
# of test_10, 20, 25, 70, 86 and 87. A test ported to pytest
# leaves this list with a `classic` parametrization of its own.
. "$(dirname "$0")/../lib/rig.sh"

rig_begin
for t in 35-crash-kill-points 73-run-crash-adopt; do
	t0=$SECONDS
	rc=0
	log=$(mktemp "/tmp/hnxdp-26-$t.XXXXXX")
	HNXDP_TC_MODE=classic bash "$RIG_REPO/scripts/tests/$t.sh" >"$log" 2>&1 || rc=$?
	if [[ $rc == 0 ]]; then
		pass "classic: $t ($(tail -n 1 "$log"), $((SECONDS - t0)) s)"
	else
		fail "classic: $t exit $rc; its failures:"
		grep -E '^FAIL' "$log" | head -n 10 | sed 's/^/    /'
	fi
	rm -f "$log"
done
rig_finish
