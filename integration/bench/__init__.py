"""hnxdp's benchmark, on the integration tests' rig (integration/lib): `python3 -m bench`
from integration/, or scripts/bench.sh. Cases, method and JSON: docs/benchmarks.md."""
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the work tree (before lib is imported)
