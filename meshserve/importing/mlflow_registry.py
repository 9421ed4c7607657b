"""The MLflow Model Registry, through MLflow's own client (`mlflow-skinny`, the `mlflow` extra).

Resolving an alias gives a version number, and everything after uses only that number: what is
imported is that version, even if the alias moves while the artifacts download. Every failure a
user can meet (server unreachable, no such model, version or alias) is one ImportFailure line.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from meshserve.importing.model_uri import ImportFailure, ModelUri

HOW_TO_SET = "pass --tracking-uri URI or set MLFLOW_TRACKING_URI (e.g. http://127.0.0.1:5000)"


@dataclass(frozen=True)
class RegistryVersion:
    name: str
    version: str
    alias: str | None  # the alias it was asked for by, if any
    run_id: str | None
    source: str  # where the registry says the version's files are (models:/m-... in MLflow 3, or a run's path)
    tracking_uri: str


def tracking_uri_from(given: str | None) -> str:
    uri = given or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise ImportFailure(f"no MLflow tracking server named: {HOW_TO_SET}")
    return uri.rstrip("/")


def _client(uri: str):
    # MLflow retries an unreachable server for minutes by default; reachability is checked first instead.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    try:
        import mlflow
    except ImportError:
        raise ImportFailure("meshserve import needs MLflow's client: pip install 'meshserve[mlflow]' "
                            "(or pip install mlflow-skinny) in meshserve's environment") from None
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def check_reachable(uri: str, timeout: float = 10.0) -> None:
    """An HTTP tracking server must answer /health; other URIs (file, sqlite, databricks) are left to MLflow."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # it answered: some servers (behind a proxy) have no /health, the registry calls will tell
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ImportFailure(f"cannot reach the MLflow tracking server at {uri} ({reason}): start it "
                            f"(mlflow server ...) or point at the right one: {HOW_TO_SET}") from None


def _is_missing(exc: Exception) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


def resolve(uri: ModelUri, tracking_uri: str) -> RegistryVersion:
    """The registry version URI names, with an alias pinned to the version it points at now."""
    client = _client(tracking_uri)  # first: without MLflow's client installed, say how to install it
    check_reachable(tracking_uri)
    from mlflow.exceptions import MlflowException

    try:
        registered = client.get_registered_model(uri.name)
    except MlflowException as exc:
        if not _is_missing(exc):
            raise ImportFailure(f"the MLflow registry at {tracking_uri} refused {uri}: {exc.message}") from None
        names = sorted(m.name for m in client.search_registered_models(max_results=50))
        raise ImportFailure(f"no registered model '{uri.name}' at {tracking_uri}; it has: "
                            f"{', '.join(names) if names else '(no registered models)'}. Check the name, or "
                            "register the model first (mlflow.register_model or registered_model_name=)") from None
    aliases = dict(registered.aliases or {})
    versions = sorted((v.version for v in client.search_model_versions(f"name='{uri.name}'")), key=int)
    version = uri.version
    if uri.alias is not None:
        version = aliases.get(uri.alias)
        if version is None:
            have = ", ".join(f"@{a} -> {v}" for a, v in sorted(aliases.items())) or "(no aliases)"
            raise ImportFailure(f"{uri.name} has no alias '{uri.alias}'; its aliases: {have}; its versions: "
                                f"{', '.join(versions) or '(none)'}. Import models:/{uri.name}/VERSION, or set the "
                                f"alias: MlflowClient().set_registered_model_alias('{uri.name}', '{uri.alias}', VERSION)")
    try:
        found = client.get_model_version(uri.name, str(version))
    except MlflowException as exc:
        if not _is_missing(exc):
            raise ImportFailure(f"the MLflow registry at {tracking_uri} refused {uri}: {exc.message}") from None
        have = ", ".join(f"@{a} -> {v}" for a, v in sorted(aliases.items())) or "(no aliases)"
        raise ImportFailure(f"{uri.name} has no version {version}; its versions: {', '.join(versions) or '(none)'}; "
                            f"its aliases: {have}. Import one of those") from None
    return RegistryVersion(name=uri.name, version=str(found.version), alias=uri.alias, run_id=found.run_id or None,
                           source=found.source, tracking_uri=tracking_uri)


def download(version: RegistryVersion, into: Path) -> Path:
    """The version's files (MLmodel and what it names), fetched by version number, never by alias."""
    import mlflow.artifacts

    into.mkdir(parents=True, exist_ok=True)
    local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{version.name}/{version.version}",
                                                dst_path=str(into), tracking_uri=version.tracking_uri,
                                                registry_uri=version.tracking_uri)
    local = Path(local)
    if not (local / "MLmodel").is_file():
        raise ImportFailure(f"models:/{version.name}/{version.version} has no MLmodel file in its artifacts "
                            f"({version.source}); log it with mlflow.sklearn.log_model or mlflow.pyfunc.log_model")
    return local
