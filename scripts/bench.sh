#!/usr/bin/env bash
# bench.sh - hnxdp benchmark: runs integration/bench (python3 -m bench) with the
# same options, as root (through sudo if needed). Cases, method and JSON:
# docs/benchmarks.md; `scripts/bench.sh --help` lists the cases and options.
#
#   scripts/bench.sh [--rounds N] [--quick] [--json FILE] [--cases P1,P1b,...] [--window S] [--perf DIR]
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$REPO/scripts/lib/as_root.sh"
as_root "$@" # root (namespaces, BPF); else again through sudo; else exit 3
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)
export PYTHONPATH="$REPO/integration${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1
export HNXDP_BENCH_ENTRY="scripts/bench.sh"
exec "$PY" -m bench "$@"
