"""The front's log of its own answers becomes records: what the client saw, once each, across
the log's rotation (Envoy reopening its log when the recorder asks)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from meshserve.sidecars.records import front_refusals
from meshserve.sidecars.records.recorder import Recorder
from meshserve.sidecars.records.store import SQLiteStore


def line(request_id: str, **fields) -> str:
    entry = {"time": "1796635847.423", "request_id": request_id, "path": "/inference.GRPCInferenceService/ModelInfer",
             "model": "iris", "version": None, "variant": "1 primary", "grpc_status": 14, "http_status": 200,
             "message": "no healthy upstream", "details": "no_healthy_upstream", "flags": "UH", "duration_ms": 3,
             "traceparent": None, **fields}
    return json.dumps(entry) + "\n"


def test_each_refusal_is_one_record_of_what_the_client_saw(tmp_path):
    log = tmp_path / "front.log"
    log.write_text(line("a") + line("b", grpc_status=5, model="nope", variant=None, message="model 'nope' is not served")
                   + line("c", path="/v2/models/iris/versions/2/infer", grpc_status=None, http_status=503, model=None,
                          variant="2 canary") + '{"request_id": "torn')  # Envoy still writing the last line
    store = SQLiteStore(tmp_path / "records.db")
    recorder = Recorder(tmp_path / "spool", store, front_log=log)
    assert recorder.drain_once() == 3
    assert recorder.drain_once() == 0  # read once, from the committed offset
    a, b, c = (store.records_for(r)[0] for r in "abc")
    assert (a["side"], a["model"], a["version"], a["role"], a["code"]) == ("front", "iris", "1", "primary", "UNAVAILABLE")
    assert "no healthy upstream" in a["error"] and "UH" in a["error"]
    assert (b["model"], b["code"]) == ("nope", "NOT_FOUND")
    assert (c["model"], c["version"], c["role"], c["code"], c["slot"]) == ("iris", "2", "canary", "UNAVAILABLE", "answer")


def test_the_log_is_rotated_once_read_and_nothing_is_lost_or_read_twice(tmp_path, monkeypatch):
    monkeypatch.setattr(front_refusals, "ROTATE_BYTES", 100)
    import meshserve.sidecars.records.recorder as recorder_module
    monkeypatch.setattr(recorder_module, "ROTATE_BYTES", 100)
    log = tmp_path / "front.log"

    class Envoy(BaseHTTPRequestHandler):
        def do_POST(self):  # /reopen_logs: Envoy writes to a new file under the old name
            log.touch()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    admin = HTTPServer(("127.0.0.1", 0), Envoy)
    threading.Thread(target=admin.serve_forever, daemon=True).start()
    try:
        store = SQLiteStore(tmp_path / "records.db")
        recorder = Recorder(tmp_path / "spool", store, front_log=log, envoy_admin=f"127.0.0.1:{admin.server_port}")
        log.write_text(line("r1") + line("r2"))
        recorder.drain_once()  # reads both, then renames the log and asks Envoy to reopen it
        assert (tmp_path / "front.log.1").exists() and log.exists()
        with open(tmp_path / "front.log.1", "a") as old:  # written before Envoy reopened
            old.write(line("r3"))
        with open(log, "a") as new:
            new.write(line("r4"))
        recorder.drain_once()
        recorder.drain_once()
        assert not (tmp_path / "front.log.1").exists()
        assert sorted(r for r, _ in store.request_ids()) == ["r1", "r2", "r3", "r4"]
    finally:
        admin.shutdown()
