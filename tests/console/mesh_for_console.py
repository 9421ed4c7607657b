"""A mesh over the bundled breast-cancer (versions 1 and 2 at 90/10) and iris examples, with API
keys for an admin, a records reader and a scoring app and JWTs from a test issuer, drift checked
every second, and client traffic running in the background; and a headless Chromium (Debian's)
driven by Playwright."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import EXAMPLES, start_mesh, wait_for

ADMIN_KEY = "console-admin-key-0123456789"
READER_KEY = "console-reader-key-0123456789"
SCORER_KEY = "console-scorer-key-0123456789"
ISSUER = "https://login.console.test"
JWT_SECRET = b"console-test-signing-key-32bytes"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


class Client:
    """REST inferences on breast-cancer through the front, as the scoring app sends them."""

    def __init__(self, address: str):
        from sklearn.datasets import load_breast_cancer

        self.address = address
        self.data = load_breast_cancer().data
        self.rng = np.random.default_rng(3)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.failures: list[str] = []

    def infer(self, rows: np.ndarray, version: str = "", connection=None) -> tuple[dict, dict]:
        path = "/v2/models/breast-cancer" + (f"/versions/{version}" if version else "") + "/infer"
        body = json.dumps({"inputs": [{"name": "features", "datatype": "FP64", "shape": list(rows.shape),
                                       "data": rows.ravel().tolist()}]})
        own = connection is None
        connection = connection or http.client.HTTPConnection(self.address, timeout=30)
        try:
            connection.request("POST", path, body, {"Content-Type": "application/json", "x-api-key": SCORER_KEY})
            answer = connection.getresponse()
            payload = json.loads(answer.read())
            if answer.status != 200:
                raise AssertionError(f"inference refused: {answer.status} {payload}")
            return payload, dict(answer.getheaders())
        finally:
            if own:
                connection.close()

    def rows(self, count: int) -> np.ndarray:
        return self.data[self.rng.integers(0, len(self.data), count)]

    def _run(self, per_second: float) -> None:
        connection = http.client.HTTPConnection(self.address, timeout=30)
        while not self._stop.is_set():
            try:
                self.infer(self.rows(1), connection=connection)
                self.sent += 1
            except Exception as exc:  # noqa: BLE001 - kept for the test to show
                self.failures.append(repr(exc))
                connection.close()
                connection = http.client.HTTPConnection(self.address, timeout=30)
            time.sleep(1.0 / per_second)
        connection.close()

    def start(self, per_second: float = 25.0) -> None:
        self._thread = threading.Thread(target=self._run, args=(per_second,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


@pytest.fixture(scope="module")
def console_mesh(tmp_path_factory):
    models = tmp_path_factory.mktemp("console-mesh")
    for name in ("breast_cancer", "breast_cancer_v2", "iris_species"):
        (models / name).symlink_to(EXAMPLES / name, target_is_directory=True)
    keys = models / "api-keys.yaml"
    keys.write_text(f"ops: {ADMIN_KEY}\nauditor: {READER_KEY}\nscoring-app: {SCORER_KEY}\n")
    keys.chmod(0o600)
    (models / "jwks.json").write_text(json.dumps({"keys": [{"kty": "oct", "alg": "HS256", "kid": "console",
                                                            "k": _b64url(JWT_SECRET)}]}))
    (models / "meshserve.yaml").write_text(yaml.safe_dump({
        "models": {"breast-cancer": {
            "variants": [{"version": "1", "weight": 90}, {"version": "2", "weight": 10}],
            "drift": {"window_rows": 200, "window_s": 3600, "min_samples": 100, "psi_threshold": 0.2}}},
        "security": {"api_keys_file": str(keys), "jwt": {"issuer": ISSUER, "jwks_file": "jwks.json"}, "principals": {
            "ops": {"admin": True}, "auditor": {"records": True}, "scoring-app": {"models": ["*"]}}}}))
    mesh = start_mesh(models, env={"MESHSERVE_DRIFT_CHECK_EVERY_S": "1"})
    client = Client(mesh.address)
    client.start()
    try:
        yield mesh, client, models
    finally:
        client.stop()
        mesh.stop()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian's chromium is not at {CHROMIUM} (scripts/setup.d/70-reports.sh installs it)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extras")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("MESHSERVE_CONSOLE_SCREENSHOTS") or tmp_path_factory.mktemp("console-screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nconsole screenshots: {folder}")
    return folder


def page_for(browser, mesh, key: str):
    """A browser tab whose every request carries KEY, as an authenticating proxy in front of a
    browser sends it."""
    context = browser.new_context(extra_http_headers={"x-api-key": key}, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(20_000)
    return page





def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(subject: str, expires_in: float = 3600, secret: bytes = JWT_SECRET) -> str:
    """An HS256 JWT from the fixture's issuer for SUBJECT (the principal)."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "console"}).encode())
    now = int(time.time())
    claims = _b64url(json.dumps({"iss": ISSUER, "sub": subject, "iat": now, "exp": now + int(expires_in)}).encode())
    signature = hmac.new(secret, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{_b64url(signature)}"


def plain_page(browser):
    """A browser tab that sends nothing of its own: what a person opens."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(20_000)
    return page


def log_in(page, mesh, credential: str) -> None:
    """Type CREDENTIAL into the login page the console sends a plain browser to."""
    page.goto(f"http://{mesh.address}/console/")
    page.wait_for_selector("#credential")
    page.fill("#credential", credential)
    page.click("button[name=log-in]")


@pytest.fixture
def other_site():
    """A page at http://localhost:PORT/ (another site than the mesh's 127.0.0.1) whose HTML the
    test sets: ("localhost:PORT", set_html)."""
    html = {"page": b""}

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the standard library's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(html["page"])

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"localhost:{server.server_address[1]}", lambda text: html.update(page=text.encode())
    finally:
        server.shutdown()
        server.server_close()
