"""`meshserve up DIR`: the whole mesh on one machine as native processes.

One adapter process per model package found in DIR, the router in front of them, all
supervised: a crashed process is restarted, and SIGTERM or Ctrl-C stops everything.

With Envoy (the default), DIR/meshserve.yaml says which versions run, with how many
replicas, weights and shadows: clients connect to Envoy's front listener, which forwards to
the router, and the router's calls go through Envoy's mesh listener, which picks the variant.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

from meshserve.core.mesh_protocol import ADAPTER_READY, ENVOY_READY, RECORDER_READY, ROUTER_READY
from meshserve.core.mesh_secret import new_mesh_secret
from meshserve.core.model_package import BrokenPackage, ModelPackage, discover_packages
from meshserve.core.ports import free_port
from meshserve.core.replica_slots import replica_slots
from meshserve.core.settings import Settings, get_settings, variable_for
from meshserve.environments.builder import EnvironmentBuildError, package_interpreter
from meshserve.envoy.render import EnvoyLayout, UpstreamAddresses, render
from meshserve.launcher.autoscaler import Autoscaler, VariantReplicas, scaling_policies
from meshserve.launcher.live_loading import LiveLoading, write_deployment
from meshserve.launcher.package_watcher import PackageWatcher
from meshserve.launcher.supervisor import ChildFailed, ChildSpec, Supervisor, python_argv
from meshserve.observability.mesh_metrics import MeshMetrics
from meshserve.spec.deployment_spec import (
    SPEC_NAME, DeploymentSpec, RecordsSpec, deployment_for, load_spec, spec_path_for)
from meshserve.spec.security_spec import internal_tls_environment, refuse_without_front
from meshserve.sidecars.drift.api import plan_for, write_plan
from meshserve.sidecars.records.api import default_store_url, redacted
from meshserve.sidecars.records.observer import check_pii_key
from meshserve.spec.model_table import ModelTable, UnavailableModel, newest
from meshserve.spec.run_folder import RecordsFolder, RunFolder
from meshserve.spec.table_control import EnvoyControl, TableControl


def resolve_listen(listen: str, what: str = "--listen") -> str:
    """HOST:PORT clients will use; port 0 picks a free one, a busy port is refused up front."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ListenError(f"{what} {listen!r} is not HOST:PORT; write for example 127.0.0.1:8001")
    if port == "0":
        return f"{host}:{free_port(host)}"
    with socket.socket() as sock:
        try:
            sock.bind((host, int(port)))
        except OSError as exc:
            raise ListenError(f"cannot listen on {listen} ({exc.strerror}): another mesh or server may be "
                              f"using it; stop it, or set {what} HOST:PORT (port 0 picks a free one)") from exc
    return listen


class ListenError(ValueError):
    pass


def log(message: str) -> None:
    try:
        print(message, flush=True)
    except (BrokenPipeError, ValueError):
        # Whoever read our output went away (a closed terminal or pipe): keep serving, and
        # keep stopping cleanly on SIGTERM, without a place to say so.
        sys.stdout = open(os.devnull, "w")


class Mesh:
    def __init__(self, models_dir: str | Path, listen: str, run_dir: str | Path | None = None, envoy: bool = True,
                 strict: bool = False):
        self.models_dir = Path(models_dir)
        self.envoy = envoy
        self.strict = strict  # one broken package stops the whole start
        self.broken: list[BrokenPackage] = []
        self.listen = resolve_listen(listen)
        rest = get_settings().rest_listen
        self.rest_listen = resolve_listen(rest, variable_for("rest_listen")) if rest and not envoy else ""  # --no-envoy: REST's own port
        self._own_run_dir = run_dir is None
        self.run_dir = Path(run_dir or tempfile.mkdtemp(prefix="meshserve-run-"))
        self.run = RunFolder(self.run_dir)
        self.metrics = MeshMetrics(self.run_dir) if get_settings().metrics else None
        self.supervisor = Supervisor(log=log, on_restart=self.metrics.restarted if self.metrics else None)
        self.packages: list[ModelPackage] = []
        self.child_env: dict[str, str] = {}  # settings every adapter and the router get
        self.records_store: str | None = None
        self.rest_url = ""  # where the Open Inference Protocol over HTTP/REST is served
        self._autoscaler: asyncio.Task | None = None
        self._watcher: asyncio.Task | None = None
        # What the models table says, kept so it can be rewritten while the mesh runs (live_loading.py).
        self.table_path = self.run.models_table
        self.served: dict[tuple[str, str], ModelPackage] = {}  # (model, version) -> the package its adapters run
        self.direct_addresses: dict[tuple[str, str], str] = {}  # without Envoy: each version's adapter
        self.unavailable: list[UnavailableModel] = []  # broken packages, as the package watcher last saw them
        self.not_deployed: list[UnavailableModel] = []
        self.table_control = TableControl()  # what write_table adds the rest of the control section to
        self.default_versions: dict[str, str] = {}
        self.generation = 0
        self.deployment: DeploymentSpec | None = None
        self.layout: EnvoyLayout | None = None
        self.upstreams: UpstreamAddresses | None = None
        self.variant_replicas: VariantReplicas | None = None
        self.rest_of: dict[str, str] = {}  # a replica's REST address by its gRPC address (behind Envoy)
        # Chosen before the recorder starts: it reads the front's log of refusals and asks Envoy to reopen it.
        self.envoy_admin = f"127.0.0.1:{free_port()}" if envoy else ""
        self.front_log = ""
        # Triton replicas served straight by their Triton: its gRPC address and the side tap's, by replica.
        self.triton_ports: dict[str, tuple[int, int]] = {}
        self.direct_of: dict[str, str] = {}
        self.tap_of: dict[str, str] = {}

    async def start(self) -> None:
        broken: list[BrokenPackage] | None = None if self.strict else []
        interval = get_settings().watch_interval_s
        # Looked at before the packages are read: a file changed meanwhile is seen as a change.
        watcher = PackageWatcher(self.models_dir, LiveLoading(self, log), log, interval) if interval > 0 else None
        self.packages = discover_packages(self.models_dir, broken)  # under --strict a bad manifest stops us here
        for package in broken or []:
            log(f"meshserve: not serving {package.model or package.directory.name} ({package.directory}): "
                f"{package.error}")
        self.broken = broken or []
        self.unavailable = self._unavailable()
        # A bad meshserve.yaml stops us here, before any process.
        skipped = [b.model for b in self.broken if b.model]
        deployment = deployment_for(self.models_dir, self.packages, skipped) if self.envoy else None
        spec = deployment or load_spec(spec_path_for(self.models_dir))
        if deployment is None:
            refuse_without_front(spec.security, str(spec_path_for(self.models_dir)))
        records = spec.records
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log(f"meshserve: starting {len(self.packages)} model(s) from {self.models_dir}")
        if records.enabled:
            await self._start_recorder(records, spec)
        if deployment is not None:
            await self._start_behind_envoy(deployment)
        else:
            addresses = [f"127.0.0.1:{free_port()}" for _ in self.packages]
            await asyncio.gather(*(self._start_adapter(f"{p.name}:{p.version}", p, address)
                                   for p, address in zip(self.packages, addresses)))
            self.served = {(p.name, p.version): p for p in self.packages}
            self.direct_addresses = {(p.name, p.version): a for p, a in zip(self.packages, addresses)}
            self.write_table()
            # Without Envoy nothing tells gRPC from REST on one port: REST gets its own.
            rest = self.rest_listen or f"127.0.0.1:{free_port()}"
            await self._start_router(self.table_path, self.listen, rest)
            self.rest_url = f"http://{rest}"
        if watcher is not None:
            watcher.prime(self.broken)
            self._watcher = asyncio.get_running_loop().create_task(watcher.run())
        self._announce()

    async def _start_recorder(self, records: RecordsSpec, spec: DeploymentSpec) -> None:
        """The spools' folder for every process, and the recorder that empties them into the store."""
        settings = get_settings()
        records_dir = Path(settings.records_dir or RecordsFolder.default_for(self.models_dir).root).resolve()
        folder = RecordsFolder(records_dir)
        check_pii_key(self.packages, settings.model_copy(update={"records_dir": str(records_dir)}))
        store = records.store or settings.records_store or default_store_url(records_dir)
        self.child_env = Settings.child_environment(records_dir=records_dir, records_on_failure=records.on_failure)
        argv = ["-m", "meshserve.sidecars.records.recorder", "--spool", str(folder.spool), "--store", store]
        if self.envoy:  # what Envoy's front answers itself is recorded too
            self.front_log = str(folder.front_refusals)
            argv += ["--front-log", self.front_log, "--envoy-admin", self.envoy_admin]
        if records.retention.days is not None:
            argv += ["--retention-days", str(records.retention.days)]
        if records.retention.max_bytes is not None:
            argv += ["--retention-bytes", str(records.retention.max_bytes)]
        drift = plan_for(self.packages, {m: d.drift.model_dump() for m, d in spec.models.items()})
        if drift:  # the recorder also checks drift of every model whose package has a baseline
            write_plan(drift, self.run.drift_plan)
            argv += ["--drift", str(self.run.drift_plan)]
        env: dict[str, str] = {}
        if self.metrics:  # store failures, and the drift scores (sidecars/drift/drift_metrics.py)
            env = Settings.child_environment(metrics_listen=self.metrics.targets.new_endpoint("meshserve-recorder"))
        if self.metrics:
            self.metrics.add_recorder()
        await self.supervisor.start(ChildSpec("recorder", python_argv(*argv), ready_marker=RECORDER_READY, env=env),
                                    timeout=60)
        self.records_store = store
        log(f"meshserve: recording every inference to {redacted(store)} (spools in {folder.spool}; "
            f"on failure: {records.on_failure})")

    async def _start_adapter(self, label: str, package: ModelPackage, address: str) -> None:
        python = await self._adapter_python(package)
        argv = [python, "-m", "meshserve.adapters.server", str(package.directory), "--listen", address]
        env = {**self.child_env, **self._log_env(),
               **(self.metrics.adapter_env(label, package.name, package.version) if self.metrics else {})}
        if self.envoy:  # Envoy's front sends REST inferences straight to each replica too
            self.rest_of.setdefault(address, f"127.0.0.1:{free_port()}")
            argv += ["--rest-listen", self.rest_of[address]]
        endpoint = self._straight_to_triton(package, label, address, argv, env)
        await self.supervisor.start(ChildSpec(label, argv, ready_marker=ADAPTER_READY, env=env),
                                    timeout=get_settings().adapter_start_timeout_s)
        if endpoint is not None:
            self._take_triton_endpoint(address, endpoint)

    def _straight_to_triton(self, package: ModelPackage, label: str, address: str, argv: list[str],
                            env: dict[str, str]) -> Path | None:
        """For a Triton package behind Envoy (unless model.yaml says `triton.direct: false`): fixed
        ports for its Triton and its side tap, and the file where the adapter says where Triton
        listens. Returns that file, or None when the adapter stays on the path."""
        if not self.envoy or package.options is None or not package.options.served_straight():
            return None
        ports = self.triton_ports.setdefault(address, (free_port(), free_port()))
        endpoint = self.run.triton_endpoint(label)
        endpoint.unlink(missing_ok=True)
        env.update(Settings.child_environment(triton_grpc_port=ports[0], triton_endpoint_file=endpoint))
        argv += ["--tap-listen", f"127.0.0.1:{ports[1]}"]
        return endpoint

    def _take_triton_endpoint(self, address: str, endpoint: Path) -> None:
        try:
            found = json.loads(endpoint.read_text())
        except (OSError, ValueError) as exc:
            log(f"meshserve: {address}: no Triton endpoint in {endpoint} ({exc}); its requests go through the adapter")
            return
        if found.get("direct") and found.get("triton_grpc") and found.get("tap"):
            self.direct_of[address], self.tap_of[address] = found["triton_grpc"], found["tap"]
        else:
            log(f"meshserve: {found.get('model')}:{found.get('version')} is served through its adapter, not "
                f"straight from Triton: {found.get('reason') or 'no side tap'}")

    async def _adapter_python(self, package: ModelPackage) -> str:
        """The interpreter a package's adapter runs with: its own environment's when model.yaml records
        the model's requirements (built on first use, then cached), else meshserve's."""
        try:
            return await package_interpreter(package, log)
        except EnvironmentBuildError as exc:
            raise ChildFailed(str(exc)) from None

    async def _start_router(self, table_path: Path, listen: str, rest_listen: str) -> None:
        await self.supervisor.start(
            ChildSpec("router", python_argv("-m", "meshserve.router.server", "--table", str(table_path),
                                            "--listen", listen, "--rest-listen", rest_listen),
                      ready_marker=ROUTER_READY,
                      env={**self.child_env, **(self.metrics.router_env() if self.metrics else {})}),
            timeout=30)

    async def _start_behind_envoy(self, deployment: DeploymentSpec) -> None:
        """Replicas per variant, Envoy with the rendered config, then the router behind Envoy."""
        settings = get_settings()
        self.child_env.update(internal_tls_environment(deployment.security))  # mutual TLS behind the front
        # Or the mesh's own secret, made anew for each mesh and never written beside the spec; "" also
        # keeps a value from the caller's environment away from the children.
        mesh_secret = new_mesh_secret() if deployment.security.needs_mesh_secret else ""
        self.child_env.update(Settings.child_environment(mesh_secret=mesh_secret))
        by_key = {(p.name, p.version): p for p in self.packages}
        replicas = {(model, version): [f"127.0.0.1:{free_port()}" for _ in range(count)]
                    for model, spec in sorted(deployment.models.items())
                    for version, count in spec.replicas.items()}
        for name, version in sorted(set(by_key) - set(replicas)):
            log(f"meshserve: not starting {name}:{version} (not deployed in {SPEC_NAME})")
        most = {(m, v): r.max for m, d in deployment.models.items() for v, r in d.replica_ranges.items()}
        labels = {key: [f"{key[0]}:{key[1]}" + (f"#{i + 1}" if most[key] > 1 else "") for i in range(len(addresses))]
                  for key, addresses in replicas.items()}
        await asyncio.gather(*(
            self._start_adapter(label, by_key[key], address)
            for key, addresses in replicas.items() for label, address in zip(labels[key], addresses)))
        router_address, router_rest = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        layout = EnvoyLayout(self.run.envoy_dir, front=self.listen, mesh=f"127.0.0.1:{free_port()}",
                             admin=self.envoy_admin, refusal_log=self.front_log, mesh_secret=mesh_secret)
        self.run.rollout_state.unlink(missing_ok=True)  # a new mesh starts from the spec's split
        self.run.progressive_state.unlink(missing_ok=True)  # and its rollout plans from their start
        slots = {key: replica_slots(by_key[key].manifest) for key in replicas}
        upstreams = UpstreamAddresses(router=[router_address], variants=replicas, slots=slots,
                                      router_rest=[router_rest], rest_of=self.rest_of, direct_of=self.direct_of,
                                      tap_of=self.tap_of)
        render(layout, deployment, upstreams).write(layout)
        write_deployment(self.run.deployment, deployment)
        if self.metrics:
            self.metrics.add_envoy(layout.admin)
        await self.supervisor.start(
            ChildSpec("envoy", python_argv("-m", "meshserve.envoy.process", str(layout.run_dir),
                                           "--admin", layout.admin, "--concurrency", str(settings.envoy_concurrency)),
                      ready_marker=ENVOY_READY,
                      env=Settings.child_environment(mesh_secret=mesh_secret)),  # what its routes send on
            timeout=30)
        self.not_deployed = [UnavailableModel(name, version, f"not deployed in {SPEC_NAME}; add it to the model's variants")
                             for name, version in sorted(set(by_key) - set(replicas))]
        self.deployment, self.layout, self.upstreams = deployment, layout, upstreams
        self.served = {key: by_key[key] for key in replicas}
        self.table_control = TableControl(
            deployment=self.run.deployment, rollout_state=self.run.rollout_state,
            deployment_log=self.run.deployment_log, progressive_state=self.run.progressive_state,
            envoy=EnvoyControl(run_dir=layout.run_dir, front=layout.front, mesh=layout.mesh, admin=layout.admin,
                               rest=True, direct_rest=bool(upstreams.rest_of), tapped=sorted(upstreams.tapped())))
        self.write_table()
        await self._start_router(self.table_path, router_address, router_rest)
        self.rest_url = f"{'https' if deployment.security.tls else 'http'}://{layout.front}"
        self.packages = [by_key[key] for key in replicas]
        self.variant_replicas = VariantReplicas(
            deployment, layout, upstreams, labels, log=log, stop=self._retire_adapter,
            start=lambda key, label, address: self._add_adapter(label, self.served[key], address))
        policies = scaling_policies(deployment)
        if policies:
            self._start_autoscaler(policies, self.variant_replicas)
        log(f"meshserve: Envoy front {layout.front} -> adapters for every inference (gRPC and REST); "
            f"-> router {router_address} (REST {router_rest}) for metadata, streams, control and models starting "
            f"from zero, through Envoy mesh {layout.mesh}; admin http://{layout.admin}, config in {layout.run_dir}")

    def write_table(self) -> int:
        """(Re)write the router's models table from what runs now; returns its generation."""
        control = self.table_control.model_copy(update={
            "records_store": self.records_store, "models_dir": str(self.models_dir.resolve()),
            "watch_interval_s": get_settings().watch_interval_s})
        if self.layout is not None:
            # Behind Envoy the router sends every inference to the mesh listener; a variant scaled to
            # zero has no replica of its own yet (and the replicas, asked for statistics, are the first ones).
            entries = [(p, self.upstreams.variants[key] or [self.layout.mesh]) for key, p in self.served.items()]
            control = control.model_copy(update={"cold_variants": sorted(
                (m, v) for m, d in self.deployment.models.items() for v in d.cold_versions)})
        else:
            entries = [(p, self.direct_addresses[key]) for key, p in self.served.items()]
        # What a request naming no version is checked against stays put while versions are added.
        for package, _ in entries:
            self.default_versions.setdefault(package.name, newest([v for m, v in self.served if m == package.name]))
        not_deployed = [u for u in self.not_deployed if (u.name, u.version) not in self.served]
        ModelTable.write(self.table_path, entries, mesh_address=self.layout.mesh if self.layout else None,
                         control=control, unavailable=self.unavailable + not_deployed, generation=self.generation,
                         default_versions=self.default_versions)
        return self.generation

    def _log_env(self) -> dict[str, str]:
        """Servers an adapter starts itself (Triton) log into the run folder, which goes with the mesh."""
        if get_settings().triton_log_dir:
            return {}
        return Settings.child_environment(triton_log_dir=self.run.logs_dir)

    def _unavailable(self) -> list[UnavailableModel]:
        """The broken packages, for the router's repository index."""
        return [UnavailableModel(b.model or b.directory.name, "", str(b.error)) for b in self.broken]

    def _start_autoscaler(self, policies, replicas: VariantReplicas) -> None:
        for (model, version), policy in sorted(policies.items()):
            log(f"meshserve: autoscaling {model}:{version} from {policy.minimum} to {policy.maximum} replicas "
                f"at {policy.target_in_flight:g} requests in flight per replica")
        self._autoscaler = asyncio.get_running_loop().create_task(Autoscaler(policies, replicas, log).run())

    async def _add_adapter(self, label: str, package: ModelPackage, address: str) -> None:
        """One more replica, started exactly as those `up` started first."""
        await self._start_adapter(label, package, address)
        if self.metrics:
            self.metrics.replicas_changed()

    async def _retire_adapter(self, label: str) -> None:
        await self.supervisor.retire(label)
        if self.metrics:
            self.metrics.replicas_changed(removed=[label])

    def _announce(self) -> None:
        models = ", ".join(f"{p.name} ({p.version}, {p.manifest.runtime})" for p in self.packages)
        log(f"meshserve: serving {models}")
        if self.metrics:
            for line in self.metrics.start():
                log(f"meshserve: {line}")
        if self.broken and self._watcher is not None:
            log(f"meshserve: NOT serving {len(self.broken)} broken package(s) (see above); fix their files and the "
                f"mesh serves each once it loads (it looks every {get_settings().watch_interval_s:g} s; "
                "`--strict` refuses to start with any)")
        elif self.broken:
            log(f"meshserve: NOT serving {len(self.broken)} broken package(s) (see above); fix them and restart "
                f"the mesh, or leave {variable_for('watch_interval_s')} above 0 to have them loaded once fixed "
                "(`--strict` refuses to start with any)")
        shared = " (same address as gRPC)" if self.envoy else ""
        log(f"meshserve: Open Inference Protocol over HTTP/REST at {self.rest_url}/v2{shared}, "
            f"for example: curl {self.rest_url}/v2/health/ready")
        log(f"meshserve: console at {self.rest_url}/console/ (docs/observability.md, \"Console\")")
        # Last: scripts and tests wait for this line, so everything above is printed when they see it.
        log(f"meshserve: clients connect to {self.listen} (Open Inference Protocol over gRPC; "
            "control API meshserve.v1.Control); Ctrl-C stops the mesh")

    async def stop(self) -> None:
        for task in (self._autoscaler, self._watcher):
            if task is not None:
                task.cancel()
        started = bool(self.supervisor.children)
        await self.supervisor.stop()
        if self._own_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        if started:
            log("meshserve: stopped")


async def run_mesh(models_dir: str, listen: str, run_dir: str | None, envoy: bool = True, strict: bool = False) -> int:
    try:
        mesh = Mesh(models_dir, listen, run_dir, envoy=envoy, strict=strict)
    except ListenError as exc:
        print(f"meshserve: {exc}", file=sys.stderr, flush=True)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    starting = loop.create_task(mesh.start())
    stopper = loop.create_task(stop.wait())
    await asyncio.wait({starting, stopper}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if starting.done() and starting.exception() is not None:
        exc = starting.exception()
        if not isinstance(exc, ChildFailed):
            await mesh.stop()
            raise exc
        print(f"meshserve: {exc}", file=sys.stderr, flush=True)
        code = 1
    elif not starting.done():
        starting.cancel()
    else:
        await stopper
    stopper.cancel()
    await mesh.stop()
    return code
