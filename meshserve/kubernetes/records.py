"""Prediction records on a cluster: a spool per pod, a recorder beside it, one PostgreSQL store.

Every server writes each record to a spool on local disk before it answers (the promise that
SIGKILL loses nothing a client received). On a cluster "local disk" is the pod's: the spool is
an emptyDir shared by the server and a recorder sidecar, which moves records into the store.
All pods record into the same database, so it must be PostgreSQL; SQLite is one machine's.
The store URL comes from a Secret (key `store-url`) rather than from the manifests, and the
key that hashes pii inputs from the same Secret (key `pii-key`, optional).
"""

from __future__ import annotations

from typing import Any

from meshserve.core.settings import variable_for
from meshserve.kubernetes.naming import RECORDS_SECRET
from meshserve.kubernetes.options import ClusterOptions
from meshserve.kubernetes.resources import RECORDER
from meshserve.spec.deployment_spec import RecordsSpec

RECORDS_DIR = "/var/lib/meshserve/records"
SPOOL_VOLUME = "records-spool"
STORE_KEY, PII_KEY = "store-url", "pii-key"


def is_postgres(url: str | None) -> bool:
    return bool(url) and url.startswith(("postgres://", "postgresql://"))


def secret_name(options: ClusterOptions) -> str:
    return options.records_secret or RECORDS_SECRET


def records_secret(records: RecordsSpec, options: ClusterOptions) -> dict[str, Any] | None:
    """The Secret holding the spec's PostgreSQL URL, unless the operator names their own."""
    if not records.enabled or options.records_secret or not is_postgres(records.store):
        return None
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": RECORDS_SECRET}, "stringData": {STORE_KEY: records.store}}


def server_env(records: RecordsSpec, options: ClusterOptions) -> list[dict[str, Any]]:
    """What the router and adapters need to spool records (as `meshserve up` sets it)."""
    if not records.enabled:
        return []
    return [
        {"name": variable_for("records_dir"), "value": RECORDS_DIR},
        {"name": variable_for("records_on_failure"), "value": records.on_failure},
        {"name": variable_for("records_pii_key"), "valueFrom": {"secretKeyRef": {
            "name": secret_name(options), "key": PII_KEY, "optional": True}}},
    ]


def spool_volumes(records: RecordsSpec) -> list[dict[str, Any]]:
    return [{"name": SPOOL_VOLUME, "emptyDir": {}}] if records.enabled else []


def spool_mounts(records: RecordsSpec) -> list[dict[str, Any]]:
    return [{"name": SPOOL_VOLUME, "mountPath": RECORDS_DIR}] if records.enabled else []


def recorder_sidecar(records: RecordsSpec, options: ClusterOptions, security: dict[str, Any]) -> list[dict[str, Any]]:
    """The recorder as a native sidecar (an init container that keeps running).

    Kubernetes starts it before the server and stops it after, so the last records spooled
    while the server drained still reach the store.
    """
    if not records.enabled:
        return []
    args = ["python", "-m", "meshserve.sidecars.records.recorder",
            "--spool", f"{RECORDS_DIR}/spool", "--store", f"$({variable_for('records_store')})",
            # Every pod's spool files have the same names (same labels, same small pids): the
            # pod's own name keeps their offsets apart in the shared store.
            "--source", "$(POD_NAMESPACE)/$(POD_NAME)"]
    if records.retention.days is not None:
        args += ["--retention-days", str(records.retention.days)]
    if records.retention.max_bytes is not None:
        args += ["--retention-bytes", str(records.retention.max_bytes)]
    return [{
        "name": "recorder",
        "image": options.image,
        "restartPolicy": "Always",
        "args": args,
        "env": [{"name": variable_for("records_store"),
                 "valueFrom": {"secretKeyRef": {"name": secret_name(options), "key": STORE_KEY}}},
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "volumeMounts": spool_mounts(records),
        "resources": RECORDER,
        "securityContext": security,
    }]


def router_store_url(records: RecordsSpec) -> str | None:
    """The store the router reads for comparisons and record look-ups: only a URL the spec names."""
    return records.store if records.enabled and is_postgres(records.store) else None


def notes(records: RecordsSpec, options: ClusterOptions) -> list[str]:
    """What the operator must provide before applying."""
    if not records.enabled:
        return []
    if options.records_secret:
        return [(f"records: Secret {options.records_secret} must hold `{STORE_KEY}` (a PostgreSQL URL) "
                 f"and, if a model has pii inputs, `{PII_KEY}`")]
    if is_postgres(records.store):
        return [(f"records: every pod records into the spec's PostgreSQL store (Secret {RECORDS_SECRET}); "
                 f"add `{PII_KEY}` to it if a model has pii inputs")]
    return [(f"records: the spec's store ({records.store or 'SQLite by default'}) serves one machine only; "
             f"create the Secret before applying: kubectl -n {options.namespace} create secret generic "
             f"{RECORDS_SECRET} --from-literal={STORE_KEY}=postgresql://USER:PASSWORD@HOST/DB")]
