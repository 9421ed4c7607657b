"""What an auditor asks of one request: its records and what produced each of them."""

from __future__ import annotations

import datetime
import json
from typing import Any

from meshserve.sidecars.records.store import RecordStore
from meshserve.v1 import control_pb2 as cpb


def audit(store: RecordStore, request_id: str) -> list[dict[str, Any]]:
    """The answer record first, then the shadows' copies, each with the package behind its digest."""
    records = store.records_for(request_id)
    records.sort(key=lambda r: (r["slot"] != "answer", r["slot"]))
    for record in records:
        record["package"] = store.package(record["digest"]) if record["digest"] else None
    return records


def to_message(record: dict[str, Any]) -> cpb.PredictionRecord:
    return cpb.PredictionRecord(
        request_id=record["request_id"], slot=record["slot"], role=record["role"], side=record["side"],
        model=record["model"], version=record["version"], digest=record["digest"],
        training_data_sha256=record["training_data_sha256"], code_revision=record["code_revision"],
        trace_id=record["trace_id"], time=record["time"], latency_s=record["latency_s"], code=record["code"],
        error=record["error"], inputs_json=json.dumps(record.get("inputs")),
        outputs_json=json.dumps(record.get("outputs")), package_json=json.dumps(record.get("package")),
        explanation_json=json.dumps(record.get("explanation")), batch_size=record.get("batch_size"),
        timings_json=json.dumps(record.get("timings")))


def from_message(message: cpb.PredictionRecord) -> dict[str, Any]:
    """The record as `audit` gives it from the store, its keys in the same order (JSON output alike)."""
    record: dict[str, Any] = {}
    for field in ("request_id", "slot", "time", "side", "model", "version", "role", "digest", "training_data_sha256",
                  "code_revision", "trace_id", "code", "error", "latency_s", "batch_size", "inputs", "outputs",
                  "timings", "explanation", "package"):
        if field in ("inputs", "outputs", "timings", "explanation", "package"):
            record[field] = json.loads(getattr(message, f"{field}_json") or "null")
        elif field == "batch_size":
            record[field] = message.batch_size if message.HasField("batch_size") else None
        else:
            record[field] = getattr(message, field)
    return record


def _values(tensor: dict[str, Any]) -> str:
    if "omitted" in tensor:
        return f"(not kept: {tensor['omitted']})"
    values = json.dumps(tensor.get("values"))
    return values if len(values) <= 400 else values[:400] + " ..."


def describe(records: list[dict[str, Any]]) -> str:
    """The records of one request as a person reads them."""
    lines: list[str] = []
    for record in records:
        when = datetime.datetime.fromtimestamp(record["time"], datetime.timezone.utc).isoformat(timespec="milliseconds")
        title = "answer" if record["slot"] == "answer" else f"shadow copy ({record['slot'].split(':', 1)[1]})"
        lines.append(f"== {title}: request {record['request_id']}")
        lines.append(f"   model {record['model']} version {record['version'] or '(none chosen)'}"
                     f"  role {record['role'] or '(refused by the router)'}  recorded by the {record['side']}")
        lines.append(f"   at {when}  latency {record['latency_s'] * 1000:.2f} ms  status {record['code']}"
                     + (f": {record['error']}" if record["error"] else ""))
        lines.append(f"   trace id {record['trace_id'] or '(none)'}")
        package = record.get("package") or {}
        provenance = package.get("provenance") or {}
        lines.append(f"   package digest {record['digest'] or '(none)'}" + (f" at {package['path']}" if package else ""))
        lines.append(f"   training data sha256 {record['training_data_sha256'] or '(not declared)'}"
                     + (f" ({provenance['training_data']})" if provenance.get("training_data") else ""))
        lines.append(f"   code revision {record['code_revision'] or '(not declared)'}")
        environment = package.get("environment") or {}
        if environment:
            # Each world's capture is a mapping under the world's name (`strict` and `captured_at` are not).
            parts = [f"{world} {recorded.get('version', '')}".strip()
                     for world, recorded in environment.items() if isinstance(recorded, dict)]
            lines.append(f"   environment {', '.join(parts) or 'recorded'}"
                         f" (captured {environment.get('captured_at', '?')})")
        else:
            lines.append("   environment (not captured; run `meshserve package` on the package)")
        for kind in ("inputs", "outputs"):
            for name, tensor in (record.get(kind) or {}).items():
                hashed = " (pii: HMAC-SHA256)" if tensor.get("pii") else ""
                lines.append(f"   {kind[:-1]} {name} {tensor['datatype']}{tensor['shape']}{hashed}: {_values(tensor)}")
        if record.get("explanation"):
            lines.append(f"   explanation: {json.dumps(record['explanation'])[:400]}")
    return "\n".join(lines)
