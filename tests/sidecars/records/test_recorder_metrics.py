"""The recorder says on its metrics port when the records store refuses what it read, so the
MeshserveRecordsNotStored alert (compose/prometheus/mesh-alerts.yml) pages before the spools fill."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

from conftest import free_port

from meshserve.core.settings import Settings


def _failures(address: str) -> float | None:
    try:
        text = urllib.request.urlopen(f"http://{address}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("meshserve_records_store_failures_total "):
            return float(line.split()[1])
    return None


def test_a_store_that_cannot_be_reached_is_counted_on_the_recorders_metrics_port(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    # Nothing listens on the store's port: every attempt fails, and the records stay spooled.
    store = f"postgresql://meshserve@127.0.0.1:{free_port()}/records?connect_timeout=1"
    env = {**os.environ, **Settings.child_environment(metrics_listen=address)}
    recorder = subprocess.Popen([sys.executable, "-m", "meshserve.sidecars.records.recorder",
                                 "--spool", str(tmp_path / "spool"), "--store", store],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, seen = time.monotonic() + 20, None
        while time.monotonic() < deadline:
            seen = _failures(address)
            if seen is not None and seen >= 2:
                break
            time.sleep(0.5)
        assert seen is not None and seen >= 2, f"failures counted: {seen}"
        # Background work: the recorder (and its drift monitor) take the CPU serving leaves.
        assert os.getpriority(os.PRIO_PROCESS, recorder.pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
    finally:
        recorder.terminate()
        output, _ = recorder.communicate(timeout=10)
    assert "cannot open the store" in output
