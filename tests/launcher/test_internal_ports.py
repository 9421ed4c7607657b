"""Operators behind a firewall give the mesh a fixed range of ports for everything behind the
front (MESHSERVE_INTERNAL_PORTS); every process `meshserve up` starts listens inside it."""

import re

import pytest

from conftest import EXAMPLES, start_mesh
from meshserve.core import ports
from meshserve.core.settings import get_settings


@pytest.fixture
def internal_ports(monkeypatch):
    def use(text: str) -> None:
        monkeypatch.setenv("MESHSERVE_INTERNAL_PORTS", text)
        get_settings.cache_clear()
    yield use
    monkeypatch.delenv("MESHSERVE_INTERNAL_PORTS", raising=False)
    get_settings.cache_clear()


def test_ports_come_from_the_range_until_it_is_used_up(internal_ports):
    internal_ports("23100-23104")
    taken = {ports.free_port() for _ in range(5)}
    assert taken == set(range(23100, 23105))
    with pytest.raises(ports.NoFreePort, match="MESHSERVE_INTERNAL_PORTS=23100-23104"):
        ports.free_port()


def test_a_range_outside_the_ports_is_refused_with_the_fix(internal_ports):
    internal_ports("80-90")
    with pytest.raises(ports.NoFreePort, match="for example, 20000-20999"):
        ports.free_port()


def test_every_process_of_a_mesh_listens_inside_the_range(tmp_path):
    (tmp_path / "iris").symlink_to(EXAMPLES / "iris_species", target_is_directory=True)
    mesh = start_mesh(tmp_path, "--listen", "127.0.0.1:23299",
                      env={"MESHSERVE_INTERNAL_PORTS": "23300-23399"})
    try:
        text = mesh.output
    finally:
        mesh.stop()
    seen = {int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", text)} - {23299}
    assert len(seen) >= 6, text  # adapter (gRPC, REST), router (gRPC, REST), Envoy (mesh, admin), metrics
    assert all(23300 <= port <= 23399 for port in seen), sorted(seen)
