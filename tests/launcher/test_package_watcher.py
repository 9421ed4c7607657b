"""The package watcher decides what to load from the models folder; the loading itself is faked here
(tests/processes/test_live_loading.py loads into a real mesh)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
import yaml
from models.variant_packages import write_variant_packages

from meshserve.core.model_package import BrokenPackage, discover_packages, load_package
from meshserve.launcher.package_watcher import PackageWatcher
from meshserve.spec.model_table import UnavailableModel
from meshserve.spec.models_folder import find_in_folder, package_locations


class FakeLoading:
    """Serves whatever it is asked to, except versions listed in `refuse`."""

    def __init__(self, served):
        self._served = {(p.name, p.version): p for p in served}
        self.loads: list[tuple[list[str], set]] = []
        self.published: list[list[UnavailableModel]] = []
        self.refuse: dict[tuple[str, str], str] = {}

    def served(self):
        return dict(self._served)

    async def load(self, packages, fixed, unavailable):
        self.loads.append(([f"{p.name}:{p.version}" for p in packages], set(fixed)))
        failed = {}
        for package in packages:
            key = (package.name, package.version)
            if key in self.refuse:
                failed[key] = self.refuse[key]
            else:
                self._served[key] = package
        return failed

    async def publish(self, unavailable):
        self.published.append(list(unavailable))


def start(models: Path) -> tuple[PackageWatcher, FakeLoading, list[str]]:
    lines: list[str] = []
    watcher = PackageWatcher(models, None, lines.append, interval=1)
    broken: list[BrokenPackage] = []
    loading = FakeLoading(discover_packages(models, broken))
    watcher.loading = loading
    watcher.prime(broken)
    return watcher, loading, lines


def look(watcher: PackageWatcher, times: int = 2) -> None:
    """Two looks: a change is acted on once it stayed the same from one look to the next."""
    for _ in range(times):
        asyncio.run(watcher.step())


def touch_later(path: Path) -> None:
    later = time.time() + 5
    os.utime(path, (later, later))


def break_package(directory: Path, runtime: str) -> None:
    manifest = yaml.safe_load((directory / "model.yaml").read_text())
    (directory / "model.yaml").write_text(yaml.safe_dump({**manifest, "runtime": runtime}))
    touch_later(directory / "model.yaml")


def test_a_new_version_is_loaded_once_its_files_stop_changing(tmp_path):
    models = write_variant_packages(tmp_path / "models", "echo", ["1"])
    watcher, loading, _ = start(models)
    look(watcher)
    assert loading.loads == []
    write_variant_packages(models, "echo", ["2"])
    asyncio.run(watcher.step())  # seen for the first time: maybe still being copied
    assert loading.loads == []
    asyncio.run(watcher.step())
    assert loading.loads == [(["echo:2"], set())]
    look(watcher)
    assert len(loading.loads) == 1  # loaded once, not at every look


def test_a_broken_package_is_said_once_per_change_and_served_once_fixed(tmp_path):
    models = write_variant_packages(tmp_path / "models", "echo", ["1"])
    write_variant_packages(models, "other", ["1"])
    break_package(models / "other-1", "julia")
    watcher, loading, lines = start(models)
    look(watcher, 3)
    assert lines == [] and loading.loads == []

    break_package(models / "other-1", "jython")
    look(watcher, 3)
    assert len(lines) == 1 and "still not serving other" in lines[0] and "'jython'" in lines[0]
    assert loading.published[-1][0].name == "other" and "jython" in loading.published[-1][0].reason

    break_package(models / "other-1", "python")
    look(watcher)
    assert loading.loads == [(["other:1"], {("other", "1")})]
    assert loading.published[-1] == []


def test_a_load_that_fails_is_reported_and_tried_again_only_after_a_change(tmp_path):
    models = write_variant_packages(tmp_path / "models", "echo", ["1"])
    watcher, loading, lines = start(models)
    loading.refuse[("echo", "2")] = "its adapter did not start: boom"
    write_variant_packages(models, "echo", ["2"])
    look(watcher, 4)
    assert loading.loads == [(["echo:2"], set())]
    assert any("not serving echo" in line and "boom" in line for line in lines)
    assert [(u.name, u.version) for u in loading.published[-1]] == [("echo", "2")]
    del loading.refuse[("echo", "2")]
    touch_later(models / "echo-2" / "variant_model.py")
    look(watcher)
    assert loading.loads[-1] == (["echo:2"], set())


def test_a_changed_package_of_a_served_version_keeps_the_loaded_one(tmp_path):
    models = write_variant_packages(tmp_path / "models", "echo", ["1"])
    watcher, loading, lines = start(models)
    (models / "echo-1" / "variant_model.py").write_text("# changed\n")
    touch_later(models / "echo-1" / "variant_model.py")
    look(watcher)
    assert loading.loads == []
    assert len(lines) == 1 and "echo:1 changed" in lines[0] and "give the change a new version" in lines[0]


def test_hidden_folders_are_not_packages_and_deploy_finds_what_is_there(tmp_path):
    models = write_variant_packages(tmp_path / "models", "echo", ["1"])
    write_variant_packages(models / ".echo-2.importing-1", "echo", ["2"])
    assert [p.name for p in package_locations(models)] == ["echo-1"]
    assert find_in_folder(models, "echo", "1") == (models / "echo-1").resolve()
    assert find_in_folder(models, "echo", "2") is None
    bundle = models / f"echo-3-{'a' * 64}.msbundle"
    bundle.write_bytes(b"")
    assert find_in_folder(models, "echo", "3") == bundle.resolve()
    assert load_package(models / "echo-1").version == "1"


@pytest.mark.parametrize("runtime", ["julia"])
def test_good_versions_of_a_model_broken_at_start_wait_for_the_broken_one(tmp_path, runtime):
    models = write_variant_packages(tmp_path / "models", "echo", ["1"])
    write_variant_packages(models, "other", ["1", "2"])
    break_package(models / "other-2", runtime)
    watcher, loading, _ = start(models)
    assert ("other", "1") not in loading.served()
    look(watcher, 3)
    assert loading.loads == []
    break_package(models / "other-2", "python")
    look(watcher)
    assert loading.loads == [(["other:1", "other:2"], {("other", "1"), ("other", "2")})]
