#!/usr/bin/env bash
# 01-readme-demo: the README's demo command, taken from the README's "Try it"
# code block (so the two cannot drift) and run exactly as written, from the
# repository root, with `bash -c`. Passes when that line exists, exits 0,
# prints the demo's own tally ("demo: N passed, 0 failed") and leaves none of
# its namespaces or pins behind. With HNXDP set (as test.sh does) the demo
# uses that binary instead of building.
set -uo pipefail
REPO=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
NAME=01-readme-demo
PASSED=0 FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS: $NAME: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $NAME: $*"; }
finish() {
	echo "$NAME: $PASSED passed, $FAILED failed"
	((FAILED == 0 && PASSED > 0))
	exit $?
}

echo "== $NAME"
# The first ``` block after the "## Try it" heading; its line naming demo.sh.
line=$(awk '
	/^## / { intry = ($0 ~ /^## Try it/) }
	intry && /^```/ { if (inblock) exit; inblock = 1; next }
	inblock && /demo\.sh/ { print; exit }' "$REPO/README.md")
if [[ -z $line ]]; then
	fail "README.md has no line naming demo.sh in the code block of its \"Try it\" section"
	finish
fi
pass "README's demo command: $line"

out=$(mktemp /tmp/hnxdp-readme-demo.XXXXXX)
trap 'rm -f "$out"' EXIT
rc=0
(cd "$REPO" && bash -c "$line") 2>&1 | tee "$out" || rc=${PIPESTATUS[0]}
rc=${rc:-0}

if [[ $rc == 0 ]]; then pass "the README's demo command exited 0"; else fail "the README's demo command exited $rc"; fi
if grep -Eq '^demo: [1-9][0-9]* passed, 0 failed$' "$out"; then
	pass "the demo printed its success tally: $(grep -E '^demo: [0-9]+ passed' "$out")"
else
	fail "the demo did not print 'demo: N passed, 0 failed'"
fi

# What the demo made: its rig's namespaces and its guest's pin directory.
read -r rig ino < <(sed -n 's/^rig: \(hnxrig-[^ ]*\) up (guest netns inode \([0-9]*\),.*/\1 \2/p' "$out" | head -1)
if [[ -z ${rig:-} ]]; then
	fail "the demo never reported its rig ('rig: NAME up ...')"
else
	left=$(ip netns list | awk -v p="$rig-" 'index($1, p) == 1 { print $1 }' | tr '\n' ' ')
	if [[ -z $left ]]; then pass "no namespace of the demo's rig $rig left"; else fail "namespaces left: $left"; fi
	pins="${HNXDP_BPFFS:-/sys/fs/bpf/hnxdp}/$ino"
	if [[ ! -e $pins ]]; then pass "no pins left ($pins absent)"; else fail "pins left: $pins"; fi
fi
finish
