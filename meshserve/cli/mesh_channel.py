"""A command's gRPC channel to a mesh's front: TLS when a CA is given, and the caller's token
or API key as call metadata. Credentials come from settings (MESHSERVE_CLIENT_TOKEN,
MESHSERVE_CLIENT_API_KEY), never from the command line, where `ps` would show them."""

from __future__ import annotations

from pathlib import Path

import grpc

from meshserve.core.settings import get_settings


def open_channel(address: str, ca: str | None = None) -> grpc.Channel:
    """A channel to ADDRESS: TLS trusting CA (or MESHSERVE_CLIENT_CA) when one is given."""
    ca = ca or get_settings().client_ca
    if ca is None:
        return grpc.insecure_channel(address)
    credentials = grpc.ssl_channel_credentials(root_certificates=Path(ca).read_bytes())
    return grpc.secure_channel(address, credentials)


def credentials_metadata() -> list[tuple[str, str]]:
    """The metadata that authenticates a command: its bearer token and/or API key, if set."""
    settings = get_settings()
    metadata = []
    if settings.client_token is not None:
        metadata.append(("authorization", f"Bearer {settings.client_token.get_secret_value()}"))
    if settings.client_api_key is not None:
        metadata.append(("x-api-key", settings.client_api_key.get_secret_value()))
    return metadata
