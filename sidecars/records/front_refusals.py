"""Records of the inferences Envoy's front answered itself: refusals no adapter ever saw.

With one proxy hop, a request Envoy refuses (unknown model or version, a body that is not a
ModelInferRequest, a request over the size limit or a variant's limits, a per-model rule, no
replica up, a replica that died with the request on its connection) never reaches a process
that records. Envoy writes one JSON line for each such answer to an access log (filtered with
CEL: answers that did not come from an upstream, on inference paths),
and the recorder turns each line into a record of what the client saw, so error rates in
`compare`, rollouts and quality count them. The line's fields are written by
envoy/refusal_log.py. Lines are read from a committed offset like spools;
past ROTATE_BYTES the recorder renames the file and asks Envoy to reopen its logs.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any, Iterator

import grpc

from meshserve.sidecars.records.record import slot_of

ROTATE_BYTES = 8 * 1024 * 1024
_REST_INFER = re.compile(r"^/v2/models/(?P<model>[^/?]+)(?:/versions/(?P<version>[^/?]+))?/infer(?:\?.*)?$")
# What a REST client saw, by HTTP status, when Envoy answered without a gRPC status.
_HTTP_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
               413: "RESOURCE_EXHAUSTED", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_GRPC_CODES = {code.value[0]: code.name for code in grpc.StatusCode}


def _present(value: Any) -> str:
    return "" if value in (None, "-") else str(value)


def record_of(entry: dict[str, Any]) -> dict[str, Any]:
    """The record of one logged answer. One refused before its model was known (a body that is
    not a ModelInferRequest, a failed authentication) has model "": it is on record under its
    request id, and in no model's error rate."""
    path = _present(entry.get("path"))
    model, version = _present(entry.get("model")), _present(entry.get("version"))
    rest = _REST_INFER.match(path)
    if rest:
        model, version = rest["model"], rest["version"] or ""
    routed_version, _, role = _present(entry.get("variant")).partition(" ")
    grpc_status = _present(entry.get("grpc_status"))
    if grpc_status.isdigit():
        code = _GRPC_CODES.get(int(grpc_status), "UNKNOWN")
    else:
        http = int(_present(entry.get("http_status")) or 0)
        code = "OK" if http == 200 else _HTTP_CODES.get(http, "UNAVAILABLE" if http >= 500 else "INVALID_ARGUMENT")
    request_id = _present(entry.get("request_id")) or f"front-{uuid.uuid4().hex}"
    traceparent = _present(entry.get("traceparent")).split("-")
    message = _present(entry.get("message")) or _present(entry.get("details"))
    flags = _present(entry.get("flags"))
    return {
        "kind": "record", "request_id": request_id, "slot": slot_of(role or "primary", routed_version or version),
        "trace_id": traceparent[1] if len(traceparent) >= 4 else "", "time": float(entry.get("time") or 0.0),
        "side": "front", "model": model, "version": routed_version or version, "role": role,
        "digest": "", "training_data_sha256": "", "code_revision": "", "code": code,
        "error": f"{message} (answered by Envoy: {_present(entry.get('details'))}"
                 f"{', flags ' + flags if flags else ''})",
        "latency_s": float(_present(entry.get("duration_ms")) or 0) / 1000.0, "batch_size": None,
        "timings": {}, "inputs": None, "outputs": None,
    }


def read_lines(path: Path, offset: int, max_bytes: int = 4 * 1024 * 1024) -> Iterator[tuple[int, dict]]:
    """Complete JSON lines from OFFSET: (offset after the line, record); a line Envoy is still
    writing (no newline yet) waits for the next pass, a line that is not JSON is skipped."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(max_bytes)
    except FileNotFoundError:
        return
    position = 0
    while True:
        end = data.find(b"\n", position)
        if end < 0:
            return
        line, position = data[position:end], end + 1
        try:
            record = record_of(json.loads(line))
        except (ValueError, TypeError):
            record = None
        yield offset + position, record
