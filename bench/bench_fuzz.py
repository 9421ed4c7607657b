"""The long fuzz run: malformed requests of every kind (tests/security/malformed.py) at the
front of a mesh over the Python examples for a fixed time while well-behaved clients keep
sending; prints statuses by kind, good answers and failures, and resident memory by process
before and after (the suite runs a bounded 2,000 in tests/security/test_fuzz.py).

    .venv/bin/python bench/bench_fuzz.py [--seconds 300] [--good-clients 16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "security"))

from conftest import EXAMPLES, start_mesh  # noqa: E402
from malformed import fuzz  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--good-clients", type=int, default=16)
    parser.add_argument("--good-pause-s", type=float, default=0.02)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for name in ("breast_cancer", "iris_species"):
            (Path(folder) / name).symlink_to(EXAMPLES / name, target_is_directory=True)
        mesh = start_mesh(folder)
        try:
            result = fuzz(mesh.address, mesh.proc.pid, bad_requests=0, good_clients=args.good_clients,
                          good_pause_s=args.good_pause_s, seconds=args.seconds)
        finally:
            mesh.stop()
    print(f"{result.bad_requests} malformed requests in {result.seconds:.0f} s "
          f"({result.bad_requests / result.seconds:.0f}/s); {result.good_answers} good answers, "
          f"{len(result.good_failures)} failed")
    for kind, codes in sorted(result.statuses.items()):
        print(f"  {kind:15} {codes}")
    print(f"resident memory growth (MiB): {result.growth_mib()}")
    for kind in result.unclear:
        for code in result.unclear[kind]:
            if code not in ("OK",) and f"{kind} {code}" in result.samples:
                print(f"  e.g. {kind} {code}: {result.samples[f'{kind} {code}']}")
    restarted = "restarting" in mesh.output
    print(f"unclear statuses: {result.unclear or 'none'}; restarts: {'yes' if restarted else 'none'}")
    return 1 if result.unclear or result.good_failures or restarted else 0


if __name__ == "__main__":
    sys.exit(main())
