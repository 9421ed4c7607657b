"""The deployment spec: `meshserve.yaml` beside the model packages says how each model is served.

Per model: the variants (package versions) that take primary traffic and their weights, the
shadow variants with the fraction of requests mirrored to each, replicas per variant (a count
or a range the launcher scales within), the limits beyond which requests are shed, timeouts,
an optional routing-key header for sticky assignment, and an optional fallback variant for
when a variant has no healthy replica. A model without an entry is served by its
only version (weight 100, one replica).

    models:
      iris:
        variants:
          - {version: "1", weight: 90, replicas: 2}
          - {version: "2", weight: 10, replicas: {min: 1, max: 4}}   # scaled to its load
        shadows:
          - {version: "3", fraction: 0.25}
        routing_key_header: x-user-id
        fallback: "1"
        timeouts: {request_s: 5}
        limits: {max_in_flight: 32}          # beyond it: shed with RESOURCE_EXHAUSTED
        autoscaling: {target_in_flight: 4, cooldown_s: 60}

A malformed spec raises `ManifestError` naming the file, the field and the fix, before any
process starts. `Rollout` is the live part (weights and shadows) that `meshserve rollout`
changes without restarting anything; the rest of the spec stays fixed while the mesh runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from meshserve.core.errors import ManifestError
from meshserve.core.mesh_protocol import INTERNAL_HEADER_PREFIX
from meshserve.core.strict_model import StrictModel, manifest_error, repeated, version_as_text
from meshserve.spec.model_table import newest
from meshserve.spec.security_spec import SecuritySpec, check_principal_models, resolve_security, security_fix

SPEC_NAME = "meshserve.yaml"

# Headers the mesh itself sets; a routing key must not pretend to be one of them.
RESERVED_HEADER_PREFIX = INTERNAL_HEADER_PREFIX
_HEADER_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
_LABEL = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
# Envoy adds weights as 32-bit integers; this bound keeps any sum of them far below that.
MAX_WEIGHT = 1_000_000


MAX_REPLICAS = 64


class Replicas(StrictModel):
    """How many adapter processes serve a variant: a fixed count (`replicas: 2`, min = max) or a
    range (`replicas: {min: 1, max: 4}`) within which `meshserve up` scales it to its load."""

    min: int = Field(ge=0, le=MAX_REPLICAS, description="Replicas kept running however idle the variant is; "
                     "0: none while idle, and the first request waits for a replica to start (a cold start).")
    max: int = Field(ge=1, le=MAX_REPLICAS, description="Most replicas the variant grows to under load.")

    @model_validator(mode="before")
    @classmethod
    def _from_count(cls, raw: Any) -> Any:
        if isinstance(raw, bool) or isinstance(raw, float) and not raw.is_integer():
            raise ValueError(f"replicas {raw!r} is neither a whole number nor {{min, max}}")
        if isinstance(raw, (int, float)):
            if not 1 <= raw <= MAX_REPLICAS:
                raise ValueError(f"replicas {int(raw)} must be greater than or equal to 1 and at most {MAX_REPLICAS}")
            return {"min": int(raw), "max": int(raw)}
        return raw

    @model_validator(mode="after")
    def _ordered(self) -> "Replicas":
        if self.min > self.max:
            raise ValueError(f"replicas min {self.min} is above max {self.max}")
        return self

    @property
    def scales(self) -> bool:
        return self.min < self.max


def _one_replica() -> Replicas:
    return Replicas(min=1, max=1)


class Variant(StrictModel):
    """A package version that takes primary traffic."""

    version: str = Field(pattern=_LABEL, description="The model package version (model.yaml `version`).")
    weight: int = Field(default=0, ge=0, le=MAX_WEIGHT, description="Relative share of primary traffic.")
    replicas: Replicas = Field(default_factory=_one_replica, description="Adapter processes serving this variant: "
                               "a count, or {min, max} for autoscaling.")

    _text_version = field_validator("version", mode="before")(version_as_text)


class Shadow(StrictModel):
    """A package version that receives copies of requests; its answers never reach clients."""

    version: str = Field(pattern=_LABEL, description="The model package version (model.yaml `version`).")
    fraction: float = Field(ge=0.0, le=1.0, description="Share of requests mirrored to it, 0..1.")
    replicas: Replicas = Field(default_factory=_one_replica, description="Adapter processes serving this shadow: "
                               "a count, or {min, max} for autoscaling.")

    _text_version = field_validator("version", mode="before")(version_as_text)


class Timeouts(StrictModel):
    request_s: float = Field(default=30.0, gt=0, le=3600, description="Longest one inference may take end to end.")
    connect_s: float = Field(default=1.0, gt=0, le=60, description="Longest a connection to an adapter may take.")


class Limits(StrictModel):
    """How much work one model's variants take before the mesh sheds the excess (docs/operator-guide.md).

    Unset limits are sized from the deployment: each variant's most replicas times the working
    slots of one replica (its predict threads or workers, times its batch size) times
    MESHSERVE_IN_FLIGHT_PER_SLOT.
    """

    max_in_flight: int | None = Field(default=None, ge=1, le=100_000, description=(
        "Most requests in flight at each primary or canary variant (all its replicas together); "
        "beyond it requests are refused at once with RESOURCE_EXHAUSTED."))
    max_pending: int | None = Field(default=None, ge=1, le=100_000, description=(
        "Most requests each variant's cluster holds while Envoy opens connections to its replicas."))
    shadow_max_in_flight: int | None = Field(default=None, ge=1, le=100_000, description=(
        "Most mirrored copies in flight to each version, through a cluster of their own (default: four "
        "times the version's own limit); copies beyond it are dropped, so shadows never take capacity "
        "from primaries."))


class Autoscaling(StrictModel):
    """How `meshserve up` scales a variant whose replicas are {min, max} (docs/operator-guide.md)."""

    target_in_flight: float = Field(default=4.0, gt=0, le=10_000, description=(
        "Requests in flight per replica the scaler aims at: above it replicas are added."))
    scale_up_after_s: float = Field(default=2.0, ge=0, le=3600, description=(
        "How long the load must stay above the target before a replica is added."))
    cooldown_s: float = Field(default=60.0, ge=0, le=86400, description=(
        "How long the load must stay low (and since the last change) before a replica is removed."))


class QualitySpec(StrictModel):
    """Alert thresholds on live quality: each version's figures on reported outcomes (docs/records.md)."""

    min_accuracy: float | None = Field(default=None, ge=0, le=1, description="Alert below this accuracy.")
    max_mae: float | None = Field(default=None, ge=0, description="Alert above this mean absolute error.")
    min_outcomes: int = Field(default=100, ge=1, description="Outcomes a figure needs before it can alert.")
    window_s: float = Field(default=86400.0, gt=0, description="Judge the predictions of this last span of time.")


class DriftSpec(StrictModel):
    """How the drift monitor judges one model's live inputs and outputs against its baseline (docs/drift.md)."""

    enabled: bool = Field(default=True, description="Compare this model's live data with its package's baseline.")
    psi_threshold: float = Field(default=0.2, gt=0, le=10, description="PSI from which a column has drifted "
                                 "(0.1: worth a look, 0.2: a real shift, 0.25+: a large one).")
    alpha: float = Field(default=0.01, gt=0, lt=1, description="Significance level: the test must also find the "
                         "difference unlikely to be chance.")
    window_rows: int = Field(default=1000, ge=10, le=1_000_000, description="Count window: the newest rows.")
    window_s: float = Field(default=3600.0, ge=1, le=30 * 86400, description="Time window: rows of the last seconds.")
    min_samples: int = Field(default=200, ge=10, description="Fewest rows in a window before it is judged at all.")
    ignore: list[str] = Field(default_factory=list, description="Columns not to judge (feature, tensor or column "
                              "names), e.g. one that is meant to change such as a date.")


class RolloutBounds(StrictModel):
    """What a candidate must keep to to be promoted; breaking any rolls it back at once."""

    max_error_rate: float | None = Field(default=0.01, ge=0, le=1, description=(
        "Share of the candidate's requests that may fail (INTERNAL, UNAVAILABLE, DEADLINE_EXCEEDED, UNKNOWN)."))
    max_p99_ratio: float | None = Field(default=2.0, gt=0, description=(
        "The candidate's p99 latency over the primary's in the same window."))
    max_disagreement: float | None = Field(default=0.05, ge=0, le=1, description=(
        "Shadow stage: share of the primary's requests where the candidate's class output differs."))
    no_drift_alert: bool = Field(default=False, description="Hold the candidate while a drift alert names it.")
    max_accuracy_drop: float | None = Field(default=None, ge=0, le=1, description=(
        "Ground truth: the candidate's accuracy on reported outcomes may trail the primary's by at most this "
        "(0.01 = one point); the plan holds until both have min_outcomes outcomes."))
    min_outcomes: int = Field(default=500, ge=1, description="Outcomes each version needs before accuracy is judged.")


class RolloutPlan(StrictModel):
    """Progressive delivery of one candidate version, measured on the records of its traffic."""

    candidate: str = Field(pattern=_LABEL, description="The version being rolled out (listed under variants, weight 0).")
    shadow_stage: bool = Field(default=False, description=(
        "First mirror all traffic to the candidate and judge its disagreement with the primary; "
        "it gets live traffic only if it passes."))
    steps: list[int] = Field(default_factory=lambda: [5, 25, 50, 100], min_length=1, description=(
        "Percent of primary traffic the candidate gets at each step; increasing, ending at 100."))
    min_step_s: float = Field(default=60.0, ge=0, description="Shortest time at a step before promotion.")
    max_step_s: float = Field(default=900.0, gt=0, description=(
        "Longest wait for min_requests at a step; after it the step holds and says so."))
    min_requests: int = Field(default=200, ge=1, description="Requests a step needs before it is judged.")
    bounds: RolloutBounds = RolloutBounds()

    _text_candidate = field_validator("candidate", mode="before")(version_as_text)

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: list[int]) -> list[int]:
        if any(s < 1 or s > 100 for s in steps) or steps != sorted(set(steps)) or steps[-1] != 100:
            raise ValueError(f"steps {steps} must be increasing percentages from 1 to 100, ending with 100")
        return steps


class ModelDeployment(StrictModel):
    """How one model is served."""

    variants: list[Variant] = Field(min_length=1)
    shadows: list[Shadow] = Field(default_factory=list)
    timeouts: Timeouts = Timeouts()
    routing_key_header: str | None = Field(
        default=None,
        description="Request header (e.g. x-user-id) whose value pins a client to one variant while weights stay the same.",
    )
    fallback: str | None = Field(
        default=None, description="Variant that takes the traffic of a variant with no healthy replica."
    )
    drift: DriftSpec = DriftSpec()
    quality: QualitySpec = QualitySpec()
    limits: Limits = Limits()
    autoscaling: Autoscaling = Autoscaling()
    rollout_plan: RolloutPlan | None = Field(
        default=None, description="Progressive delivery of a candidate version (docs/operator-guide.md).")

    _text_fallback = field_validator("fallback", mode="before")(version_as_text)

    @field_validator("routing_key_header")
    @classmethod
    def _header_name(cls, name: str | None) -> str | None:
        if name is None:
            return None
        if not _HEADER_NAME.match(name):
            raise ValueError(f"'{name}' is not a lower-case header name (gRPC metadata keys are lower case)")
        if name.startswith(RESERVED_HEADER_PREFIX):
            raise ValueError(f"headers starting with {RESERVED_HEADER_PREFIX} are set by the mesh itself")
        return name

    @model_validator(mode="after")
    def _consistent(self) -> "ModelDeployment":
        dupes = repeated([v.version for v in self.variants] + [s.version for s in self.shadows])
        if dupes:
            raise ValueError(f"version(s) {', '.join(dupes)} listed more than once among variants and shadows")
        if sum(v.weight for v in self.variants) <= 0:
            raise ValueError("variant weights must add up to a positive total")
        if self.fallback is not None and self.fallback not in {v.version for v in self.variants}:
            raise ValueError(f"fallback '{self.fallback}' is not one of this model's variants")
        plan = self.rollout_plan
        if plan is not None:
            weights = {v.version: v.weight for v in self.variants}
            if plan.candidate not in weights:
                raise ValueError(f"rollout_plan candidate '{plan.candidate}' is not one of this model's variants; "
                                 "list it under variants with weight 0")
            if weights[plan.candidate] != 0:
                raise ValueError(f"rollout_plan candidate '{plan.candidate}' must start at weight 0; the plan "
                                 "gives it its traffic")
        return self

    def plan_primary(self) -> str | None:
        """The version a rollout plan's candidate takes traffic from: the heaviest other variant."""
        if self.rollout_plan is None:
            return None
        others = [v for v in self.variants if v.version != self.rollout_plan.candidate]
        return max(others, key=lambda v: v.weight).version if others else None

    @property
    def replicas(self) -> dict[str, int]:
        """Every deployed version (primary and shadow) -> how many adapter processes it starts with."""
        return {version: r.min for version, r in self.replica_ranges.items()}

    @property
    def replica_ranges(self) -> dict[str, Replicas]:
        """Every deployed version (primary and shadow) -> its replica range (min = max when fixed)."""
        return {v.version: v.replicas for v in self.variants} | {s.version: s.replicas for s in self.shadows}

    @property
    def cold_versions(self) -> set[str]:
        """Versions that scale to zero when idle: their first request waits for a replica to start."""
        return {version for version, r in self.replica_ranges.items() if r.min == 0}

    @property
    def shadow_versions(self) -> set[str]:
        return {s.version for s in self.shadows}

    def initial_rollout(self) -> "Rollout":
        return Rollout(
            weights={v.version: v.weight for v in self.variants},
            shadows={s.version: s.fraction for s in self.shadows if s.fraction > 0},
        )


class Retention(StrictModel):
    days: float | None = Field(default=None, gt=0, description="Records older than this are deleted.")
    max_bytes: int | None = Field(default=None, ge=1024 * 1024, description="The store is kept below this size, "
                                  "oldest records first.")


class RecordsSpec(StrictModel):
    """How the mesh keeps its prediction records (docs/records.md)."""

    enabled: bool = Field(default=True, description="Record every inference (the default).")
    store: str | None = Field(default=None, pattern=r"^(sqlite://|postgres(ql)?://)",
                              description="sqlite:///PATH or postgresql://... (default: records.db beside the spools).")
    on_failure: Literal["serve", "refuse"] = Field(
        default="serve", description="refuse: answer UNAVAILABLE rather than serve what cannot be recorded.")
    retention: Retention = Retention()


class MeshLimits(StrictModel):
    """Limits of the mesh as a whole (docs/operator-guide.md)."""

    router_max_in_flight: int | None = Field(default=None, ge=1, le=100_000, description=(
        "Most requests Envoy's front lets into the router at once; beyond it UNAVAILABLE with a retry hint. "
        "Default: twice what the models' limits let through, at least 64."))


class DeploymentSpec(StrictModel):
    """The whole `meshserve.yaml`."""

    models: dict[str, ModelDeployment] = Field(default_factory=dict)
    limits: MeshLimits = MeshLimits()
    records: RecordsSpec = RecordsSpec()
    security: SecuritySpec = SecuritySpec()  # TLS, authentication, who may do what (meshserve/spec/security_spec.py)

    @model_validator(mode="after")
    def _plans_need_records(self) -> "DeploymentSpec":
        planned = sorted(m for m, d in self.models.items() if d.rollout_plan is not None)
        if planned and not self.records.enabled:
            raise ValueError(f"rollout plans ({', '.join(planned)}) are judged on prediction records; "
                             "records.enabled must be true")
        return self

    @field_validator("models")
    @classmethod
    def _model_names(cls, models: dict[str, ModelDeployment]) -> dict[str, ModelDeployment]:
        for name in models:
            if not re.match(_LABEL, name):
                raise ValueError(f"model name '{name}' may hold only letters, digits, '_', '.' and '-'")
        return models

    def deployment(self, model: str) -> ModelDeployment:
        return self.models[model]


class Rollout(StrictModel):
    """The live traffic split of one model: primary weights and shadow fractions per version."""

    weights: dict[str, int]
    shadows: dict[str, float] = Field(default_factory=dict)

    @property
    def total_weight(self) -> int:
        return sum(self.weights.values())

    def check_against(self, model: str, deployment: ModelDeployment, where: str = "rollout") -> None:
        """Refuse a split naming versions that are not running, or one that sends no traffic anywhere."""
        deployed = deployment.replicas
        known = ", ".join(sorted(deployed))
        for kind, versions in (("weights", self.weights), ("shadows", self.shadows)):
            for version in versions:
                if version not in deployed:
                    raise ManifestError(where, f"{model}.{kind}.{version}",
                                        f"version '{version}' is not deployed for model '{model}' (deployed: {known})",
                                        f"use one of {known}, or put that version's package into the models folder "
                                        "(the running mesh loads it at weight 0) and try again")
        for version, weight in self.weights.items():
            if weight < 0 or weight > MAX_WEIGHT:
                raise ManifestError(where, f"{model}.weights.{version}", f"weight {weight} is out of range",
                                    f"give a whole number from 0 to {MAX_WEIGHT}")
        if self.total_weight <= 0:
            raise ManifestError(where, f"{model}.weights", "weights add up to zero, so no variant would answer",
                                "give at least one deployed version a positive weight, e.g. --weights 1=100")
        for version, fraction in self.shadows.items():
            if not 0.0 <= fraction <= 1.0:
                raise ManifestError(where, f"{model}.shadows.{version}", f"fraction {fraction} is outside 0..1",
                                    "give the share of requests to mirror as a number from 0 to 1, e.g. 0.25")
            if self.weights.get(version, 0) > 0:
                raise ManifestError(where, f"{model}.shadows.{version}",
                                    f"version '{version}' takes primary traffic and cannot also shadow it",
                                    "set its weight to 0 or drop it from the shadows")


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML loader that refuses a repeated key instead of silently keeping the last one."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _fix_for(err: dict) -> str | None:
    message = err["msg"]
    if err["loc"] and err["loc"][0] == "security" and security_fix(message):
        return security_fix(message)
    if "listed more than once" in message:
        return "list each version once: either as a variant or as a shadow"
    if "positive total" in message:
        return "give at least one variant a positive weight"
    if "rollout_plan" in message or "rollout plans" in message:
        return "see docs/operator-guide.md, 'Progressive delivery'"
    if "fallback" in message:
        return "name a version listed under variants, or drop fallback"
    if "replicas" in message or "replicas" in err["loc"] and err["type"] == "model_type":
        return "write a whole number of replicas from 1 to 64, or {min: M, max: N} with 0 <= M <= N and 1 <= N <= 64"
    if "header" in message:
        return "use a lower-case header name such as x-user-id"
    if err["type"] == "extra_forbidden":
        return "remove the field or check its spelling (see docs/operator-guide.md for the fields)"
    return None


def parse_spec(raw: Any, path: str) -> DeploymentSpec:
    if raw is None:
        return DeploymentSpec()
    if not isinstance(raw, dict):
        raise ManifestError(path, "(top level)", "expected a mapping with a `models:` key",
                            "start the file with `models:` followed by one entry per model")
    try:
        return DeploymentSpec.model_validate(raw)
    except ValidationError as exc:
        raise manifest_error(path, exc, _fix_for, default_fix="correct the value as described in docs/operator-guide.md") from exc


def load_spec(path: str | Path) -> DeploymentSpec:
    """Read and check a `meshserve.yaml`; a missing file is an empty spec (every model gets defaults)."""
    path = Path(path)
    if not path.exists():
        return DeploymentSpec()
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ManifestError(str(path), "(file)", f"not valid YAML: {exc}",
                            "fix the YAML syntax (each key once per mapping)") from exc
    spec = parse_spec(raw, str(path))
    return spec.model_copy(update={"security": resolve_security(spec.security, path.parent, str(path))})


def resolve_spec(spec: DeploymentSpec, available: dict[str, set[str]], path: str = SPEC_NAME) -> DeploymentSpec:
    """Check the spec against the model packages on disk and fill in defaults for unlisted models.

    `available` maps model name -> its package versions. A listed model or version without a
    package is refused; an unlisted model gets its newest version at weight 100 (its other
    versions run at weight 0).
    """
    for model, deployment in spec.models.items():
        if model not in available:
            raise ManifestError(path, f"models.{model}", f"no model package named '{model}'",
                                f"use one of {', '.join(sorted(available)) or '(none found)'} or add its package")
        for version in deployment.replicas:
            if version not in available[model]:
                kind = "variants" if any(v.version == version for v in deployment.variants) else "shadows"
                raise ManifestError(path, f"models.{model}.{kind}", f"unknown version '{version}' of '{model}'",
                                    f"use one of the packaged versions: {', '.join(sorted(available[model]))}")
    models = dict(spec.models)
    for model, versions in sorted(available.items()):
        if model in models:
            continue
        # No entry: the newest version takes all traffic (as the router's default version);
        # the others still run, reachable by naming their version, ready for a rollout.
        default = newest(list(versions))
        models[model] = ModelDeployment(variants=[Variant(version=default, weight=100)] + [
            Variant(version=v, weight=0) for v in sorted(versions) if v != default])
    check_principal_models(spec.security, set(available), path)
    return DeploymentSpec(models=models, records=spec.records, security=spec.security, limits=spec.limits)


def spec_path_for(models_dir: str | Path) -> Path:
    """`meshserve.yaml` beside the model packages (it may be absent: every model gets defaults)."""
    return Path(models_dir) / SPEC_NAME


def deployment_for(models_dir: str | Path, packages: Iterable[Any], skipped: Iterable[str] = ()) -> DeploymentSpec:
    """The checked spec for a folder of model packages (objects with `.name` and `.version`);
    models named in SKIPPED (their packages are broken) are left out of it."""
    available: dict[str, set[str]] = {}
    for package in packages:
        available.setdefault(package.name, set()).add(package.version)
    path = spec_path_for(models_dir)
    spec = load_spec(path)
    skipped = set(skipped)
    if skipped & set(spec.models):
        spec = spec.model_copy(update={"models": {m: d for m, d in spec.models.items() if m not in skipped}})
    return resolve_spec(spec, available, str(path))
