"""The front's log of the inferences Envoy answered itself (refusals no adapter saw), one JSON
line each, which the recorder turns into records (sidecars/records/front_refusals.py reads
these fields)."""

from __future__ import annotations

from typing import Any

from meshserve.core.mesh_protocol import MODEL_HEADER, VARIANT_HEADER, VERSION_HEADER

INFER_PATH = "/inference.GRPCInferenceService/ModelInfer"


def refusal_access_log(path: str) -> dict[str, Any]:
    """The front listener's access log of inferences Envoy answered itself, one JSON line each."""
    expression = (f"response.code_details != 'via_upstream' && (request.path == '{INFER_PATH}' || "
                  "(request.path.startsWith('/v2/models/') && request.path.contains('/infer')))")
    fields = {
        "time": "%START_TIME(%s.%3f)%", "request_id": "%REQ(x-request-id)%", "path": "%REQ(:PATH)%",
        "model": f"%REQ({MODEL_HEADER})%", "version": f"%REQ({VERSION_HEADER})%",
        "variant": f"%RESP({VARIANT_HEADER})%", "grpc_status": "%GRPC_STATUS_NUMBER%",
        "http_status": "%RESPONSE_CODE%", "message": "%RESP(grpc-message)%", "details": "%RESPONSE_CODE_DETAILS%",
        "flags": "%RESPONSE_FLAGS%", "duration_ms": "%DURATION%", "traceparent": "%REQ(traceparent)%",
    }
    return {
        "name": "envoy.access_loggers.file",
        "filter": {"extension_filter": {
            "name": "envoy.access_loggers.extension_filters.cel",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3."
                                      "ExpressionFilter", "expression": expression}}},
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                         "path": path, "log_format": {"json_format": fields}},
    }
