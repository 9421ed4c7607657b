"""The router takes in a models table the launcher rewrote: new models and versions are added, and
a version it serves keeps the entry (and package) it had."""

from __future__ import annotations

from models.variant_packages import write_variant_packages

from meshserve.core.model_package import load_package
from meshserve.spec.model_table import ModelTable, UnavailableModel, acknowledge, loaded_generation


def test_a_rewritten_table_adds_what_is_new_and_keeps_what_is_served(tmp_path):
    packages = write_variant_packages(tmp_path / "models", "echo", ["1", "2"])
    write_variant_packages(packages, "other", ["1"])
    path = tmp_path / "models.json"
    echo1 = load_package(packages / "echo-1")
    ModelTable.write(path, [(echo1, "127.0.0.1:1")], unavailable=[UnavailableModel("other", "", "broken")])
    table = ModelTable.read(path)
    assert table.generation == 0 and "generation" not in path.read_text()
    served = table.models["echo"].versions["1"]

    ModelTable.write(path, [(echo1, "127.0.0.1:9"), (load_package(packages / "echo-2"), "127.0.0.1:2"),
                            (load_package(packages / "other-1"), "127.0.0.1:3")],
                     generation=1, default_versions={"echo": "1"})
    added = table.take_in(ModelTable.read(path))
    assert sorted(added) == [("echo", "2"), ("other", "1")]
    assert table.models["echo"].versions["1"] is served  # the running adapter's entry stays
    assert table.models["echo"].default_version == "1" and table.unavailable == [] and table.generation == 1


def test_the_router_acknowledges_the_generation_it_serves(tmp_path):
    path = tmp_path / "models.json"
    assert loaded_generation(path) == -1
    acknowledge(path, 3)
    assert loaded_generation(path) == 3
