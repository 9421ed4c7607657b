"""The operator's console, used as a person uses it: in a real browser (Debian's Chromium, driven by
Playwright) against a running mesh with client traffic, as an admin, a records reader and a
principal who may only score, each through a proxy that adds their key, and as a person with a
plain browser who logs in with a key or a token. Screenshots are kept in the folder the tests print."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from mesh_for_console import (  # noqa: F401 - fixtures
    ADMIN_KEY, READER_KEY, SCORER_KEY, browser, console_mesh, log_in, other_site, page_for, plain_page,
    screenshots, token, wait_for)
from meshserve.core.mesh_protocol import CONSOLE_KEY_COOKIE, CONSOLE_TOKEN_COOKIE
from meshserve.v1 import control_pb2 as cpb
from meshserve.v1 import control_pb2_grpc as cpb_grpc


def api(mesh, path: str, key: str = ADMIN_KEY, body: object = None, content_type: str = "application/json",
        raw: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
    """(status, JSON answer, headers) of a console API call through the front (HEADERS instead of the key)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(f"http://{mesh.address}/console/api/{path}", data=data,
                                     headers={**(headers or {"x-api-key": key}), "Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read()), dict(answer.headers)
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            document = json.loads(text)
        except ValueError:
            document = {"text": text.decode(errors="replace")}
        return exc.code, document, dict(exc.headers)


def split_shown(page) -> dict[str, float]:
    return json.loads(page.get_attribute("#split-now", "data-split") or "{}")


def test_the_models_page_shows_every_model_with_its_split_health_and_badges(console_mesh, browser, screenshots):
    mesh, client, _ = console_mesh
    assert any("console at http://" in line and "/console/" in line for line in mesh.lines)
    page = page_for(browser, mesh, ADMIN_KEY)
    page.goto(f"http://{mesh.address}/console/")
    page.wait_for_selector("#models tbody tr")
    rows = {(r.get_attribute("data-model"), r.get_attribute("data-version")): r
            for r in page.query_selector_all("#models tbody tr")}
    assert set(rows) == {("breast-cancer", "1"), ("breast-cancer", "2"), ("iris-species", "1")}
    weights = {key: row.query_selector("td.weight").inner_text() for key, row in rows.items()}
    assert weights[("breast-cancer", "1")] == "90" and weights[("breast-cancer", "2")] == "10"
    assert "1/1 healthy" in rows[("breast-cancer", "2")].inner_text() and "ready" in rows[("iris-species", "1")].inner_text()
    assert page.query_selector("[data-badge=drift]") and page.query_selector("[data-badge=quality]")
    assert "ops: may change traffic" in page.inner_text("#viewer")
    page.screenshot(path=str(screenshots / "console-models.png"), full_page=True)
    page.context.close()


def test_an_admin_moves_breast_cancer_to_50_50_and_sees_the_split_and_the_log(console_mesh, browser, screenshots):
    mesh, client, _ = console_mesh
    page = page_for(browser, mesh, ADMIN_KEY)
    page.goto(f"http://{mesh.address}/console/#/model/breast-cancer?window=5m")
    page.wait_for_selector("#traffic-control input[name=weight-1]")
    wait_for(lambda: split_shown(page).get("1", 0) > 75, 20, "the 90/10 split in the last 30 s")
    page.fill("input[name=weight-1]", "50")
    page.fill("input[name=weight-2]", "50")
    page.fill("input[name=reason]", "canary looks healthy, widening to half")
    page.click("button[name=apply]")
    page.wait_for_selector("#change-result .done")
    # Traffic keeps running: within seconds the answers of the last 30 s move towards half each.
    wait_for(lambda: 30 < split_shown(page).get("2", 0) < 70, 40, "a split near 50/50 in the console")
    traffic = page.evaluate("() => Chart.getChart('chart-traffic').data.datasets.map(d => d.label)")
    assert {"version 1 (primary)", "version 2 (canary)"} <= set(traffic)
    entry = page.wait_for_selector("#log tbody tr")
    assert "SetRollout" in entry.inner_text() and "canary looks healthy, widening to half" in entry.inner_text()
    assert "ops from" in entry.inner_text()
    page.screenshot(path=str(screenshots / "console-model.png"), full_page=True)
    page.context.close()
    status, answer, _ = api(mesh, "models/breast-cancer?window=5m")
    assert status == 200 and answer["rollout"]["weights"] == {"1": 50, "2": 50}
    assert not client.failures, client.failures[:3]


def test_a_records_reader_sees_no_controls_and_a_forged_change_is_refused(console_mesh, browser):
    mesh, _, _ = console_mesh
    page = page_for(browser, mesh, READER_KEY)
    page.goto(f"http://{mesh.address}/console/#/model/breast-cancer?window=5m")
    page.wait_for_selector("#split-now strong")
    page.wait_for_selector("#deployment-log table")
    assert page.query_selector("#traffic-control input") is None and page.query_selector("button[name=apply]") is None
    forged = page.evaluate("""async () => {
        const r = await fetch('/console/api/models/breast-cancer/rollout', {method: 'POST',
          headers: {'Content-Type': 'application/json'},
          body: JSON.stringify({weights: {'1': 0, '2': 100}, reason: 'not mine to make'})});
        return [r.status, (await r.json()).error];
    }""")
    assert forged[0] == 403 and "only admins" in forged[1]
    page.context.close()
    status, answer, _ = api(mesh, "models/breast-cancer?window=5m", key=READER_KEY)
    assert answer["rollout"]["weights"] == {"1": 50, "2": 50}
    assert "not mine to make" not in json.dumps(answer["log"])
    # A principal that may only score sees nothing at all, page or data.
    for path in ("models", "me"):
        status, answer, _ = api(mesh, path, key=SCORER_KEY)
        assert status == 403 and "admins and records readers" in answer["error"]
    request = urllib.request.Request(f"http://{mesh.address}/console/", headers={"x-api-key": SCORER_KEY})
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("the console page was shown to a principal without console rights")
    except urllib.error.HTTPError as exc:
        assert exc.code == 403


def test_a_request_id_from_a_clients_answer_opens_its_record(console_mesh, browser, screenshots):
    mesh, client, _ = console_mesh
    answer, headers = client.infer(client.rows(2))
    request_id = answer["id"]
    assert request_id and headers.get("x-request-id") == request_id
    page = page_for(browser, mesh, READER_KEY)
    page.goto(f"http://{mesh.address}/console/#/prediction")
    page.fill("input[name=request_id]", request_id)

    def found():
        page.click("button[name=find]")
        return page.wait_for_selector("#prediction section.record, #prediction p", timeout=5000) and \
            page.query_selector(f"#prediction section[data-request-id='{request_id}']")
    record = wait_for(found, 20, "the record of the request in the console")
    text = record.inner_text()
    assert f"request id\t{request_id}" in text or request_id in text
    assert answer["model_version"] in text and "breast-cancer" in text and "input features" in text
    digest = api(mesh, f"predictions?request_id={request_id}", key=READER_KEY)[1]["records"][0]["digest"]
    assert digest and digest in text
    page.screenshot(path=str(screenshots / "console-prediction.png"), full_page=True)
    page.context.close()


def test_a_drift_badge_turns_red_after_drifted_traffic(console_mesh, browser, screenshots):
    mesh, client, _ = console_mesh
    column = 0  # mean radius
    shifted = client.rows(400)
    shifted[:, column] += 2 * client.data[:, column].std()
    for start in range(0, len(shifted), 40):  # pinned to version 1: its count window fills with drifted rows
        client.infer(shifted[start:start + 40], version="1")
    page = page_for(browser, mesh, ADMIN_KEY)
    page.goto(f"http://{mesh.address}/console/#/")

    def red() -> bool:
        page.reload()  # as a person presses F5: the Models page is read once per visit
        page.wait_for_selector("#models [data-badge=drift]")
        return page.get_attribute("tr[data-model=breast-cancer] [data-badge=drift]", "data-state") == "alert"
    wait_for(red, 30, "a red drift badge on breast-cancer")
    assert page.get_attribute("tr[data-model=iris-species] [data-badge=drift]", "data-state") != "alert"
    page.screenshot(path=str(screenshots / "console-drift-badge.png"), full_page=True)
    page.goto(f"http://{mesh.address}/console/#/model/breast-cancer?window=5m")
    page.wait_for_selector("#drift tr.alerting")
    assert "mean radius" in page.inner_text("#drift tr.alerting")
    page.screenshot(path=str(screenshots / "console-drift.png"), full_page=True)
    page.context.close()


def test_bad_input_to_every_endpoint_gets_a_clear_error_and_changes_nothing(console_mesh):
    mesh, _, _ = console_mesh
    cases = [
        ("models/no-such-model", None, 404, "not served here"),
        ("models/breast-cancer?window=forever", None, 400, "window"),
        ("models/breast-cancer?window=90d", None, 400, "window"),
        ("models/breast-cancer?window=24h&step=1", None, 400, "step"),
        ("models/breast-cancer/records?limit=1000000", None, 400, "limit"),
        ("models/breast-cancer/records?before=tomorrow", None, 400, "before"),
        ("models/no-such-model/records", None, 404, "not served here"),
        ("predictions", None, 400, "request_id"),
        ("predictions?request_id=%3Cscript%3E", None, 400, "request_id"),
        ("predictions?trace_id=abc&limit=0", None, 400, "limit"),
        ("models/breast-cancer/rollout", {"weights": {"1": 100}, "reason": "<script>alert(1)</script>"}, 400, "reason"),
        ("models/breast-cancer/rollout", {"weights": {"1": 100}, "reason": ""}, 400, "reason"),
        ("models/breast-cancer/rollout", {"weights": {"1": -5}, "reason": "fine"}, 400, "weight"),
        ("models/breast-cancer/rollout", {"weights": {"9": 100}, "reason": "fine"}, 400, "not deployed"),
        ("models/breast-cancer/rollout", {"weights": {"1": 100}, "reason": "ok", "extra": 1}, 400, "extra"),
        ("models/no-such-model/rollout", {"weights": {"1": 100}, "reason": "fine"}, 404, "not served here"),
        ("models/breast-cancer/progressive", {"action": "promote", "reason": "fine"}, 400, "rollout_plan"),
        ("models/breast-cancer/progressive", {"action": "explode", "reason": "fine"}, 400, "action"),
        ("no/such/endpoint", None, 404, "no console endpoint"),
    ]
    for path, body, status, words in cases:
        got, answer, headers = api(mesh, path, body=body)
        assert (got, words in answer.get("error", "")) == (status, True), (path, got, answer)
        assert "default-src 'none'" in {k.lower(): v for k, v in headers.items()}.get("content-security-policy", ""), path
    got, answer, _ = api(mesh, "models/breast-cancer/rollout", raw=b"{not json", content_type="application/json")
    assert got == 400 and "not JSON" in answer["error"]
    got, answer, _ = api(mesh, "models/breast-cancer/rollout", raw=b"weights=1", content_type="text/plain")
    assert got == 400 and "Content-Type: application/json" in answer["error"]
    got, answer, _ = api(mesh, "models/breast-cancer/rollout", raw=b"x" * 200_000)
    assert got in (400, 413)
    status, page, _ = api(mesh, "models/breast-cancer?window=5m")
    assert page["rollout"]["weights"] == {"1": 50, "2": 50}, "a refused change changed the split"
    logged = json.dumps(page["log"])
    assert "<script>" not in logged
    assert np.isfinite(len(logged))


# -- logging in from a plain browser ------------------------------------------------------------

def login_cookies(page) -> dict[str, dict]:
    return {c["name"]: c for c in page.context.cookies() if c["name"] in (CONSOLE_KEY_COOKIE, CONSOLE_TOKEN_COOKIE)}


def login_error(page) -> str:
    return page.wait_for_selector("#login-result .error").inner_text()


def test_a_plain_browser_is_sent_to_log_in_sees_the_models_with_a_key_and_logs_out(console_mesh, browser, screenshots):
    mesh, _, _ = console_mesh
    page = plain_page(browser)
    log_in(page, mesh, "not-a-key-of-this-mesh-0123")
    assert page.url.startswith(f"http://{mesh.address}/console/login") and page.query_selector("#models") is None
    assert "did not accept this key or token" in login_error(page) and not login_cookies(page)
    page.screenshot(path=str(screenshots / "console-login.png"), full_page=True)
    page.fill("#credential", SCORER_KEY)  # a real key, but its principal may only score
    page.click("button[name=log-in]")
    page.wait_for_selector("#login-result .error:has-text('admins and records readers')")
    page.goto(f"http://{mesh.address}/console/#/model/breast-cancer")  # the login page keeps where it was going
    page.wait_for_selector("#credential")
    page.fill("#credential", ADMIN_KEY)
    page.click("button[name=log-in]")
    page.wait_for_selector("#split-now strong")
    assert "ops: may change traffic" in page.inner_text("#viewer")
    cookie = login_cookies(page)[CONSOLE_KEY_COOKIE]
    assert (cookie["path"], cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (
        "/console", True, "Strict", False)
    assert page.evaluate("() => document.cookie") == ""  # no script of any page reads it
    page.goto(f"http://{mesh.address}/console/#/")
    page.wait_for_selector("#models tbody tr")
    assert {r.get_attribute("data-model") for r in page.query_selector_all("#models tbody tr")} == {
        "breast-cancer", "iris-species"}
    # The cookie authenticates the console's own changes too (this one is refused for its empty reason).
    change = page.evaluate("""async () => {
        const r = await fetch('/console/api/models/breast-cancer/rollout', {method: 'POST',
          headers: {'Content-Type': 'application/json'}, body: JSON.stringify({weights: {'1': 100}, reason: ''})});
        return [r.status, (await r.json()).error];
    }""")
    assert change[0] == 400 and "reason" in change[1]
    page.click("#log-out")
    page.wait_for_selector("#credential")
    assert "logged out" in page.inner_text("#login-note") and not login_cookies(page)
    page.goto(f"http://{mesh.address}/console/")
    page.wait_for_selector("#credential")
    assert page.evaluate("async () => (await fetch('/console/api/models')).status") == 401
    page.context.close()


def test_a_person_logs_in_with_a_token_and_an_expired_one_is_refused(console_mesh, browser):
    mesh, _, _ = console_mesh
    page = plain_page(browser)
    log_in(page, mesh, token("auditor", expires_in=-600))
    assert "did not accept this key or token" in login_error(page)
    page.fill("#credential", token("auditor", expires_in=1800))
    page.click("button[name=log-in]")
    page.wait_for_selector("#models tbody tr")
    assert "auditor: may read records" in page.inner_text("#viewer")
    cookies = login_cookies(page)
    assert set(cookies) == {CONSOLE_TOKEN_COOKIE} and cookies[CONSOLE_TOKEN_COOKIE]["httpOnly"]
    expires = cookies[CONSOLE_TOKEN_COOKIE]["expires"]
    assert time.time() + 1700 < expires < time.time() + 1810  # kept no longer than the token is valid
    page.context.close()


def test_another_site_cannot_change_traffic_with_the_login_cookie(console_mesh, browser, other_site):
    mesh, _, _ = console_mesh
    before = api(mesh, "models/breast-cancer?window=5m")[1]["rollout"]
    page = plain_page(browser)
    log_in(page, mesh, ADMIN_KEY)
    page.wait_for_selector("#models tbody tr")
    site, set_html = other_site
    target = f"http://{mesh.address}/console/api/models/breast-cancer/rollout"
    set_html(f'<form method="POST" action="{target}" enctype="text/plain">'
             '<input name=\'{"weights": {"1": 0, "2": 100}, "reason": "forged", "x": "\' value=\'"}\'></form>'
             '<script>document.forms[0].submit()</script>')
    with page.expect_response(lambda r: r.url == target) as forged:
        page.goto(f"http://{site}/")
    assert forged.value.status == 401  # SameSite=Strict: the browser did not send the cookie
    page.context.close()
    # Were a cookie sent anyway, the console's own checks: JSON only, and from its own origin.
    cookie = {"Cookie": f"{CONSOLE_KEY_COOKIE}={ADMIN_KEY}"}
    change = {"weights": {"1": 0, "2": 100}, "reason": "forged"}
    status, answer, _ = api(mesh, "models/breast-cancer/rollout", body=change,
                            headers={**cookie, "Origin": f"http://{site}"})
    assert status == 403 and "console's own page" in answer["error"]
    status, answer, _ = api(mesh, "models/breast-cancer/rollout", raw=json.dumps(change).encode(),
                            content_type="text/plain", headers=cookie)
    assert status == 400 and "Content-Type: application/json" in answer["error"]
    assert api(mesh, "models/breast-cancer?window=5m")[1]["rollout"] == before


def test_the_login_cookie_authenticates_no_inference_and_no_control_call(console_mesh):
    mesh, client, _ = console_mesh
    rows = client.rows(1)
    body = json.dumps({"inputs": [{"name": "features", "datatype": "FP64", "shape": list(rows.shape),
                                   "data": rows.ravel().tolist()}]}).encode()
    for cookie in (f"{CONSOLE_KEY_COOKIE}={SCORER_KEY}", f"{CONSOLE_TOKEN_COOKIE}={token('scoring-app')}"):
        request = urllib.request.Request(f"http://{mesh.address}/v2/models/breast-cancer/infer", data=body,
                                         headers={"Content-Type": "application/json", "Cookie": cookie})
        try:
            urllib.request.urlopen(request, timeout=10)
            raise AssertionError(f"a REST inference was answered with only a login cookie ({cookie[:22]})")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
    infer = pb.ModelInferRequest(model_name="breast-cancer", inputs=[pb.ModelInferRequest.InferInputTensor(
        name="features", datatype="FP64", shape=list(rows.shape), contents=pb.InferTensorContents(
            fp64_contents=rows.ravel().tolist()))])
    with grpc.insecure_channel(mesh.address) as channel:
        stub, control = pb_grpc.GRPCInferenceServiceStub(channel), cpb_grpc.ControlStub(channel)
        for call in (lambda m: stub.ModelInfer(infer, metadata=m, timeout=15),
                     lambda m: control.ListModels(cpb.ListModelsRequest(), metadata=m, timeout=15)):
            try:
                call([("cookie", f"{CONSOLE_KEY_COOKIE}={ADMIN_KEY}")])
                raise AssertionError("a gRPC call was answered with only a login cookie")
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAUTHENTICATED, exc
        assert stub.ModelInfer(infer, metadata=[("x-api-key", SCORER_KEY)], timeout=15).model_name == "breast-cancer"
