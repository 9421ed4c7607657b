"""Every tunable of meshserve in one typed place. Each field can be set by an environment
variable with the prefix MESHSERVE_ (for example MESHSERVE_MAX_MESSAGE_BYTES=134217728).

This is also the only module that spells those variables: a process hands settings to the
processes it starts through `Settings.child_environment`, and a message naming a variable asks
`variable_for`, so a renamed setting cannot leave a stale name behind.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "MESHSERVE_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)

    listen: str = Field("127.0.0.1:8001", description="Address clients connect to (`meshserve up`).")
    internal_ports: str = Field(
        "", pattern=r"^(\d{1,5}-\d{1,5})?$", description="FIRST-LAST: the ports `meshserve up` takes for the "
        "processes behind the front (adapters, their REST listeners, Triton, the router, Envoy's mesh listener and "
        "admin, metrics), e.g. 20000-20999 where a firewall allows only a fixed range; empty: free ports below "
        "the kernel's ephemeral range.")
    rest_listen: str = Field(
        "", description="host:port of the router's HTTP/REST listener under `meshserve up --no-envoy` (empty: a "
        "free port, printed at start). Behind Envoy, REST shares the front address with gRPC.",
    )
    max_message_bytes: int = Field(
        64 * 1024 * 1024,
        description="Largest request or response a server accepts; larger ones get RESOURCE_EXHAUSTED.",
    )
    default_timeout_s: float = Field(
        60.0, description="Deadline for a forwarded inference when the client set none."
    )
    adapter_start_timeout_s: float = Field(
        120.0, description="How long `meshserve up` waits for an adapter to load its model."
    )
    restart_backoff_s: float = Field(
        0.5, description="First delay before restarting a crashed process; doubles up to 10 s while it keeps crashing."
    )
    shutdown_grace_s: float = Field(
        5.0, description="How long in-flight requests may finish after SIGTERM before processes are killed."
    )
    envoy_concurrency: int = Field(
        2, ge=1, description="Envoy worker threads (`meshserve up`): one per core; on 2 cores two beat one "
        "because each request crosses Envoy twice (see docs/operator-guide.md and bench/bench_envoy.py).",
    )
    python_threads: int = Field(
        4, description="Threads that run Python models' predict, so a slow one does not stall the server."
    )
    python_on_loop_below_ms: float = Field(
        5.0, ge=0, description="A scikit-learn estimator's calls of a size it has answered 32 times in a row in "
        "under this many milliseconds run on the adapter's event loop, saving the hand-off to a predict thread "
        "(about a sixth of a small model's CPU per request); a slower call sends that size back to the threads. "
        "Not for a model with micro-batching on (a batch pays the hand-off once). 0: always on threads. "
        "model.yaml's python.on_loop_below_ms overrides it.",
    )
    triton_log_dir: str | None = Field(
        None, description="Folder for the logs of the tritonserver processes meshserve starts. `meshserve up` "
        "sets RUN_DIR/logs; a lone adapter logs in the temp folder and removes its log when it stops cleanly."
    )
    triton_backends_dir: str | None = Field(
        None, description="Folder prepared with Triton's Python backend for this Python (default: inside the venv)."
    )
    triton_grpc_port: int = Field(
        0, ge=0, le=65535, description="Loopback port of the gRPC listener of the tritonserver a Triton adapter "
        "starts; 0 picks a free one. Fixed by the launcher so Envoy can send clients straight to Triton; a "
        "restarted Triton keeps it either way (docs/triton-guide.md, \"One hop\").",
    )
    triton_http_port: int = Field(
        0, ge=0, le=65535, description="Loopback port of that tritonserver's HTTP/REST listener; 0 leaves it off.",
    )
    triton_endpoint_file: str | None = Field(
        None, description="File a Triton adapter writes (JSON, atomically) once its model is live: where its Triton "
        "listens, the name and version Triton answers the model under, and the side tap's address. The launcher "
        "reads it to program Envoy; removed when the adapter stops.",
    )
    triton_tap_max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Most bytes of one request or response body the side tap keeps "
        "(`meshserve adapter --tap-listen`); a larger exchange is recorded without its tensors and counted in "
        "meshserve_tap_incomplete_records_total.",
    )
    debug: bool = Field(
        False, description="Print the traceback behind a one-line error (`meshserve --debug` sets it for every "
        "process it starts, such as an adapter whose model cannot be loaded).",
    )
    triton_env: str | None = Field(
        None, description="Virtual environment holding the nvidia-pytriton wheel (the tritonserver binary and its "
        "Python backend stub), apart from meshserve's own because it pins numpy<2 (default: .venv-triton beside "
        "meshserve's environment, as scripts/setup.d/50-triton.sh builds it; else meshserve's own).",
    )
    envs_dir: str | None = Field(
        None, description="Folder of the Python environments built for model packages that record their "
        "requirements, one per environment digest, reused offline once built (default: "
        "$XDG_CACHE_HOME/meshserve/envs, i.e. ~/.cache/meshserve/envs; docs/model-package.md).",
    )
    metrics: bool = Field(
        True, description="Whether `meshserve up` gives every process a Prometheus endpoint and writes "
        "RUN_DIR/prometheus-targets.json (file_sd) naming them (see docs/observability.md).",
    )
    metrics_listen: str = Field(
        "", description="host:port of this process's Prometheus endpoint (/metrics); empty: none. "
        "`meshserve up` sets it for each process it starts.",
    )
    feature_statistics: bool = Field(
        True, description="Per-feature input statistics at the adapters (needs a metrics endpoint), "
        "aggregated off the request path.",
    )
    trace_stages: bool = Field(
        False, description="When tracing, a child span for every adapter stage (check, decode, queue, encode) "
        "besides the runtime's own `predict <runtime>` span; false keeps their times as attributes of the "
        "adapter's span (meshserve.decode_ms, ...), since each span costs more CPU than most stages take.",
    )
    feature_statistics_interval_s: float = Field(
        1.0, gt=0, description="How often the adapter folds queued inputs into the feature statistics "
        "(a scrape folds them too, so Prometheus never reads stale counts).",
    )

    # Shedding and autoscaling (docs/operator-guide.md, "Spikes")
    in_flight_per_slot: int = Field(
        4, ge=1, le=1000, description="Requests a variant may hold per working slot of a replica (a predict "
        "thread, an R or Java worker, a batch row) before Envoy sheds the excess; meshserve.yaml "
        "`limits.max_in_flight` wins over it.")
    retry_after_s: float = Field(
        1.0, gt=0, description="The pause a shed request's `retry-after` trailer asks its client to wait.")
    autoscale_interval_s: float = Field(
        1.0, gt=0, description="How often `meshserve up` reads the in-flight requests of scalable variants "
        "from Envoy and decides whether to add or remove a replica.")

    # Loading packages into a running mesh (docs/operator-guide.md, "Adding and fixing packages while it runs")
    watch_interval_s: float = Field(
        2.0, ge=0, description="How often `meshserve up` looks at its models folder for new, changed or fixed "
        "packages and serves them without a restart (a package is loaded once its files stayed the same for one "
        "interval, so a copy in progress is not read half-written); 0 turns the watcher off.")
    deploy_wait_s: float = Field(
        120.0, gt=0, description="How long the control API's Deploy waits for a version whose package is in the "
        "models folder but not loaded yet (just copied there) before it gives up.")

    # Prediction records (docs/records.md)
    records_dir: str | None = Field(
        None, description="Folder of the spools and the default SQLite store; `meshserve up` sets it "
        "(MODELS_DIR/.meshserve/records). Unset for a lone adapter: it records nothing.")
    records_store: str | None = Field(
        None, description="Where the recorder keeps records: sqlite:///PATH or postgresql://... "
        "(default: records.db in records_dir; meshserve.yaml `records.store` wins over this).")
    records_pii_key: SecretStr | None = Field(
        None, description="Key of the HMAC-SHA256 that replaces inputs marked `pii: true` in records. "
        "Required when a served model has one; never written to disk or logged by meshserve.")
    records_on_failure: str = Field(
        "serve", pattern="^(serve|refuse)$", description="When a record cannot be written: serve the answer "
        "anyway and count it (serve), or answer UNAVAILABLE (refuse, compliance mode). `meshserve up` sets it "
        "from meshserve.yaml.")
    records_max_tensor_bytes: int = Field(
        1024 * 1024, ge=0, description="Largest tensor kept in a record; a larger one is recorded as a marker "
        "with its datatype, shape and size.")
    records_spool_max_bytes: int = Field(
        1024 * 1024 * 1024, ge=1024 * 1024, description="Most bytes one process may keep spooled while the recorder "
        "lags or is down; beyond it records are dropped and counted (or requests refused in compliance mode).")
    records_spool_file_bytes: int = Field(
        16 * 1024 * 1024, ge=4096, description="Size at which a process starts a new spool file.")
    records_fsync: bool = Field(
        False, description="fsync each record before answering: survives a machine crash, not only a killed "
        "process (which the page cache already survives), at the cost of a disk flush per request.")

    # Isolation of slow requests (docs/security.md)
    python_abandoned_threads: int = Field(
        4, ge=1, description="Threads a Python model may leave running after their callers' deadlines passed "
        "(a thread cannot be stopped); while all are taken the adapter reports NOT_SERVING.")
    health_poll_s: float = Field(
        0.5, gt=0, description="How often an adapter asks its runtime whether it can take work, for its "
        "gRPC health status (what Envoy's health checks read).")

    # The command line as a client of a secured mesh (`meshserve rollout`; docs/security.md)
    client_ca: str | None = Field(
        None, description="PEM file trusted for the front's TLS certificate; when set, commands connect with TLS.")
    client_token: SecretStr | None = Field(
        None, description="Bearer token (a JWT) commands send to a mesh with authentication; kept out of argv.")
    client_api_key: SecretStr | None = Field(
        None, description="API key (x-api-key) commands send to a mesh with authentication.")

    # Mutual TLS behind the front (security.internal_tls in meshserve.yaml; `meshserve up` sets these)
    internal_tls_certificate: str | None = Field(
        None, description="PEM certificate the router and adapters present on their own connections.")
    internal_tls_private_key: str | None = Field(None, description="Its PEM private key.")
    internal_tls_ca: str | None = Field(
        None, description="PEM CA whose certificates the router and adapters accept from peers (and require).")
    mesh_secret: SecretStr | None = Field(
        None, description="The per-mesh secret `meshserve up` makes when meshserve.yaml has a `security:` section "
        "without internal_tls: the router and adapters refuse every call that does not carry it (Envoy adds it), "
        "so a local process cannot reach them behind the front's back. Never set by hand.")
    # Drift monitor (docs/drift.md); per-model thresholds and windows are in meshserve.yaml `drift:`.
    drift_check_every_s: float = Field(
        30.0, gt=0, description="How often the recorder compares each model's recent records with its baseline.")
    drift_max_window_rows: int = Field(
        20_000, ge=100, description="Most rows a time window reads (the newest): bounds the cost of a check "
        "(about 2 s of CPU for 20,000 single-row requests of 30 features).")
    background_nice: int = Field(
        10, ge=0, le=19, description="How much lower the CPU priority of the mesh's background work is than "
        "serving's: the recorder (moving records, drift checks) and the router's judging passes (comparisons, "
        "quality). On a busy machine they then take the CPU serving leaves; 0 gives them the same priority.")
    judging_max_records: int = Field(
        20_000, ge=100, description="Most records (the newest) each pass of the router's judging metrics reads per "
        "model: bounds their cost under heavy traffic or large batch requests. A model with one version and no "
        "shadow has nothing to compare and reads only the records with outcomes.")
    # Bundles and the validation gate (docs/model-package.md, docs/operator-guide.md).
    bundle_cache: str | None = Field(
        None, description="Folder where bundles are unpacked once, by digest (default ~/.cache/meshserve/bundles).")
    gate_load_timeout_s: float = Field(
        120.0, gt=0, description="How long the validation gate and `meshserve check --load` wait for a fresh "
        "adapter to load a model and score its golden examples.")
    java_api_jar: str | None = Field(
        None, description="The jar of meshserve's Java API that Java adapters load models with (default: the one "
        "scripts/setup.d/40-java.sh builds from adapters/java/src).")

    @classmethod
    def child_environment(cls, **values: object) -> dict[str, str]:
        """The environment variables that give a child process these settings (by field name, e.g.
        `records_dir="/x"`), added to what it inherits. A value of None or "" is passed as "", which
        also keeps a value from the parent's own environment away from the child."""
        return {variable_for(name): _as_text(value) for name, value in values.items()}


def variable_for(field: str) -> str:
    """The environment variable that sets FIELD of Settings (`records_dir` -> MESHSERVE_RECORDS_DIR)."""
    if field not in Settings.model_fields:
        raise KeyError(f"Settings has no field '{field}'; the fields are listed in meshserve/core/settings.py")
    return ENV_PREFIX + field.upper()


def _as_text(value: object) -> str:
    """A setting's value as pydantic-settings reads it back from the environment."""
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


class TracingSettings(BaseSettings):
    """The standard OpenTelemetry variables meshserve reads itself, to decide whether to trace and
    to render Envoy's tracer (the SDK reads the same variables, and the rest of them, on its own)."""

    model_config = SettingsConfigDict(env_prefix="OTEL_")

    traces_exporter: str = Field("none", description="otlp, console or none (default: none, no tracing).")
    exporter_otlp_endpoint: str = Field("http://localhost:4317", description="OTLP/gRPC receiver for all signals.")
    exporter_otlp_traces_endpoint: str = Field("", description="OTLP/gRPC receiver for traces; wins over the above.")
    traces_sampler: str = Field("parentbased_always_on", description="The SDK's sampler name.")
    traces_sampler_arg: str = Field("", description="The ratio for the *traceidratio samplers, 0 to 1.")
    service_name: str = Field("meshserve", description="Service name; each process appends its part (-router, ...).")

    @property
    def exporters(self) -> list[str]:
        return [name.strip() for name in self.traces_exporter.split(",") if name.strip() not in ("", "none")]

    @property
    def traces_endpoint(self) -> str:
        return self.exporter_otlp_traces_endpoint or self.exporter_otlp_endpoint

    @property
    def sampling_ratio(self) -> float:
        """The fraction of new traces sampled, as Envoy needs it for requests without a traceparent."""
        if self.traces_sampler.endswith("always_off"):
            return 0.0
        if "traceidratio" in self.traces_sampler:
            try:
                return min(1.0, max(0.0, float(self.traces_sampler_arg or "1")))
            except ValueError:
                return 1.0
        return 1.0


def get_tracing_settings() -> TracingSettings:
    return TracingSettings()
