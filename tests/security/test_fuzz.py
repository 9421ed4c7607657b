"""Thousands of malformed requests at the front (through Envoy) while well-behaved clients keep
sending: no process restarts, every bad answer is a clear status, no good request fails, and
resident memory returns near its start. The long run is `python bench/bench_fuzz.py`.

Before the fixes this failed: unparsable messages answered UNKNOWN, NaN reached the model
(OK or INTERNAL), and 60 KB names echoed into errors reset the Envoy-router connection."""

import pytest

from conftest import start_mesh
from malformed import fuzz

BAD_REQUESTS = 2000  # about 15 s on 2 cores, with 4 well-behaved clients at ~40 requests a second each
MAX_GROWTH_MIB = 64


@pytest.fixture(scope="module")
def mesh(python_examples):
    process = start_mesh(python_examples)
    yield process
    process.stop()


def test_malformed_requests_never_hurt_well_behaved_clients(mesh):
    result = fuzz(mesh.address, mesh.proc.pid, BAD_REQUESTS)
    print(f"\n{result.bad_requests} malformed requests in {result.seconds:.1f} s, {result.good_answers} good "
          f"answers; {result.statuses}\nresident memory growth (MiB): {result.growth_mib()}")
    assert not result.unclear, f"unclear statuses: {result.unclear}; {result.samples}"
    assert not result.good_failures, result.good_failures[:5]
    assert result.good_answers > 0
    assert result.longest_details <= 1024
    assert "exited with code" not in mesh.output and "restarting" not in mesh.output
    assert "Traceback" not in mesh.output
    assert max(result.growth_mib().values()) < MAX_GROWTH_MIB, result.growth_mib()
