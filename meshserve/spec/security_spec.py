"""The `security:` section of meshserve.yaml: who may come in at the front, and what each may do.

    security:
      tls:                                   # Envoy terminates TLS on the front listener
        certificate: certs/front.pem         # paths are relative to meshserve.yaml
        private_key: certs/front.key
        client_ca: certs/clients-ca.pem      # optional: mutual TLS, clients must show a certificate
      jwt:                                   # bearer tokens (Authorization: Bearer ...)
        issuer: https://login.example.com
        audiences: [meshserve]
        jwks_file: certs/jwks.json           # or jwks_uri: https://login.example.com/.well-known/jwks.json
        principal_claim: sub
      api_keys_file: secrets/api-keys.yaml   # principal: key (sent as x-api-key); keep it out of git
      principals:
        scoring-app: {models: [iris-species]}
        auditor: {records: true}
        release-bot: {admin: true}
      control_from: [127.0.0.1/32, "::1/128"]  # peers that may use the control API without a principal

Without jwt and api_keys_file anyone who reaches the front may infer (set-ups on one machine);
the control API is still refused to every peer outside `control_from` unless an admin
principal calls it. With authentication, an unauthenticated call is UNAUTHENTICATED at Envoy
and a principal calling outside its rights PERMISSION_DENIED. Envoy does all of it except the
per-model check, which needs the model name from inside the message: the router makes it from
the principal Envoy forwards (`x-meshserve-principal`), before anything else.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import yaml
from pydantic import Field, field_validator, model_validator

from meshserve.core.errors import ManifestError
from meshserve.core.settings import Settings
from meshserve.core.strict_model import StrictModel

ALL_MODELS = "*"
MIN_API_KEY_LENGTH = 16


class TlsSpec(StrictModel):
    certificate: str = Field(description="PEM certificate chain Envoy presents to clients.")
    private_key: str = Field(description="PEM private key of that certificate (keep it readable only by the mesh).")
    client_ca: str | None = Field(default=None, description="PEM CA bundle: clients must present a certificate it signed.")


class JwtSpec(StrictModel):
    issuer: str = Field(min_length=1, description="The `iss` every accepted token carries.")
    audiences: list[str] = Field(default_factory=list, description="Accepted `aud` values; empty: any.")
    jwks_file: str | None = Field(default=None, description="Local JSON Web Key Set that signs the tokens.")
    jwks_uri: str | None = Field(default=None, pattern=r"^https?://", description="Remote JWKS (fetched and cached by Envoy).")
    principal_claim: str = Field(default="sub", min_length=1, description="The claim that names the principal.")

    @model_validator(mode="after")
    def _one_key_set(self) -> "JwtSpec":
        if (self.jwks_file is None) == (self.jwks_uri is None):
            raise ValueError("give exactly one of jwks_file and jwks_uri")
        return self


class PrincipalRules(StrictModel):
    models: list[str] = Field(default_factory=list, description="Models it may call; \"*\" for every model.")
    records: bool = Field(default=False, description="May read prediction records (Control.GetRecords).")
    admin: bool = Field(default=False, description="May use the whole control API (rollouts, records, listing).")


class InternalTlsSpec(StrictModel):
    """Mutual TLS on every connection behind the front: Envoy <-> router <-> Envoy <-> adapters.
    One certificate (valid for 127.0.0.1) that every part presents and checks against CA."""

    certificate: str = Field(description="PEM certificate every internal party presents (SAN IP:127.0.0.1).")
    private_key: str = Field(description="Its PEM private key.")
    ca: str = Field(description="PEM CA that signed it; a peer without a certificate it signed is refused.")


class SecuritySpec(StrictModel):
    tls: TlsSpec | None = None
    internal_tls: InternalTlsSpec | None = None
    jwt: JwtSpec | None = None
    api_keys_file: str | None = Field(default=None, description="YAML mapping principal -> API key.")
    principals: dict[str, PrincipalRules] = Field(default_factory=dict)
    control_from: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"],
                                    description="Peer networks that may call the control API without a principal.")

    @field_validator("control_from")
    @classmethod
    def _networks(cls, networks: list[str]) -> list[str]:
        for network in networks:
            try:
                ipaddress.ip_network(network)
            except ValueError:
                raise ValueError(f"'{network}' is not a network such as 127.0.0.1/32") from None
        return networks

    @model_validator(mode="after")
    def _principals_need_authentication(self) -> "SecuritySpec":
        if self.principals and not self.authenticates:
            raise ValueError("principals are named but no authentication is configured")
        return self

    @property
    def authenticates(self) -> bool:
        return self.jwt is not None or self.api_keys_file is not None

    @property
    def needs_mesh_secret(self) -> bool:
        """Whether the ports behind the front must refuse callers without the per-mesh secret
        (meshserve/core/mesh_secret.py): whenever the front guards something, unless internal_tls
        already keeps those callers out."""
        return (self.tls is not None or self.authenticates) and self.internal_tls is None

    def may_call(self, principal: str, model: str) -> bool:
        """Whether PRINCIPAL may call MODEL (every authenticated principal may when none are listed)."""
        if not self.principals:
            return True
        rules = self.principals.get(principal)
        return rules is not None and (rules.admin or ALL_MODELS in rules.models or model in rules.models)


def resolve_security(security: SecuritySpec, base: Path, path: str) -> SecuritySpec:
    """SECURITY with its file paths made absolute (relative ones are relative to meshserve.yaml's
    folder) and each file checked, so a mistake stops `meshserve up` with file, field and fix."""
    def resolved(field: str, value: str | None) -> str | None:
        if value is None:
            return None
        file = (base / value).resolve()
        if not file.is_file():
            raise ManifestError(path, field, f"file {file} does not exist",
                                "give the path of an existing file (relative paths start at meshserve.yaml's folder; "
                                "docs/security.md shows how to make certificates and keys)")
        return str(file)

    updates: dict = {}
    if security.tls is not None:
        updates["tls"] = security.tls.model_copy(update={
            "certificate": resolved("security.tls.certificate", security.tls.certificate),
            "private_key": resolved("security.tls.private_key", security.tls.private_key),
            "client_ca": resolved("security.tls.client_ca", security.tls.client_ca)})
    if security.internal_tls is not None:
        updates["internal_tls"] = security.internal_tls.model_copy(update={
            field: resolved(f"security.internal_tls.{field}", getattr(security.internal_tls, field))
            for field in ("certificate", "private_key", "ca")})
    if security.jwt is not None and security.jwt.jwks_file is not None:
        jwks = resolved("security.jwt.jwks_file", security.jwt.jwks_file)
        try:
            keys = json.loads(Path(jwks).read_text()).get("keys")
        except (ValueError, AttributeError):
            keys = None
        if not keys:
            raise ManifestError(path, "security.jwt.jwks_file", f"{jwks} is not a JSON Web Key Set",
                                'give a JSON file {"keys": [...]} holding the public keys that sign the tokens')
        updates["jwt"] = security.jwt.model_copy(update={"jwks_file": jwks})
    if security.api_keys_file is not None:
        updates["api_keys_file"] = resolved("security.api_keys_file", security.api_keys_file)
        api_keys(updates["api_keys_file"])  # refuse a malformed file now, not when Envoy starts
    return security.model_copy(update=updates)


def api_keys(path: str) -> dict[str, str]:
    """The principal -> key mapping of an API keys file, checked."""
    try:
        keys = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise ManifestError(path, "(file)", f"not valid YAML: {exc}", "write one `principal: key` per line") from exc
    if not isinstance(keys, dict) or not keys:
        raise ManifestError(path, "(file)", "expected a mapping of principal -> key", "write one `principal: key` per line")
    for principal, key in keys.items():
        if not isinstance(key, str) or len(key) < MIN_API_KEY_LENGTH:
            raise ManifestError(path, str(principal), f"the key must be text of at least {MIN_API_KEY_LENGTH} characters",
                                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    if len(set(keys.values())) != len(keys):
        raise ManifestError(path, "(file)", "two principals share one key", "give every principal its own key")
    return {str(p): k for p, k in keys.items()}


def check_principal_models(security: SecuritySpec, models: set[str], path: str) -> None:
    """Refuse a rule naming a model that is not served (a typo would silently deny it)."""
    for principal, rules in security.principals.items():
        for model in rules.models:
            if model != ALL_MODELS and model not in models:
                raise ManifestError(path, f"security.principals.{principal}.models",
                                    f"no model named '{model}'", f"use one of {', '.join(sorted(models))} or \"*\"")


def security_fix(problem: str) -> str | None:
    """The fix for a problem in the security section, for the spec's one-line errors."""
    if "exactly one of jwks_file" in problem:
        return "keep either jwks_file (a local key set) or jwks_uri (a remote one)"
    if "no authentication" in problem:
        return "add security.jwt or security.api_keys_file, or drop security.principals"
    if "is not a network" in problem:
        return "write networks in CIDR form, e.g. 127.0.0.1/32 or 10.0.0.0/8"
    return None


def refuse_without_front(security: SecuritySpec, path: str) -> None:
    """`meshserve up --no-envoy` has no front listener to enforce SECURITY: refuse rather than
    serve in the clear what the spec says must be protected."""
    if security.tls is not None or security.internal_tls is not None or security.authenticates:
        raise ManifestError(path, "security", "TLS and authentication are Envoy's front listener, "
                            "and --no-envoy runs without it", "run `meshserve up` without --no-envoy")


def internal_tls_environment(security: SecuritySpec) -> dict[str, str]:
    """The settings (MESHSERVE_INTERNAL_TLS_*) that make the router and adapters serve and call
    with mutual TLS; empty when the spec asks for none."""
    tls = security.internal_tls
    if tls is None:
        return {}
    return Settings.child_environment(internal_tls_certificate=tls.certificate,
                                      internal_tls_private_key=tls.private_key, internal_tls_ca=tls.ca)
