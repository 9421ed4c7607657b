from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TensorSpec(_message.Message):
    __slots__ = ("name", "datatype", "shape", "features")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATATYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    name: str
    datatype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    features: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., datatype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., features: _Optional[_Iterable[str]] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("version", "runtime", "description", "inputs", "outputs", "ready", "package_path", "digest")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_PATH_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    version: str
    runtime: str
    description: str
    inputs: _containers.RepeatedCompositeFieldContainer[TensorSpec]
    outputs: _containers.RepeatedCompositeFieldContainer[TensorSpec]
    ready: bool
    package_path: str
    digest: str
    def __init__(self, version: _Optional[str] = ..., runtime: _Optional[str] = ..., description: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[TensorSpec, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[TensorSpec, _Mapping]]] = ..., ready: _Optional[bool] = ..., package_path: _Optional[str] = ..., digest: _Optional[str] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("name", "versions", "rollout")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    name: str
    versions: _containers.RepeatedCompositeFieldContainer[ModelVersion]
    rollout: Rollout
    def __init__(self, name: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[ModelVersion, _Mapping]]] = ..., rollout: _Optional[_Union[Rollout, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "models_dir")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    MODELS_DIR_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    models_dir: str
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ..., models_dir: _Optional[str] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetRolloutRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class Rollout(_message.Message):
    __slots__ = ("model", "weights", "shadows")
    class WeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class ShadowsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    SHADOWS_FIELD_NUMBER: _ClassVar[int]
    model: str
    weights: _containers.ScalarMap[str, int]
    shadows: _containers.ScalarMap[str, float]
    def __init__(self, model: _Optional[str] = ..., weights: _Optional[_Mapping[str, int]] = ..., shadows: _Optional[_Mapping[str, float]] = ...) -> None: ...

class SetRolloutRequest(_message.Message):
    __slots__ = ("rollout",)
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    rollout: Rollout
    def __init__(self, rollout: _Optional[_Union[Rollout, _Mapping]] = ...) -> None: ...

class GetRecordsRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class PredictionRecord(_message.Message):
    __slots__ = ("request_id", "slot", "role", "side", "model", "version", "digest", "training_data_sha256", "code_revision", "trace_id", "time", "latency_s", "code", "error", "inputs_json", "outputs_json", "package_json", "explanation_json", "batch_size", "timings_json")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    TRAINING_DATA_SHA256_FIELD_NUMBER: _ClassVar[int]
    CODE_REVISION_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    LATENCY_S_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    INPUTS_JSON_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_JSON_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_JSON_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_JSON_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_JSON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    slot: str
    role: str
    side: str
    model: str
    version: str
    digest: str
    training_data_sha256: str
    code_revision: str
    trace_id: str
    time: float
    latency_s: float
    code: str
    error: str
    inputs_json: str
    outputs_json: str
    package_json: str
    explanation_json: str
    batch_size: int
    timings_json: str
    def __init__(self, request_id: _Optional[str] = ..., slot: _Optional[str] = ..., role: _Optional[str] = ..., side: _Optional[str] = ..., model: _Optional[str] = ..., version: _Optional[str] = ..., digest: _Optional[str] = ..., training_data_sha256: _Optional[str] = ..., code_revision: _Optional[str] = ..., trace_id: _Optional[str] = ..., time: _Optional[float] = ..., latency_s: _Optional[float] = ..., code: _Optional[str] = ..., error: _Optional[str] = ..., inputs_json: _Optional[str] = ..., outputs_json: _Optional[str] = ..., package_json: _Optional[str] = ..., explanation_json: _Optional[str] = ..., batch_size: _Optional[int] = ..., timings_json: _Optional[str] = ...) -> None: ...

class GetRecordsResponse(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[PredictionRecord]
    def __init__(self, records: _Optional[_Iterable[_Union[PredictionRecord, _Mapping]]] = ...) -> None: ...

class OutcomeValues(_message.Message):
    __slots__ = ("numbers", "labels")
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    numbers: _containers.RepeatedScalarFieldContainer[float]
    labels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, numbers: _Optional[_Iterable[float]] = ..., labels: _Optional[_Iterable[str]] = ...) -> None: ...

class Outcome(_message.Message):
    __slots__ = ("request_id", "outputs", "label", "time")
    class OutputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: OutcomeValues
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[OutcomeValues, _Mapping]] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    outputs: _containers.MessageMap[str, OutcomeValues]
    label: str
    time: float
    def __init__(self, request_id: _Optional[str] = ..., outputs: _Optional[_Mapping[str, OutcomeValues]] = ..., label: _Optional[str] = ..., time: _Optional[float] = ...) -> None: ...

class RecordOutcomesRequest(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[Outcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[Outcome, _Mapping]]] = ...) -> None: ...

class RecordOutcomesResponse(_message.Message):
    __slots__ = ("stored", "matched", "unknown", "replaced", "refused")
    STORED_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    stored: int
    matched: int
    unknown: int
    replaced: int
    refused: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, stored: _Optional[int] = ..., matched: _Optional[int] = ..., unknown: _Optional[int] = ..., replaced: _Optional[int] = ..., refused: _Optional[_Iterable[str]] = ...) -> None: ...

class RolloutStatus(_message.Message):
    __slots__ = ("model", "status_json")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STATUS_JSON_FIELD_NUMBER: _ClassVar[int]
    model: str
    status_json: str
    def __init__(self, model: _Optional[str] = ..., status_json: _Optional[str] = ...) -> None: ...

class RolloutActionRequest(_message.Message):
    __slots__ = ("model", "action")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    model: str
    action: str
    def __init__(self, model: _Optional[str] = ..., action: _Optional[str] = ...) -> None: ...

class GetComparisonRequest(_message.Message):
    __slots__ = ("model", "window_s", "since", "until", "thresholds")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    model: str
    window_s: float
    since: float
    until: float
    thresholds: ComparisonThresholds
    def __init__(self, model: _Optional[str] = ..., window_s: _Optional[float] = ..., since: _Optional[float] = ..., until: _Optional[float] = ..., thresholds: _Optional[_Union[ComparisonThresholds, _Mapping]] = ...) -> None: ...

class ComparisonThresholds(_message.Message):
    __slots__ = ("min_requests", "alpha", "min_agreement", "max_distance", "max_error_rate_increase")
    MIN_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    MIN_AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    MAX_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    MAX_ERROR_RATE_INCREASE_FIELD_NUMBER: _ClassVar[int]
    min_requests: int
    alpha: float
    min_agreement: float
    max_distance: float
    max_error_rate_increase: float
    def __init__(self, min_requests: _Optional[int] = ..., alpha: _Optional[float] = ..., min_agreement: _Optional[float] = ..., max_distance: _Optional[float] = ..., max_error_rate_increase: _Optional[float] = ...) -> None: ...

class Comparison(_message.Message):
    __slots__ = ("model", "comparison_json")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    COMPARISON_JSON_FIELD_NUMBER: _ClassVar[int]
    model: str
    comparison_json: str
    def __init__(self, model: _Optional[str] = ..., comparison_json: _Optional[str] = ...) -> None: ...

class GetDriftRequest(_message.Message):
    __slots__ = ("model", "alerts_only", "check_now", "version", "alerts_since")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ALERTS_ONLY_FIELD_NUMBER: _ClassVar[int]
    CHECK_NOW_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ALERTS_SINCE_FIELD_NUMBER: _ClassVar[int]
    model: str
    alerts_only: bool
    check_now: bool
    version: str
    alerts_since: float
    def __init__(self, model: _Optional[str] = ..., alerts_only: _Optional[bool] = ..., check_now: _Optional[bool] = ..., version: _Optional[str] = ..., alerts_since: _Optional[float] = ...) -> None: ...

class DriftReport(_message.Message):
    __slots__ = ("model", "drift_json")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DRIFT_JSON_FIELD_NUMBER: _ClassVar[int]
    model: str
    drift_json: str
    def __init__(self, model: _Optional[str] = ..., drift_json: _Optional[str] = ...) -> None: ...

class GetQualityRequest(_message.Message):
    __slots__ = ("model", "since", "until", "window_s")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    model: str
    since: float
    until: float
    window_s: float
    def __init__(self, model: _Optional[str] = ..., since: _Optional[float] = ..., until: _Optional[float] = ..., window_s: _Optional[float] = ...) -> None: ...

class QualityReport(_message.Message):
    __slots__ = ("model", "quality_json")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    QUALITY_JSON_FIELD_NUMBER: _ClassVar[int]
    model: str
    quality_json: str
    def __init__(self, model: _Optional[str] = ..., quality_json: _Optional[str] = ...) -> None: ...

class OutcomeRow(_message.Message):
    __slots__ = ("request_id", "time", "values_json")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    VALUES_JSON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    time: float
    values_json: str
    def __init__(self, request_id: _Optional[str] = ..., time: _Optional[float] = ..., values_json: _Optional[str] = ...) -> None: ...

class ImportOutcomesRequest(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[OutcomeRow]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[OutcomeRow, _Mapping]]] = ...) -> None: ...

class ImportOutcomesResponse(_message.Message):
    __slots__ = ("reported_before", "recorded")
    REPORTED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    reported_before: _containers.RepeatedScalarFieldContainer[str]
    recorded: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, reported_before: _Optional[_Iterable[str]] = ..., recorded: _Optional[_Iterable[str]] = ...) -> None: ...

class ExplainRequest(_message.Message):
    __slots__ = ("request_id", "background", "output", "row")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ROW_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    background: int
    output: str
    row: int
    def __init__(self, request_id: _Optional[str] = ..., background: _Optional[int] = ..., output: _Optional[str] = ..., row: _Optional[int] = ...) -> None: ...

class Explanation(_message.Message):
    __slots__ = ("request_id", "explanation_json")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_JSON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    explanation_json: str
    def __init__(self, request_id: _Optional[str] = ..., explanation_json: _Optional[str] = ...) -> None: ...

class ExportRecordsRequest(_message.Message):
    __slots__ = ("model", "version", "role", "since", "until", "limit", "newest_first", "page_size")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    NEWEST_FIRST_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    role: str
    since: float
    until: float
    limit: int
    newest_first: bool
    page_size: int
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ..., role: _Optional[str] = ..., since: _Optional[float] = ..., until: _Optional[float] = ..., limit: _Optional[int] = ..., newest_first: _Optional[bool] = ..., page_size: _Optional[int] = ...) -> None: ...

class RecordPage(_message.Message):
    __slots__ = ("records", "total")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[PredictionRecord]
    total: int
    def __init__(self, records: _Optional[_Iterable[_Union[PredictionRecord, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class DeployRequest(_message.Message):
    __slots__ = ("model", "version", "role", "amount", "allow_signature_change", "strict", "bundle_digest")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    ALLOW_SIGNATURE_CHANGE_FIELD_NUMBER: _ClassVar[int]
    STRICT_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    role: str
    amount: float
    allow_signature_change: bool
    strict: bool
    bundle_digest: str
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ..., role: _Optional[str] = ..., amount: _Optional[float] = ..., allow_signature_change: _Optional[bool] = ..., strict: _Optional[bool] = ..., bundle_digest: _Optional[str] = ...) -> None: ...

class GateCheck(_message.Message):
    __slots__ = ("name", "passed", "reason", "warnings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    passed: bool
    reason: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., passed: _Optional[bool] = ..., reason: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class DeployResponse(_message.Message):
    __slots__ = ("deployed", "checks", "rollout", "digest")
    DEPLOYED_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    deployed: bool
    checks: _containers.RepeatedCompositeFieldContainer[GateCheck]
    rollout: Rollout
    digest: str
    def __init__(self, deployed: _Optional[bool] = ..., checks: _Optional[_Iterable[_Union[GateCheck, _Mapping]]] = ..., rollout: _Optional[_Union[Rollout, _Mapping]] = ..., digest: _Optional[str] = ...) -> None: ...
