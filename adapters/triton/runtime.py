"""The Triton runtime: a model served by NVIDIA Triton, behind meshserve's contract.

Two ways to point at the model, set in the `triton:` section of model.yaml:
(a) `model_repository`: a Triton model repository folder inside the package (`<name>/config.pbtxt`
    and version folders). The runtime starts meshserve's own tritonserver for it
    (adapters/triton/server.py), loads the model with explicit model control, and stops Triton
    when the adapter stops.
(b) `server`: the gRPC address of a Triton the team already runs (on GPUs, say). The runtime only
    talks to it; `load: true` also asks it to load and unload the model (explicit control mode).

For (a) Triton also answers under the mesh's own model name and version (staging.py), so Envoy can
send clients straight to Triton's gRPC port while a side tap (tap.py) keeps the adapter's records,
metrics and spans; the adapter's own path calls Triton under that name too, so both paths get the
same answer. Where Triton listens goes to MESHSERVE_TRITON_ENDPOINT_FILE for the launcher.

Either way, before going live the model must be ready and Triton's model metadata must match the
manifest's signature (a mismatch refuses to load, naming the tensor). Requests go through
tritonclient's asyncio gRPC client; Triton's errors become the matching gRPC status with Triton's
message, and the caller's deadline travels to Triton. tritonclient is imported inside methods, so
importing this module (to check a manifest, say) starts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, ClassVar

import grpc
from pydantic import Field, model_validator

from meshserve.adapters.runtime import ReplicaResources, Runtime, RuntimeOptions, Tensors, request_deadline
from meshserve.adapters.triton.environment import capture_environment, check_environment
from meshserve.adapters.triton.staging import StagedRepository, TritonName, plan
from meshserve.core.errors import DeadlineExceeded, InvalidInput, ManifestError, MeshError, ModelFailed, ModelUnavailable
from meshserve.core.model_package import ModelPackage, Signature, TensorSpec
from meshserve.core.settings import get_settings
from meshserve.observability.call_context import trace_headers

log = logging.getLogger("meshserve.triton")

# Requests a Triton server takes from one adapter at once when nothing says otherwise: Triton
# queues and batches them itself (its dynamic batcher wants many in flight to fill a batch).
TRITON_SLOTS = 32


class TritonOptions(RuntimeOptions):
    """The `triton:` section of model.yaml."""

    # The adapter and the tritonserver it supervises, on one NVIDIA GPU; a large model takes a while to load.
    resources: ClassVar[ReplicaResources] = ReplicaResources(cpu="1", memory="4Gi", memory_limit="8Gi", gpus=1,
                                                             startup_s=300)
    config_from_server: ClassVar[bool] = True  # Triton's own config.pbtxt, fetched by the adapter

    model_name: str = Field(min_length=1, description="The model's name in Triton (its folder in the repository).")
    model_version: str = Field(
        default="", description="Version to serve; empty lets Triton pick by the model's version policy.")
    model_repository: str | None = Field(
        default=None, description="(a) Folder in the package holding `<model_name>/config.pbtxt` and versions.")
    server: str | None = Field(
        default=None, description="(b) host:port of an external Triton's gRPC endpoint.")
    load: bool = Field(
        default=False, description="(b) Ask the external Triton to load the model at start and unload it at stop.")
    load_timeout_s: float = Field(default=120.0, gt=0, description="Longest wait for Triton to load the model.")
    startup_timeout_s: float = Field(default=60.0, gt=0, description="(a) Longest wait for tritonserver to start.")
    direct: bool = Field(
        default=True, description="(a) Behind Envoy, send inferences straight to Triton and record them from a side "
        "tap (no Python on the answer's path; a record the tap misses is counted, not written). false keeps the "
        "adapter on the path, so every record is on disk before its answer leaves.")

    def served_straight(self) -> bool:
        return self.direct

    @model_validator(mode="after")
    def _one_source(self) -> "TritonOptions":
        if (self.model_repository is None) == (self.server is None):
            raise ValueError("set exactly one of `model_repository` (a folder in the package, served by "
                             "meshserve's own Triton) or `server` (host:port of a Triton you run)")
        if self.load and self.server is None:
            raise ValueError("`load` applies to an external `server`; meshserve always loads models it serves itself")
        if self.model_version and not self.model_version.isdigit():
            raise ValueError("`model_version` is a Triton version folder number such as \"1\"")
        return self

    def working_slots(self) -> int:
        return TRITON_SLOTS

    def capture_environment(self, package: ModelPackage) -> dict[str, Any]:
        """The tritonserver wheel and the model's file digests, or the external server (environment.py)."""
        return capture_environment(package)

    @classmethod
    def describe_environment(cls, recorded: dict[str, Any]) -> str:
        if recorded.get("source") == "server":
            return (f"Triton {recorded.get('version')} at {recorded.get('server')}: model {recorded.get('model_name')} "
                    f"version {recorded.get('model_version')}")
        wheel = recorded.get("wheel") or {}
        return (f"Triton from {wheel.get('name')} {wheel.get('version')}: model {recorded.get('model_name')} "
                f"with {len(recorded.get('files') or {})} file digests")

    def check_package(self, package: ModelPackage) -> None:
        """For (a): the repository entry exists and its config.pbtxt parses, before any process starts."""
        if self.model_repository is None:
            return
        manifest = str(package.manifest_path)
        repository = package.path(self.model_repository)
        model_dir = repository / self.model_name
        config = model_dir / "config.pbtxt"
        if not repository.is_dir():
            raise ManifestError(manifest, "triton.model_repository", f"{repository} is not a folder",
                                "point it at the folder that holds the model's Triton folder")
        if not config.is_file():
            raise ManifestError(manifest, "triton.model_name", f"{config} does not exist",
                                f"put the model's config.pbtxt in {model_dir}")
        parsed = parse_model_config(config)
        if parsed.name and parsed.name != self.model_name:
            raise ManifestError(str(config), "name", f"config.pbtxt names the model '{parsed.name}' but its folder "
                                f"and model.yaml's triton.model_name say '{self.model_name}'", "make the names agree")
        versions = [p.name for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
        if not versions:
            raise ManifestError(manifest, "triton.model_name", f"{model_dir} has no version folder (such as 1/)",
                                "put the model files in a numbered version folder")
        if self.model_version and self.model_version not in versions:
            raise ManifestError(manifest, "triton.model_version", f"{model_dir / self.model_version} does not exist "
                                f"(versions present: {', '.join(sorted(versions, key=int))})", "use a present version")


def parse_model_config(path: Path):
    """Parse a config.pbtxt with Triton's own schema; raise ManifestError with line and column."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    try:
        return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise ManifestError(str(path), "(file)", f"not a valid Triton model configuration: {exc}",
                            "fix config.pbtxt (see Triton's model configuration documentation)") from exc


class SignatureMismatch(ManifestError):
    """Triton's model metadata disagrees with the manifest's signature."""


_INPUT_NAME = re.compile(r"input '([^']+)'")


def mesh_error(exc: Exception, model: str) -> MeshError:
    """Map a tritonclient exception to the meshserve error (and so gRPC status) a caller should see."""
    status = str(exc.status() or "") if hasattr(exc, "status") else ""
    message = exc.message() if hasattr(exc, "message") else str(exc)
    message = f"Triton ({model}): {message}"
    code_name = status.rpartition(".")[2] or "INTERNAL"
    if code_name == "INVALID_ARGUMENT":
        found = _INPUT_NAME.search(message)
        return InvalidInput(found.group(1) if found else None, message)
    if code_name in ("UNAVAILABLE", "NOT_FOUND"):
        # NOT_FOUND here means Triton no longer has the model loaded: the mesh model exists, its backend does not.
        return ModelUnavailable(message)
    if code_name in ("INTERNAL", "UNKNOWN"):
        return ModelFailed(message)
    code = getattr(grpc.StatusCode, code_name, grpc.StatusCode.INTERNAL)
    return MeshError.from_status(code, message)


def _dims(shape: list[Any]) -> list[int]:
    return [int(d) for d in shape]


def signature_problems(signature: Signature, metadata: dict[str, Any],
                       optional_inputs: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """(field, problem) for each way Triton's metadata and the manifest disagree; empty when they agree.

    A manifest dimension may be fixed where Triton's is variable (the manifest is stricter), but not
    the other way round: the mesh would accept requests Triton refuses.
    """
    problems = []

    def compare(kind: str, spec: TensorSpec, triton: dict[str, Any] | None) -> None:
        where = f"signature.{kind}.{spec.name}"
        if triton is None:
            problems.append((where, f"Triton's model has no {kind[:-1]} '{spec.name}'"))
            return
        if triton["datatype"] != spec.datatype:
            problems.append((where, f"{kind[:-1]} '{spec.name}' is {spec.datatype} in model.yaml but "
                                    f"{triton['datatype']} in Triton"))
        theirs = _dims(triton["shape"])
        ours = spec.shape
        if len(theirs) != len(ours) or any(t != -1 and t != o for t, o in zip(theirs, ours)):
            problems.append((where, f"{kind[:-1]} '{spec.name}' has shape {ours} in model.yaml but "
                                    f"{theirs} in Triton"))

    triton_inputs = {t["name"]: t for t in metadata.get("inputs", [])}
    triton_outputs = {t["name"]: t for t in metadata.get("outputs", [])}
    for spec in signature.inputs:
        compare("inputs", spec, triton_inputs.get(spec.name))
    for spec in signature.outputs:
        compare("outputs", spec, triton_outputs.get(spec.name))
    declared = {s.name for s in signature.inputs}
    for name, tensor in triton_inputs.items():
        if name not in declared and name not in optional_inputs:
            problems.append(("signature.inputs", f"Triton's model requires input '{name}' that model.yaml "
                                                 f"does not declare ({tensor['datatype']} {_dims(tensor['shape'])})"))
    return problems


class TritonRuntime(Runtime):
    """Serve a model through Triton (meshserve's own tritonserver, or one you run)."""

    def __init__(self) -> None:
        self.server = None  # TritonServer for (a); None for an external Triton
        self._external_client = None
        self._options: TritonOptions | None = None
        self._outputs: list[str] = []
        self._input_datatypes: dict[str, str] = {}
        self._requested_outputs: list = []
        self._infer_input = self._triton_error = None  # tritonclient classes, imported at load
        self.naming: TritonName | None = None  # the name and version requests go to Triton under
        self._stage: StagedRepository | None = None
        self._endpoint_file: Path | None = None

    @property
    def client(self):
        return self.server.client if self.server is not None else self._external_client

    async def load(self, package: ModelPackage) -> None:
        """Start or reach Triton, load the model, and check it against the manifest before going live.

        Every refusal is a ManifestError naming the file or field to fix, carrying Triton's own words,
        so the adapter exits with that message instead of serving a model that cannot answer.
        """
        from meshserve.adapters.triton.server import TritonLoadError, TritonNotInstalled, TritonServer, TritonStartError

        self.package = package
        options: TritonOptions = package.options  # validated by load_package
        self._options = options
        self.naming = plan(package)
        if not self.naming.mesh_named:
            log.info("%s:%s stays behind its adapter (Triton knows it as %s): %s", package.name, package.version,
                     options.model_name, self.naming.reason)
        self._outputs = [o.name for o in package.manifest.signature.outputs]
        try:
            if options.model_repository is not None:
                # Digests first: a strict refusal starts no Triton.
                for warning in check_environment(package):
                    log.warning("%s", warning)
                repository = package.path(options.model_repository)
                self.server = TritonServer(repository, label=f"triton-{package.name}",
                                           startup_timeout_s=options.startup_timeout_s)
                if self.naming.mesh_named and self.naming.name != options.model_name:
                    self._stage = StagedRepository(f"triton-{package.name}")
                    self.server.extra_repositories.append(self._stage.path)
                try:
                    await self.server.start()
                    await self.server.load_model(options.model_name, timeout_s=options.load_timeout_s)
                    await self._load_mesh_name(options)
                except (TritonStartError, TritonLoadError, TritonNotInstalled) as exc:
                    raise ManifestError(str(repository / options.model_name), "triton", str(exc),
                                        "correct the model files or config.pbtxt named in Triton's message") from None
            else:
                await self._connect_external(options)
                for warning in check_environment(package, await self._external_version()):
                    log.warning("%s", warning)
            await self._check_ready_and_signature(package, options)
        except BaseException:
            await self.close()
            raise
        import tritonclient.grpc.aio as triton_grpc
        from tritonclient.utils import InferenceServerException

        self._infer_input, self._triton_error = triton_grpc.InferInput, InferenceServerException
        self._input_datatypes = {spec.name: spec.datatype for spec in package.manifest.signature.inputs}
        self._requested_outputs = [triton_grpc.InferRequestedOutput(name) for name in self._outputs]
        where = self.server.address if self.server else options.server
        log.info("Triton model %s (version %s) live on %s as %s version %s", options.model_name,
                 options.model_version or "latest", where, self.naming.name, self.naming.version or "latest")
        self.write_endpoint()

    async def _load_mesh_name(self, options: TritonOptions) -> None:
        """Load the mesh-named alias beside the model; without it the model stays behind the adapter."""
        if self._stage is None:
            return
        from meshserve.adapters.triton.server import TritonLoadError

        response = await self.server.client.get_model_config(options.model_name, options.model_version,
                                                             client_timeout=10.0)
        self._stage.write(self.naming, response.config, options.model_version)
        try:
            await self.server.load_model(self.naming.name, timeout_s=options.load_timeout_s)
        except TritonLoadError as exc:
            log.warning("Triton could not serve %s under the mesh's name, so it stays behind its adapter: %s",
                        options.model_name, exc)
            self.naming = TritonName(options.model_name, options.model_version, mesh_named=False, reason=str(exc))

    def endpoint(self, tap: str | None = None) -> dict[str, Any]:
        """Where Envoy reaches this model without the adapter, for MESHSERVE_TRITON_ENDPOINT_FILE."""
        server = self.server
        return {
            "model": self.package.name, "version": self.package.version,
            "triton_grpc": server.address if server else self._options.server,
            "triton_http": server.http_address if server else None,
            "triton_metrics": server.metrics_url if server else None,
            "triton_model": self.naming.name, "triton_version": self.naming.version,
            # True: a request naming the mesh's model and version may go straight to triton_grpc.
            "direct": self.naming.mesh_named, "reason": self.naming.reason,
            "tap": tap,
        }

    def write_endpoint(self, tap: str | None = None) -> None:
        """Write the endpoint file (atomically: the launcher may read it at any moment), if one is asked for."""
        target = get_settings().triton_endpoint_file
        if not target:
            return
        self._endpoint_file = Path(target)
        self._endpoint_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self._endpoint_file.with_name(f"{self._endpoint_file.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps(self.endpoint(tap), indent=1) + "\n")
        partial.replace(self._endpoint_file)

    async def _connect_external(self, options: TritonOptions) -> None:
        from tritonclient.utils import InferenceServerException

        from meshserve.adapters.triton.server import triton_client

        manifest = str(self.package.manifest_path)
        self._external_client = triton_client(options.server)
        try:
            live = await self._external_client.is_server_live(client_timeout=5.0)
        except InferenceServerException as exc:
            live, reason = False, exc.message()
        else:
            reason = "it answers but is not live"
        if not live:
            raise ManifestError(manifest, "triton.server", f"no live Triton at {options.server} ({reason})",
                                "start that Triton or correct the address")
        if options.load:
            try:
                await self._external_client.load_model(options.model_name, client_timeout=options.load_timeout_s)
            except InferenceServerException as exc:
                raise ManifestError(manifest, "triton.model_name", f"the Triton at {options.server} could not load "
                                    f"'{options.model_name}': {exc.message().strip()}",
                                    "fix the model in that Triton's repository (or set load: false if it is "
                                    "loaded by other means)") from None

    async def _external_version(self) -> str | None:
        """The external Triton's version string (server metadata), or None if it will not say."""
        try:
            metadata = await self._external_client.get_server_metadata(as_json=True, client_timeout=5.0)
        except Exception:
            return None
        return str(metadata.get("version") or "") or None

    async def _check_ready_and_signature(self, package: ModelPackage, options: TritonOptions) -> None:
        from tritonclient.utils import InferenceServerException

        where = f"Triton at {self.server.address if self.server else options.server}"
        try:
            ready = await self.client.is_model_ready(options.model_name, options.model_version, client_timeout=10.0)
            metadata = await self.client.get_model_metadata(
                options.model_name, options.model_version, as_json=True, client_timeout=10.0) if ready else None
            # Metadata does not say which inputs are optional; the model's configuration does.
            config = (await self.client.get_model_config(
                options.model_name, options.model_version, as_json=True, client_timeout=10.0))["config"] \
                if ready else {}
        except InferenceServerException as exc:
            ready, metadata, config = False, exc.message(), {}
        if not ready:
            raise ManifestError(str(package.manifest_path), "triton.model_name",
                                f"{where} does not have model '{options.model_name}' version "
                                f"'{options.model_version or 'latest'}' ready"
                                + (f" ({metadata})" if isinstance(metadata, str) else ""),
                                "load the model in that Triton or correct triton.model_name / model_version")
        optional = frozenset(i["name"] for i in config.get("input", []) if i.get("optional"))
        problems = signature_problems(package.manifest.signature, metadata, optional)
        if problems:
            field, _ = problems[0]
            raise SignatureMismatch(
                str(package.manifest_path), field,
                "model.yaml's signature does not match Triton's model metadata: " + "; ".join(p for _, p in problems),
                f"make the signature in model.yaml agree with {options.model_name}'s config.pbtxt")

    async def predict(self, inputs: Tensors) -> Tensors:
        options = self._options
        client = self.client
        if client is None or (self.server is not None and not self.server.available):
            reason = self.server.last_exit if self.server is not None and self.server.last_exit else "not running"
            raise ModelUnavailable(f"Triton for {options.model_name} is restarting ({reason}); retry shortly")
        triton_inputs = []
        for name, array in inputs.items():
            tensor = self._infer_input(name, list(array.shape), self._input_datatypes[name])
            tensor.set_data_from_numpy(array)
            triton_inputs.append(tensor)
        deadline = request_deadline.get()
        timeout = None if deadline is None else deadline - time.monotonic()
        if timeout is not None and timeout <= 0:
            raise DeadlineExceeded(f"the caller's deadline passed before Triton ({options.model_name}) was asked")
        try:
            result = await client.infer(self.naming.name, triton_inputs, model_version=self.naming.version,
                                        outputs=self._requested_outputs, client_timeout=timeout,
                                        headers=trace_headers())
        except self._triton_error as exc:
            raise mesh_error(exc, options.model_name) from None
        except asyncio.CancelledError:
            # Our request was not cancelled: the channel to Triton was closed under it (Triton went away).
            if asyncio.current_task().cancelling():
                raise
            raise ModelUnavailable(f"Triton for {options.model_name} went away during the request; retry") from None
        return {name: result.as_numpy(name) for name in self._outputs}

    async def ready(self) -> bool:
        if self._options is None or self.client is None:
            return False
        if self.server is not None and not self.server.available:
            return False
        try:
            return await self.client.is_model_ready(self.naming.name, self.naming.version, client_timeout=2.0)
        except Exception:  # an unreachable Triton is simply not ready
            return False

    async def model_config(self):
        """Triton's own configuration of the model, under the mesh's model name."""
        response = await self.client.get_model_config(self._options.model_name, self._options.model_version,
                                                      client_timeout=5.0)
        response.config.name = self.package.name
        return response.config

    async def statistics(self) -> dict[str, Any]:
        """Triton's inference statistics for the model (batch sizes, queue and compute times)."""
        return await self.client.get_inference_statistics(
            self._options.model_name, self._options.model_version, as_json=True)

    async def close(self) -> None:
        options = self._options
        if self._external_client is not None:
            if options is not None and options.load:
                with contextlib.suppress(Exception):
                    await self._external_client.unload_model(options.model_name, client_timeout=30.0)
            with contextlib.suppress(Exception):
                await self._external_client.close()
            self._external_client = None
        if self.server is not None:
            await self.server.stop()
        if self._stage is not None:
            self._stage.remove()
        if self._endpoint_file is not None:
            self._endpoint_file.unlink(missing_ok=True)
