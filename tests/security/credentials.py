"""Test credentials made on the spot: a self-signed certificate for localhost (openssl), a
JSON Web Key Set with an HMAC key, tokens signed with it, and an API keys file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import time
from pathlib import Path

ISSUER = "https://login.meshserve.test"
AUDIENCE = "meshserve"
SECRET = b"a-test-signing-key-of-32-bytes!!"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """front.pem and front.key: self-signed, valid for localhost and 127.0.0.1."""
    cert, key = folder / "front.pem", folder / "front.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def write_jwks(path: Path) -> Path:
    path.write_text(json.dumps({"keys": [{"kty": "oct", "alg": "HS256", "kid": "test", "k": b64url(SECRET)}]}))
    return path


# A day: tokens for parametrized cases are made when the suite is collected, and the suite may run
# long before these tests come up on a slow machine; only a token meant to be expired is.
def token(subject: str, issuer: str = ISSUER, audience: str = AUDIENCE, expires_in: float = 86400,
          secret: bytes = SECRET) -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "test"}).encode())
    now = int(time.time())
    claims = b64url(json.dumps({"iss": issuer, "aud": audience, "sub": subject, "iat": now,
                                "exp": now + int(expires_in)}).encode())
    signature = hmac.new(secret, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64url(signature)}"


def write_api_keys(path: Path, keys: dict[str, str]) -> Path:
    path.write_text("".join(f"{principal}: {key}\n" for principal, key in keys.items()))
    path.chmod(0o600)
    return path


def make_internal_pki(folder: Path) -> dict[str, Path]:
    """A CA and one certificate it signed for 127.0.0.1: what `security.internal_tls` takes."""
    paths = {name: folder / f"internal-{name}" for name in ("ca.pem", "ca.key", "cert.pem", "key.pem", "csr.pem", "san.cnf")}

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=meshserve internal CA",
            "-keyout", str(paths["ca.key"]), "-out", str(paths["ca.pem"]))
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=meshserve", "-keyout", str(paths["key.pem"]),
            "-out", str(paths["csr.pem"]))
    paths["san.cnf"].write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", str(paths["csr.pem"]), "-CA", str(paths["ca.pem"]), "-CAkey", str(paths["ca.key"]),
            "-CAcreateserial", "-days", "2", "-extfile", str(paths["san.cnf"]), "-out", str(paths["cert.pem"]))
    return {"ca": paths["ca.pem"], "certificate": paths["cert.pem"], "private_key": paths["key.pem"]}
