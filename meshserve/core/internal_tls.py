"""Mutual TLS for the connections behind the front (Envoy <-> router, router -> Envoy's mesh
listener, Envoy -> adapters), from the MESHSERVE_INTERNAL_TLS_* settings `meshserve up` sets
when meshserve.yaml has `security.internal_tls`. Without them every server and channel stays
plain text on 127.0.0.1, as before. Both sides present the one internal certificate and
require the other's, so a local process without it can no longer bypass the front."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import grpc

from meshserve.core.settings import get_settings


@lru_cache(maxsize=1)
def _material() -> tuple[bytes, bytes, bytes] | None:
    settings = get_settings()
    paths = (settings.internal_tls_certificate, settings.internal_tls_private_key, settings.internal_tls_ca)
    if not any(paths):
        return None
    if not all(paths):
        raise SystemExit("meshserve: set all of MESHSERVE_INTERNAL_TLS_CERTIFICATE, _PRIVATE_KEY and _CA, or none")
    return tuple(Path(p).read_bytes() for p in paths)  # type: ignore[return-value]


def server_credentials() -> grpc.ServerCredentials | None:
    """Credentials a server listens with: its certificate, and clients must show one the CA signed."""
    material = _material()
    if material is None:
        return None
    certificate, key, ca = material
    return grpc.ssl_server_credentials([(key, certificate)], root_certificates=ca, require_client_auth=True)


def channel_credentials() -> grpc.ChannelCredentials | None:
    """Credentials a channel connects with: checks the server against the CA, shows its own certificate."""
    material = _material()
    if material is None:
        return None
    certificate, key, ca = material
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=certificate)


def server_ssl_context():
    """The same for an HTTP server (the router's REST listener): an ssl.SSLContext, or None."""
    settings = get_settings()
    if _material() is None:
        return None
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=settings.internal_tls_ca)
    context.load_cert_chain(settings.internal_tls_certificate, settings.internal_tls_private_key)
    context.verify_mode = ssl.CERT_REQUIRED
    return context
