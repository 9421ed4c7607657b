"""Regenerate meshserve's Python code from protos/ (the control API).

The inference API is bound in Python through tritonclient's generated modules instead:
generating our own would register the same `inference.*` names in protobuf's default
pool and clash with tritonclient in any process that imports both.

    python scripts/generate_protos.py          # write meshserve/v1/*_pb2*.py
    python scripts/generate_protos.py --check  # exit 1 if the checked-in code is stale
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTOS = ROOT / "protos"
GENERATED = ["meshserve/v1/control.proto", "meshserve/v1/ext_proc_observed.proto"]


def generate(out: Path) -> None:
    import grpc_tools

    include = Path(grpc_tools.__file__).parent / "_proto"
    for proto in GENERATED:
        args = ["protoc", f"-I{PROTOS}", f"-I{include}", f"--python_out={out}",
                f"--pyi_out={out}", f"--grpc_python_out={out}", str(PROTOS / proto)]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {proto}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    if not args.check:
        generate(ROOT)
        print("regenerated:", ", ".join(p.replace(".proto", "_pb2*.py") for p in GENERATED))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        stale = [str(f.relative_to(tmp)) for f in Path(tmp).rglob("*_pb2*.py*")
                 if not (ROOT / f.relative_to(tmp)).exists()
                 or not filecmp.cmp(f, ROOT / f.relative_to(tmp), shallow=False)]
    if stale:
        print("stale generated code:", ", ".join(stale), "- run: python scripts/generate_protos.py")
        return 1
    print("generated code is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
