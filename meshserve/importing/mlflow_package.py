"""A meshserve model package made from one MLflow registry version.

The package holds the version's files as MLflow stored them (`mlflow-model/`) and a model.yaml:
the registry's version as the package version, an entrypoint for the flavour (the scikit-learn
model file for the sklearn flavour, the MLflow model folder for a pyfunc), the signature, the
pinned requirements (so the model runs in the environment it was trained in) and where it came
from (`provenance.mlflow`, with the digest of the files). The package is built beside the target
folder and renamed into place, so an interrupted import leaves the earlier one as it was.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from meshserve.core.errors import ManifestError
from meshserve.core.model_package import MANIFEST_NAME, load_package, package_digest
from meshserve.importing.mlflow_registry import RegistryVersion, download
from meshserve.importing.mlflow_requirements import MLFLOW_ITSELF, model_requirements, python_version
from meshserve.importing.mlflow_signature import signature_from_mlmodel
from meshserve.importing.model_uri import ImportFailure

MODEL_FOLDER = "mlflow-model"
PYFUNC_LOADER = "mlflow.pyfunc.model"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class Imported:
    directory: Path
    name: str
    version: str
    flavour: str
    artifacts_sha256: str
    requirements: int


def flavour_of(mlmodel: dict[str, Any], uri: str) -> str:
    """'sklearn' or 'pyfunc'; any other flavour is refused, naming it."""
    flavors = mlmodel.get("flavors") or {}
    if "sklearn" in flavors:
        return "sklearn"
    pyfunc = flavors.get("python_function") or {}
    if pyfunc.get("loader_module") == PYFUNC_LOADER:
        return "pyfunc"
    others = ", ".join(sorted(set(flavors) - {"python_function"})) or "none"
    raise ImportFailure(f"{uri} is a model of flavour {others}, and meshserve imports the sklearn and pyfunc flavours: "
                        "log it with mlflow.sklearn.log_model, or wrap it in an mlflow.pyfunc.PythonModel and log "
                        "that with mlflow.pyfunc.log_model")


def _entrypoint(flavour: str, mlmodel: dict[str, Any], uri: str) -> tuple[str, dict[str, Any]]:
    """The entrypoint and the `python:` section for the flavour."""
    if flavour == "pyfunc":
        return MODEL_FOLDER, {}
    sklearn = mlmodel["flavors"]["sklearn"]
    model_file = sklearn.get("pickled_model")
    fmt = sklearn.get("serialization_format", "cloudpickle")
    if not model_file or fmt not in ("skops", "pickle", "cloudpickle"):
        raise ImportFailure(f"{uri}: its sklearn flavour is saved as '{fmt}' ({model_file or 'no file'}), which "
                            "meshserve does not read; log it with serialization_format='skops' or 'cloudpickle'")
    suffix = Path(model_file).suffix
    if (fmt == "skops") != (suffix == ".skops") or suffix not in (".skops", ".pkl", ".pickle"):
        raise ImportFailure(f"{uri}: its sklearn model file '{model_file}' does not end as its format "
                            f"'{fmt}' needs (.skops, .pkl); log it again with mlflow.sklearn.log_model")
    section = {}
    if fmt == "skops" and sklearn.get("skops_trusted_types"):
        section["trusted_types"] = list(sklearn["skops_trusted_types"])
    return f"{MODEL_FOLDER}/{model_file}", section


def _signature_from_file(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ImportFailure(f"{path}: cannot read the signature file ({exc}); write a YAML file with "
                            "`inputs:` and `outputs:` as in docs/model-package.md") from None
    if isinstance(loaded, dict) and "signature" in loaded:
        loaded = loaded["signature"]
    if not isinstance(loaded, dict) or not loaded.get("inputs") or not loaded.get("outputs"):
        raise ImportFailure(f"{path}: a signature file holds `inputs:` and `outputs:` (each a list of name, "
                            "datatype, shape), as in docs/model-package.md")
    return loaded


def _code_revision(version: RegistryVersion) -> str | None:
    """The git commit MLflow recorded for the training run, when it recorded one."""
    if not version.run_id:
        return None
    import mlflow

    try:
        run = mlflow.MlflowClient(tracking_uri=version.tracking_uri).get_run(version.run_id)
    except Exception:  # the run may be deleted or unreadable; the package is made all the same
        return None
    return run.data.tags.get("mlflow.source.git.commit")


def _replaceable(target: Path) -> None:
    if not target.exists():
        return
    if not target.is_dir():
        raise ImportFailure(f"{target} is a file; pass -o with a folder for the package")
    if not any(target.iterdir()):
        return
    manifest = target / MANIFEST_NAME
    try:
        earlier = yaml.safe_load(manifest.read_text()) if manifest.is_file() else None
    except yaml.YAMLError:
        earlier = None
    if not (isinstance(earlier, dict) and ((earlier.get("provenance") or {}).get("mlflow"))):
        raise ImportFailure(f"{target} holds files that are not an earlier import; pass -o with a new folder "
                            "(an earlier import there is replaced)")


def build_package(version: RegistryVersion, target: Path, name: str | None = None,
                  signature_file: Path | None = None) -> Imported:
    uri = f"models:/{version.name}/{version.version}"
    name = name or version.name
    if not _NAME.match(name):
        raise ImportFailure(f"the registered model name '{name}' is not a meshserve model name (letters, digits, "
                            ". _ - only); pass --name NAME to serve it under another")
    target = target.resolve()
    _replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.importing-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        downloaded = download(version, staging / ".download")
        (staging / MODEL_FOLDER).parent.mkdir(parents=True, exist_ok=True)
        os.rename(downloaded, staging / MODEL_FOLDER)
        shutil.rmtree(staging / ".download", ignore_errors=True)
        model_dir = staging / MODEL_FOLDER
        mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text()) or {}
        flavour = flavour_of(mlmodel, uri)
        entrypoint, section = _entrypoint(flavour, mlmodel, uri)
        signature = _signature_from_file(signature_file) if signature_file else signature_from_mlmodel(mlmodel, uri)
        requirements = model_requirements(model_dir, drop=MLFLOW_ITSELF if flavour == "sklearn" else frozenset())
        artifacts = package_digest(model_dir)
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        provenance: dict[str, Any] = {"mlflow": {
            "tracking_uri": version.tracking_uri, "registered_model": version.name, "version": version.version,
            "alias": version.alias, "run_id": version.run_id, "source": version.source,
            "flavour": flavour, "artifacts_sha256": artifacts, "imported_at": now}}
        revision = _code_revision(version)
        if revision:
            provenance["code_revision"] = revision
        manifest: dict[str, Any] = {
            "name": name, "version": version.version, "runtime": "python", "entrypoint": entrypoint,
            "description": f"MLflow registered model {version.name} version {version.version} ({flavour} flavour)",
            "signature": signature, "provenance": provenance,
            "environment": {"python": {"version": python_version(model_dir, mlmodel), "requirements": requirements,
                                       "source": f"mlflow {uri} requirements.txt"}},
        }
        if section:
            manifest["python"] = section
        (staging / MANIFEST_NAME).write_text(yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True))
        try:
            load_package(staging)  # never leave a package meshserve itself would refuse
        except ManifestError as exc:  # said of the folder the user named, not the one it was built in
            raise ManifestError(str(target / MANIFEST_NAME), exc.field, exc.problem, exc.fix) from None
        if target.exists():
            old = target.with_name(f".{target.name}.replaced-{os.getpid()}")
            os.rename(target, old)
            os.rename(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Imported(target, name, version.version, flavour, artifacts, len(requirements))
