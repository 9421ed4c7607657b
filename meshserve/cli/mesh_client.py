"""How every command reaches a running mesh, so that each one works against a secured mesh (TLS
and API keys or JWT at the front, docs/security.md) the same way:

- `add_mesh_options` (meshserve/cli/mesh_options.py) declares the address and `--ca` once;
- `MeshClient` opens the channel (TLS when a CA is given) whose every call carries the caller's
  token or API key, sync or asyncio alike;
- `MeshClient.failure` turns a refused call into a message that says what to do next.

Credentials come from settings (MESHSERVE_CLIENT_TOKEN, MESHSERVE_CLIENT_API_KEY), never from
the command line, where `ps` would show them to every user of the machine.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from meshserve.cli.mesh_options import CA_OPTION, MeshOptionError
from meshserve.core.settings import get_settings, variable_for

CREDENTIAL_VARIABLES = (variable_for("client_token"), variable_for("client_api_key"))
# How grpc words an UNAVAILABLE that came from the connection, not from the mesh: the address
# is wrong, nothing listens there, or TLS and plaintext do not meet.
CONNECTION_FAILURES = ("failed to connect", "socket closed", "connection reset", "connection refused", "handshake",
                       "name resolution", "dns")


def credentials_metadata() -> tuple[tuple[str, str], ...]:
    """The metadata that authenticates a command: its bearer token and/or API key, if set."""
    settings = get_settings()
    metadata = []
    if settings.client_token is not None:
        metadata.append(("authorization", f"Bearer {settings.client_token.get_secret_value()}"))
    if settings.client_api_key is not None:
        metadata.append(("x-api-key", settings.client_api_key.get_secret_value()))
    return tuple(metadata)


@dataclass(frozen=True)
class MeshClient:
    """A command's way to one mesh: where it is, the CA its TLS is checked against, the credentials."""

    address: str
    ca: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_args(cls, args) -> MeshClient:
        """The mesh that `add_mesh_options`'s options name, with the credentials of the environment."""
        settings = get_settings()
        ca = args.ca or settings.client_ca
        if ca and not Path(ca).is_file():
            origin = CA_OPTION if args.ca else "MESHSERVE_CLIENT_CA"
            raise MeshOptionError(f"{origin} {ca}: no such file; give the PEM certificate (or its CA) that the "
                                  "mesh's front presents (security.tls.certificate in its meshserve.yaml)")
        return cls(args.address or settings.listen, ca or None, credentials_metadata())

    def credentials(self) -> grpc.ChannelCredentials | None:
        """TLS trusting the CA, or None for plaintext."""
        if self.ca is None:
            return None
        return grpc.ssl_channel_credentials(root_certificates=Path(self.ca).read_bytes())

    def channel(self) -> grpc.Channel:
        """A blocking channel whose every call carries the credentials."""
        from meshserve.core.grpc_server import channel_options

        credentials = self.credentials()
        channel = (grpc.secure_channel(self.address, credentials, options=channel_options()) if credentials
                   else grpc.insecure_channel(self.address, options=channel_options()))
        return grpc.intercept_channel(channel, _Authenticate(self.metadata))

    def aio_channel(self) -> grpc.aio.Channel:
        """An asyncio channel whose every call carries the credentials; open it inside the running loop."""
        from meshserve.core.grpc_server import channel_options

        credentials, interceptors = self.credentials(), [_AuthenticateAio(self.metadata)]
        if credentials:
            return grpc.aio.secure_channel(self.address, credentials, options=channel_options(),
                                           interceptors=interceptors)
        return grpc.aio.insecure_channel(self.address, options=channel_options(), interceptors=interceptors)

    @contextmanager
    def control(self) -> Iterator:
        """The mesh's control service (meshserve.v1.Control), closed on leaving."""
        from meshserve.v1 import control_pb2_grpc as cpb_grpc

        with self.channel() as channel:
            yield cpb_grpc.ControlStub(channel)

    def triton(self):
        """A tritonclient gRPC client of the mesh; pass `headers=self.headers` with each call."""
        import tritonclient.grpc as triton

        return triton.InferenceServerClient(self.address, creds=self.credentials())

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.metadata)

    def failure(self, exc: grpc.RpcError) -> str:
        """What went wrong with a call, and what to do about it."""
        return self.failure_of(exc.code(), exc.details() or "")

    def failure_of(self, code: grpc.StatusCode, details: str) -> str:
        """The same, from a status a client library reported apart from its RpcError (tritonclient)."""
        fix = _fix(code, details, self)
        return f"{code.name}: {details.rstrip('. ')}" + (f". Fix: {fix}" if fix else "")


def _fix(code: grpc.StatusCode, details: str, client: MeshClient) -> str:
    if code == grpc.StatusCode.UNAVAILABLE:
        return _fix_unreachable(details, client)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        if not client.metadata:
            return ("the mesh asks for credentials: set MESHSERVE_CLIENT_TOKEN (a JWT from its issuer) or "
                    "MESHSERVE_CLIENT_API_KEY (a key from its api_keys_file) in the environment")
        return (f"the mesh refused the credentials in {' or '.join(CREDENTIAL_VARIABLES)}: check that the token "
                "is not expired and is signed for this mesh, or that the key is one of its api_keys_file")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return ("use the credentials of a principal allowed this call (security.principals in the mesh's "
                "meshserve.yaml): rollout, models, deploy, batch and outcomes need one with `admin: true`; audit, "
                "compare, drift, quality and records export one with `records: true` (or admin), and explain one that "
                "may also call the model; or run the command from a peer in security.control_from")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "the mesh did not answer in time; check that it is not starting or overloaded, and try again"
    return ""


def _fix_unreachable(details: str, client: MeshClient) -> str:
    lowered = details.lower()
    if not any(sign in lowered for sign in CONNECTION_FAILURES):
        return ""  # the mesh itself answered (a replica restarting): its message says when to retry
    if "connection refused" in lowered or "name resolution" in lowered or "dns" in lowered:
        return (f"no mesh answers at {client.address}: start it (`meshserve up`), or give the address it "
                "listens on (the default is MESHSERVE_LISTEN)")
    if client.ca is None:
        return (f"if the mesh serves TLS (security.tls in its meshserve.yaml), pass {CA_OPTION} PEM (or set "
                "MESHSERVE_CLIENT_CA) with the certificate or CA of its front; otherwise check that it runs at "
                f"{client.address}")
    if "wrong_version_number" in lowered or "packet_length_too_long" in lowered:
        return f"the mesh at {client.address} does not serve TLS: drop {CA_OPTION} and MESHSERVE_CLIENT_CA"
    if "handshake" in lowered or "certificate" in lowered or "ssl" in lowered:
        return (f"the TLS handshake with {client.address} failed: check that {client.ca} is the certificate or CA "
                "of the mesh's front, and that the address names a host its certificate is valid for")
    return f"check that the mesh runs at {client.address} and try again"


class _CallDetails(collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials",
                                                           "wait_for_ready", "compression")),
                   grpc.ClientCallDetails):
    """A blocking call's details with the credentials added; grpc leaves the concrete class to us."""


class _Authenticate(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                    grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the credentials to every call, so no command can forget them on one of its calls."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]):
        self.metadata = metadata

    def _call(self, continuation, details, request):
        metadata = (*tuple(details.metadata or ()), *self.metadata)
        return continuation(_CallDetails(details.method, details.timeout, metadata, details.credentials,
                                         details.wait_for_ready, getattr(details, "compression", None)), request)

    intercept_unary_unary = intercept_unary_stream = _call
    intercept_stream_unary = intercept_stream_stream = _call


class _AuthenticateAio(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    """The same for asyncio channels (batch scoring)."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]):
        self.metadata = metadata

    async def _call(self, continuation, details, request):
        metadata = grpc.aio.Metadata.from_tuple((*tuple(details.metadata or ()), *self.metadata))
        return await continuation(details._replace(metadata=metadata), request)

    intercept_unary_unary = intercept_unary_stream = _call
