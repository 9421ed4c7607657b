"""`meshserve audit REQUEST_ID`: the records of one past request and what produced them.

Asks the running mesh (meshserve.v1.Control/GetRecords), or reads a store directly with
`--store` when no mesh runs. The recorder stores a record within a second or so of the
answer, so a request answered a moment ago is waited for briefly.
"""

from __future__ import annotations

import json
import sys
import time

from meshserve.cli.mesh_options import add_mesh_options


def register(subparsers) -> None:
    parser = subparsers.add_parser("audit", help="show the records of a past request: inputs, outputs, version, "
                                                 "package digest, training data, environment, trace id")
    parser.add_argument("request_id", help="the request id (x-request-id, or the id in the response)")
    parser.add_argument("--json", action="store_true", help="print the records as JSON")
    add_mesh_options(parser)
    parser.add_argument("--store", default=None, help="read this store instead of asking a mesh: the folder of model "
                                                      "packages it served, sqlite:///PATH or postgresql://...")
    parser.add_argument("--wait", type=float, default=3.0, help="seconds to wait for a record not stored yet")
    parser.set_defaults(func=_audit)


def _audit(args) -> int:
    from meshserve.sidecars.records.audit import describe

    try:
        records = _fetch(args)
    except LookupError as exc:
        print(f"meshserve: {exc}", file=sys.stderr)
        return 1
    if not records:
        print(f"meshserve: no record of request {args.request_id} (check the id; records of requests answered in "
              "the last second may still be on their way)", file=sys.stderr)
        return 1
    print(json.dumps(records, indent=2) if args.json else describe(records))
    return 0


def _fetch(args) -> list[dict]:
    deadline = time.monotonic() + args.wait
    while True:
        records = _from_store(args.store, args.request_id) if args.store else _from_mesh(args)
        if records or time.monotonic() >= deadline:
            return records
        time.sleep(0.2)


def _from_store(url: str, request_id: str) -> list[dict]:
    from meshserve.sidecars.records.audit import audit
    from meshserve.cli.store_access import open_records_store

    store = open_records_store(url)
    try:
        return audit(store, request_id)
    finally:
        store.close()


def _from_mesh(args) -> list[dict]:
    import grpc

    from meshserve.cli.mesh_client import MeshClient
    from meshserve.sidecars.records.audit import from_message
    from meshserve.v1 import control_pb2 as cpb

    mesh = MeshClient.from_args(args)
    with mesh.control() as control:
        try:
            answer = control.GetRecords(cpb.GetRecordsRequest(request_id=args.request_id), timeout=15)
        except grpc.RpcError as exc:
            raise LookupError(f"{mesh.failure(exc)} (or read a store without the mesh: --store URL)") from None
    return [from_message(m) for m in answer.records]
