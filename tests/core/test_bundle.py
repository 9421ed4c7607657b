"""Bundles: `meshserve package DIR -o OUTDIR` as a user runs it, and what opening a bundle checks."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml
from conftest import meshserve_argv
from models.variant_packages import write_variant_packages

from meshserve.core.bundle import BundleCorrupted, unpack_bundle
from meshserve.core.model_package import discover_packages


def run(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(meshserve_argv(*args), capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={**os.environ, **(env or {})})


def bundle_in(folder: Path) -> Path:
    found = sorted(folder.glob("*.msbundle"))
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    from meshserve.core.settings import get_settings

    folder = tmp_path / "cache"
    monkeypatch.setenv("MESHSERVE_BUNDLE_CACHE", str(folder))
    get_settings.cache_clear()  # settings are read once per process; an earlier test may have read them
    yield folder
    get_settings.cache_clear()


@pytest.fixture
def package(tmp_path) -> Path:
    return write_variant_packages(tmp_path / "src", "echo", ["1"]) / "echo-1"


@pytest.fixture(scope="module")
def packaged(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """One package and its bundle, made once: (package dir, bundle, the command's result)."""
    root = tmp_path_factory.mktemp("packaged")
    package = write_variant_packages(root / "src", "echo", ["1"]) / "echo-1"
    result = run("package", str(package), "-o", str(root / "out"), env={"MESHSERVE_BUNDLE_CACHE": str(root / "c")})
    assert result.returncode == 0, result.stderr
    return package, bundle_in(root / "out"), result


@pytest.fixture
def bundle(packaged, tmp_path) -> Path:
    """A copy of the module's bundle in a folder of its own, for a test to change."""
    (tmp_path / "out").mkdir()
    return Path(shutil.copy(packaged[1], tmp_path / "out"))


def test_packaging_twice_gives_the_same_bundle_and_one_changed_byte_gives_another(packaged, tmp_path):
    package, one, first = packaged
    package = Path(shutil.copytree(package, tmp_path / "echo-1"))
    again = run("package", str(package), "-o", str(tmp_path / "b"))
    assert again.returncode == 0, again.stderr
    two = bundle_in(tmp_path / "b")
    assert one.name == two.name and one.read_bytes() == two.read_bytes()
    digest = hashlib.sha256(one.read_bytes()).hexdigest()
    assert one.name == f"echo-1-{digest}.msbundle" and str(one) in first.stdout
    assert "8 golden examples" in first.stdout
    assert not (package / "golden.json").exists(), "packaging into a bundle leaves DIR as it is"

    source = package / "variant_model.py"
    source.write_bytes(source.read_bytes().replace(b"Every variant", b"every variant", 1))  # one byte
    changed = run("package", str(package), "-o", str(tmp_path / "c"))
    assert changed.returncode == 0, changed.stderr
    assert bundle_in(tmp_path / "c").name != one.name

    # Inside: sorted entries, no times or owners, the completed manifest and its golden examples.
    with tarfile.open(one) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == sorted(m.name for m in members)
        assert {(m.mtime, m.uid, m.gid, m.uname) for m in members} == {(0, 0, 0, "")}
        manifest = yaml.safe_load(tar.extractfile("model.yaml"))
        golden = json.load(tar.extractfile("golden.json"))
    assert manifest["golden"] == "golden.json" and "captured_at" not in manifest["environment"]
    assert manifest["environment"]["python"]["packages"]
    example = golden["examples"][0]
    assert example["inputs"]["x"]["data"] == example["outputs"]["y"]["data"], "the echo model's own answer"


def test_a_corrupted_bundle_is_refused_naming_the_file_and_both_digests(bundle, tmp_path):
    expected = bundle.name.split("-")[-1].removesuffix(".msbundle")
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0x01
    bundle.write_bytes(bytes(data))
    actual = hashlib.sha256(bytes(data)).hexdigest()

    with pytest.raises(BundleCorrupted) as refused:
        unpack_bundle(bundle)
    assert (refused.value.expected, refused.value.actual) == (expected, actual)
    for command in (("check", str(bundle)), ("up", str(tmp_path / "out"), "--strict")):
        result = run(*command)
        assert result.returncode == 2, result
        assert f"{bundle}: field '(digest)': the bundle is corrupted: expected sha256 {expected}, actual {actual}" \
            in result.stderr
        assert "Traceback" not in result.stderr


def test_a_bundle_is_unpacked_once_and_its_digest_is_the_package_digest(bundle, tmp_path, cache):
    digest = bundle.name.split("-")[-1].removesuffix(".msbundle")
    [served] = discover_packages(tmp_path / "out")
    assert served.directory == cache / digest and served.digest == digest and served.bundle == bundle
    assert discover_packages(bundle)[0].directory == served.directory


def test_provenance_records_the_training_data_and_the_code_revision(package, tmp_path):
    data = tmp_path / "train.csv"
    data.write_text("x,label\n" + "".join(f"{i / 10},{i % 2}\n" for i in range(25)))
    subprocess.run(["git", "init", "-q", str(package)], check=True)
    subprocess.run(["git", "-C", str(package), "-c", "user.email=t@example.com", "-c", "user.name=t",
                    "commit", "-qam", "x", "--allow-empty"], check=True)
    subprocess.run(["git", "-C", str(package), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(package), "-c", "user.email=t@example.com", "-c", "user.name=t",
                    "commit", "-qm", "model"], check=True)
    head = subprocess.run(["git", "-C", str(package), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()

    done = run("package", str(package), "-o", str(tmp_path / "clean"), "--training-data", str(data),
               "--golden-from", str(data), "--golden-rows", "5", "--tolerance", "0.001")
    assert done.returncode == 0, done.stderr
    assert "5 golden examples from train.csv (tolerance 0.001)" in done.stdout
    with tarfile.open(bundle_in(tmp_path / "clean")) as tar:
        manifest = yaml.safe_load(tar.extractfile("model.yaml"))
        golden = json.load(tar.extractfile("golden.json"))
    assert manifest["provenance"] == {"training_data_sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
                                      "training_data": "train.csv", "training_data_rows": 25, "code_revision": head}
    assert golden["tolerance"] == 0.001
    assert [e["inputs"]["x"]["data"] for e in golden["examples"]] == [[[0.0]], [[0.5]], [[1.0]], [[1.5]], [[2.0]]]

    (package / "variant_model.py").write_text((package / "variant_model.py").read_text() + "\n")
    dirty = run("package", str(package), "-o", str(tmp_path / "dirty"))
    assert dirty.returncode == 0 and f"code revision {head}-dirty" in dirty.stdout


def test_a_golden_file_without_the_inputs_columns_is_refused_in_one_line(package, tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"z": 1.0}\n')
    result = run("package", str(package), "-o", str(tmp_path / "out"), "--golden-from", str(data))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{data}: field '--golden-from': no column 'x' for input 'x'" in result.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.msbundle"))
