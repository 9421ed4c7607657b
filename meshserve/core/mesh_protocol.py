"""The mesh's own protocol: what its processes tell each other beside the Open Inference Protocol.

The router, Envoy's rendered configuration and the adapters all speak it, so it lives here
and nowhere else: the headers the mesh sets on a forwarded call, the traffic roles, how a
call's request id, role, pinned version and deadline are read back from its metadata, the
model metadata and Triton-style model config built from a package, and the ready lines
that `meshserve up` waits for.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2 as pb

from meshserve.core.model_package import ModelPackage

REQUEST_ID_HEADER = "x-request-id"
MODEL_HEADER = "x-meshserve-model"  # set by the router; Envoy's mesh listener routes on it
VERSION_HEADER = "x-meshserve-version"  # set by the router when the client named a version
ROLE_HEADER = "x-meshserve-role"  # set by Envoy on the way to an adapter: which traffic this is
# Set by Envoy's mesh listener on every answer, Envoy's own refusals too: the variant the
# request was routed to, "VERSION ROLE", so a shed request is counted against its variant.
VARIANT_HEADER = "x-meshserve-variant"
TRACE_ID_HEADER = "x-meshserve-trace-id"  # trailing metadata: the trace an answer belongs to, when traced
INTERNAL_HEADER_PREFIX = "x-meshserve-"
# Set by Envoy's front listener only (client copies are removed first): who is calling, as
# authentication established it, and the caller's own address, for authorization and the
# deployment log.
PRINCIPAL_HEADER = "x-meshserve-principal"
PEER_HEADER = "x-meshserve-peer"
# Set by Envoy's front listener on a ModelInfer it routed by its body: the call came from a client,
# not from the router, so a model scaled to zero sends it to the router's activator.
HOP_HEADER = "x-meshserve-hop"
FRONT_HOP = "front"
# Set by Envoy, the router and the deploy gate on every call to a mesh server: the per-mesh
# secret that proves the call came through the front or from the mesh itself (mesh_secret.py).
MESH_SECRET_HEADER = "x-meshserve-mesh-secret"
# The console's login (meshserve/console/session.py sets them, Envoy's front reads them on console
# paths only): an API key, or a bearer token, carried as a cookie by a plain browser.
CONSOLE_KEY_COOKIE = "meshserve-console-key"
CONSOLE_TOKEN_COOKIE = "meshserve-console-token"
# Headers only the mesh may set: the front and the router drop any a client sent.
INTERNAL_HEADERS = (MODEL_HEADER, VERSION_HEADER, ROLE_HEADER, HOP_HEADER, MESH_SECRET_HEADER)
# Client headers worth carrying to the adapter besides x-*: W3C trace context.
TRACE_CONTEXT_HEADERS = ("traceparent", "tracestate", "baggage")

PRIMARY, CANARY, SHADOW = "primary", "canary", "shadow"
ROLES = (PRIMARY, CANARY, SHADOW)
ROLE_PARAMETER = "meshserve_role"  # response parameter naming the role that answered

Metadata = Iterable[tuple[str, str | bytes]]


def trace_id_of(metadata: Metadata) -> str:
    """The trace id of a W3C `traceparent` header (version-traceid-spanid-flags), or ""."""
    for key, value in metadata or ():
        if key == "traceparent" and isinstance(value, str):
            parts = value.split("-")
            if len(parts) >= 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
                return parts[1].lower()
    return ""


class _RequestIds:
    """Ids for requests that came without one: a random prefix per process and a counter, as
    unique as uuid4 across the mesh and made without a system call. A call that releases the GIL
    on an adapter's event loop waits for it again behind the predict threads, so it costs far
    more than its own microseconds under load. A forked child takes a prefix of its own."""

    def __init__(self):
        self._reseed()
        os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        self._prefix, self._counter = os.urandom(8).hex(), itertools.count()

    def new(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


new_request_id = _RequestIds().new


MAX_REQUEST_ID = 128


def usable_request_id(value: str) -> bool:
    """An id that can travel as a header value: printable ASCII, at most 128 characters. Any
    other id (a control character in the request's `id`, 60 KB of text) would make gRPC refuse
    the answer's metadata, so the mesh gives that request a new id instead."""
    return 0 < len(value) <= MAX_REQUEST_ID and value.isascii() and value.isprintable()


def request_id_of(metadata: Metadata, request_id_field: str = "") -> str:
    """The caller's x-request-id header, else the request's own id, else a new one."""
    for key, value in metadata or ():
        if key == REQUEST_ID_HEADER and value:
            value = value if isinstance(value, str) else value.decode(errors="replace")
            if usable_request_id(value):
                return value
    return request_id_field if usable_request_id(request_id_field) else new_request_id()


def deadline_from(time_remaining: float | None) -> float | None:
    """A gRPC call's time remaining as a time.monotonic() deadline (None: the caller set none)."""
    return None if time_remaining is None else time.monotonic() + time_remaining


@dataclass(frozen=True)
class CallInfo:
    """What a server knows of one inference besides its tensors."""

    request_id: str
    role: str = PRIMARY  # primary | canary | shadow: which traffic this is, for records and answers
    deadline: float | None = None  # time.monotonic() by which the caller wants the answer
    pinned_version: str = ""  # the version the client named, if any
    trace_id: str = ""  # W3C trace id from the caller's traceparent, if it sent one

    @classmethod
    def from_metadata(cls, metadata: Metadata, request_id_field: str = "",
                      time_remaining: float | None = None) -> "CallInfo":
        """Read a call as the adapter receives it: Envoy stamped the role; direct calls are primary."""
        headers = {k: v for k, v in metadata or () if isinstance(v, str)}
        role = headers.get(ROLE_HEADER, PRIMARY)
        return cls(request_id=request_id_of(metadata, request_id_field),
                   role=role if role in ROLES else PRIMARY,
                   deadline=deadline_from(time_remaining),
                   pinned_version=headers.get(VERSION_HEADER, ""),
                   trace_id=trace_id_of(metadata))

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()


def forwarded_headers(client_metadata: Metadata, request_id: str, model: str, version: str = "") -> list[tuple[str, str]]:
    """The metadata the router sends on: the mesh's own headers set by it alone, the client's
    other x-* headers and trace context passed through."""
    headers = [(REQUEST_ID_HEADER, request_id), (MODEL_HEADER, model)]
    if version:
        headers.append((VERSION_HEADER, version))
    for key, value in client_metadata or ():
        if key == REQUEST_ID_HEADER or key.startswith(INTERNAL_HEADER_PREFIX):
            continue
        if key.startswith("x-") or key in TRACE_CONTEXT_HEADERS:
            headers.append((key, value))
    return headers


def routing_headers(model: str, version: str = "") -> list[tuple[str, str]]:
    """What Envoy's mesh listener needs to pick a variant, for calls that carry no request (ModelReady)."""
    return [(MODEL_HEADER, model)] + ([(VERSION_HEADER, version)] if version else [])


def model_metadata(package: ModelPackage, versions: list[str]) -> pb.ModelMetadataResponse:
    signature = package.manifest.signature
    tensor = pb.ModelMetadataResponse.TensorMetadata
    batched = takes_batches(package)
    return pb.ModelMetadataResponse(
        name=package.name,
        versions=versions,
        platform=f"meshserve_{package.manifest.runtime}",
        # One value per row is [-1, 1] in a model that takes batches, as Triton says it (and
        # takes [rows] as well): its tools strip the batch dimension and need one left.
        inputs=[tensor(name=s.name, datatype=s.datatype, shape=[-1, 1] if s.shape == [-1] and batched else s.shape)
                for s in signature.inputs],
        outputs=[tensor(name=s.name, datatype=s.datatype, shape=s.shape) for s in signature.outputs],
    )


def takes_batches(package: ModelPackage) -> bool:
    """Whether the model takes rows along a leading batch dimension: every input and output
    starts with -1, so requests of any row count share one predict call."""
    signature = package.manifest.signature
    return all(spec.shape and spec.shape[0] == -1 for spec in (*signature.inputs, *signature.outputs))


def model_config(package: ModelPackage) -> pb.ModelConfigResponse:
    """The model as Triton's ModelConfig describes one, for Triton's own tools (perf_analyzer).

    A model that takes batches says so as Triton does: max_batch_size > 0 and dims without the
    batch dimension (a tensor of one value per row is dims [1] reshaped to []), so the tools
    need no --shape. Its max_batch_size is the manifest's `batching.max_batch_size` (1 when
    the package does not micro-batch); micro-batching shows as `dynamic_batching` with the
    manifest's wait, and `batching.concurrency` as the instance count. Any other model keeps
    max_batch_size 0 and its full shapes.
    """
    signature = package.manifest.signature
    batching = package.manifest.batching
    batched = takes_batches(package)

    def tensor(kind, spec):
        data_type = "TYPE_STRING" if spec.datatype == "BYTES" else f"TYPE_{spec.datatype}"
        dims = spec.shape[1:] if batched else spec.shape
        described = kind(name=spec.name, data_type=mc.DataType.Value(data_type), dims=dims or [1])
        if not dims:
            described.reshape.SetInParent()  # one value per row: Triton's [1] reshaped to []
        return described

    config = mc.ModelConfig(
        name=package.name, platform=f"meshserve_{package.manifest.runtime}",
        max_batch_size=batching.max_batch_size if batched else 0,
        input=[tensor(mc.ModelInput, s) for s in signature.inputs],
        output=[tensor(mc.ModelOutput, s) for s in signature.outputs],
        instance_group=[mc.ModelInstanceGroup(count=batching.concurrency, kind=mc.ModelInstanceGroup.KIND_CPU)])
    config.version_policy.latest.num_versions = 1
    if batched and batching.max_batch_size > 1:
        config.dynamic_batching.max_queue_delay_microseconds = batching.max_wait_us
    return pb.ModelConfigResponse(config=config)


# Each child of `meshserve up` prints one of these once it serves; `up` waits for the marker.
ADAPTER_READY = "meshserve adapter ready"
ROUTER_READY = "meshserve router ready"
ENVOY_READY = "meshserve envoy ready"
RECORDER_READY = "meshserve recorder ready"


def adapter_ready_line(model: str, version: str, listen: str) -> str:
    return f"{ADAPTER_READY}: {model}:{version} on {listen}"


def router_ready_line(listen: str) -> str:
    return f"{ROUTER_READY} on {listen}"
