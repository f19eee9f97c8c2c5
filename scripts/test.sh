#!/usr/bin/env bash
# test.sh - THE test command of hnxdp: `scripts/test.sh` (from any cwd; needs
# root: as another user it runs itself again through sudo).
#
#   1. scripts/install-deps.sh (apt only for what is missing; mounts bpffs)
#   2. swift build
#   3. swift test (unprivileged unit tests + privileged datapath tests)
#   4. the pytest suite integration/ (python3 -m pytest): every integration
#      test, real guests included
# Steps 1-3 are summarised before pytest runs, so the output ends with
# pytest's own summary line. Exits non-zero if any step or test failed. A
# missing tool or privilege is a failure, never a skip.
#
# Options (for development; CI uses none):
#   --no-swift      skip steps 2-3 (uses $HNXDP or the last build)
#   NAME...         run only the pytest tests NAME selects as `-k NAME` (with
#                   - as _: 10-rx selects integration/test_10_rx.py; vm_guest
#                   the real guests of test_95, all four kernel/driver cases)
# Environment: HNXDP (binary to test; default: the one `swift build` made),
#   HNXDP_BPFFS (passed through), TEST_TIMEOUT (seconds per pytest test,
#   default 900), PYTEST_TIMEOUT (the whole pytest step, real guests
#   included, default 7200).
set -uo pipefail

REPO=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$REPO"

# The Swift toolchain is found on PATH only (as_root keeps PATH through sudo);
# CI's environment may lack sbin.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/sbin:/sbin" ;; esac
export PATH

RUN_SWIFT=1
FILTERS=()
for a in "$@"; do
	case $a in
	--no-swift) RUN_SWIFT=0 ;;
	-h | --help) sed -n '2,20p' "$0"; exit 0 ;;
	*) FILTERS+=("$a") ;;
	esac
done
TEST_TIMEOUT=${TEST_TIMEOUT:-900}
PYTEST_TIMEOUT=${PYTEST_TIMEOUT:-7200}
export TEST_TIMEOUT

# The datapath tests load BPF programs and make network namespaces.
. "$REPO/scripts/lib/as_root.sh"
as_root "$@"

RESULTS=()
N_PASSED=0
N_FAILED=0
record() { # NAME STATUS(0=pass) SECONDS [NOTE]
	if [[ $2 == 0 ]]; then
		N_PASSED=$((N_PASSED + 1))
		RESULTS+=("$(printf 'PASS  %-28s %5ss  %s' "$1" "$3" "${4:-}")")
	else
		N_FAILED=$((N_FAILED + 1))
		RESULTS+=("$(printf 'FAIL  %-28s %5ss  %s' "$1" "$3" "${4:-exit $2}")")
	fi
}
step() { # NAME CMD...: run, time and record one step
	local name=$1 t0=$SECONDS rc=0
	shift
	echo
	echo "=============== $name"
	"$@" || rc=$?
	record "$name" "$rc" "$((SECONDS - t0))"
	return "$rc"
}
print_steps() {
	echo
	echo "=============== summary of the steps before pytest"
	printf '%s\n' "${RESULTS[@]}"
	echo "test.sh: $N_PASSED passed, $N_FAILED failed before pytest"
}
summary() { # when pytest cannot or need not run: the steps, and their verdict
	print_steps
	((N_FAILED == 0))
	exit $?
}

step install-deps "$REPO/scripts/install-deps.sh" || summary

bpffs() { mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf; }
step bpffs bpffs || summary


BUILD_OK=1
if [[ $RUN_SWIFT == 1 ]]; then
	if ! command -v swift >/dev/null 2>&1; then
		record "swift build" 127 0 "no swift on PATH: put the Swift toolchain's bin directory on PATH"
		BUILD_OK=0
	else
		step "swift build" swift build || BUILD_OK=0
		if [[ $BUILD_OK == 1 && -z "${HNXDP:-}" ]]; then
			HNXDP="$(swift build --show-bin-path)/hnxdp"
		fi
		if [[ $BUILD_OK == 1 ]]; then
			step "swift test" swift test || true
		else
			record "swift test" 1 0 "not run: build failed"
		fi
	fi
fi
if [[ -n "${HNXDP:-}" ]]; then export HNXDP; fi

# ---- the pytest suite (integration/README.md); NAME filters become -k.
PYTEST_ARGS=()
if ((${#FILTERS[@]} > 0)); then
	expr=""
	for f in "${FILTERS[@]}"; do expr+="${expr:+ or }${f//-/_}"; done
	PYTEST_ARGS=(-k "$expr")
fi
run_pytest() {
	PYTHONDONTWRITEBYTECODE=1 timeout -k 30 "$PYTEST_TIMEOUT" \
		python3 -m pytest "$REPO/integration" -q "${PYTEST_ARGS[@]}" "$@"
}
pytest_selected() { # exit 5 of pytest: no test selected
	((${#FILTERS[@]} == 0)) && return 0
	local rc=0
	run_pytest --collect-only >/dev/null 2>&1 || rc=$?
	[[ $rc != 5 ]]
}

# ---- pytest last: its summary line ends the output.
if [[ $BUILD_OK != 1 && -z "${HNXDP:-}" ]]; then
	record pytest 1 0 "not run: build failed"
	summary
fi
if ! pytest_selected; then
	record pytest 2 0 "no test matches ${FILTERS[*]}"
	summary
fi
print_steps
echo
echo "=============== pytest"
rc=0
run_pytest || rc=$?
((N_FAILED == 0 && rc == 0))
exit $?
