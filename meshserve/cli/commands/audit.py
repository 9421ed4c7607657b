"""`meshserve audit REQUEST_ID`: the records of one past request and what produced them.

Asks the running mesh (meshserve.v1.Control/GetRecords), or reads a store directly with
`--store` when no mesh runs. The recorder stores a record within a second or so of the
answer, so a request answered a moment ago is waited for briefly.
"""

from __future__ import annotations

import json
import sys
import time

from meshserve.cli.shared_options import add_records_options


def register(subparsers) -> None:
    parser = subparsers.add_parser("audit", help="show the records of a past request: inputs, outputs, version, "
                                                 "package digest, training data, environment, trace id")
    parser.add_argument("request_id", help="the request id (x-request-id, or the id in the response)")
    parser.add_argument("--json", action="store_true", help="print the records as JSON")
    add_records_options(parser)
    parser.add_argument("--wait", type=float, default=3.0, help="seconds to wait for a record not stored yet")
    parser.set_defaults(func=_audit)


def _audit(args) -> int:
    from meshserve.cli.records_source import RecordsSource
    from meshserve.sidecars.records.api import describe

    records = _fetch(RecordsSource(args), args.request_id, args.wait)
    if not records:
        print(f"meshserve: no record of request {args.request_id} (check the id; records of requests answered in "
              "the last second may still be on their way)", file=sys.stderr)
        return 1
    print(json.dumps(records, indent=2) if args.json else describe(records))
    return 0


def _fetch(source, request_id: str, wait: float) -> list[dict]:
    deadline = time.monotonic() + wait
    while True:
        records = _from_mesh(source, request_id) if source.through_mesh else _from_store(source, request_id)
        if records or time.monotonic() >= deadline:
            return records
        time.sleep(0.2)


def _from_store(source, request_id: str) -> list[dict]:
    from meshserve.sidecars.records.api import audit

    with source.store() as store:
        return audit(store, request_id)


def _from_mesh(source, request_id: str) -> list[dict]:
    from meshserve.sidecars.records.api import from_message
    from meshserve.v1 import control_pb2 as cpb

    answer = source.call("GetRecords", cpb.GetRecordsRequest(request_id=request_id), timeout=15)
    return [from_message(m) for m in answer.records]
