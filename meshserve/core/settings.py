"""Every tunable of meshserve in one typed place. Each field can be set by an environment
variable with the prefix MESHSERVE_ (for example MESHSERVE_MAX_MESSAGE_BYTES=134217728)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MESHSERVE_")

    listen: str = Field("127.0.0.1:8001", description="Address clients connect to (`meshserve up`).")
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
    triton_log_dir: str | None = Field(
        None, description="Folder for the logs of the tritonserver processes meshserve starts (default: the temp folder)."
    )
    triton_backends_dir: str | None = Field(
        None, description="Folder prepared with Triton's Python backend for this Python (default: inside the venv)."
    )

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

    # Drift monitor (docs/drift.md); per-model thresholds and windows are in meshserve.yaml `drift:`.
    drift_check_every_s: float = Field(
        30.0, gt=0, description="How often the recorder compares each model's recent records with its baseline.")
    drift_max_window_rows: int = Field(
        20_000, ge=100, description="Most rows a time window reads (the newest): bounds the cost of a check "
        "(about 2 s of CPU for 20,000 single-row requests of 30 features).")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
