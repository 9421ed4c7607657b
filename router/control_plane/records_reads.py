"""The control API's answers from the records store: comparison, drift, quality, explanations,
records in pages, and outcomes imported in bulk.

They let the `meshserve` commands ask a running mesh instead of opening its store, which is
private to the mesh's user. Each answer is what the sidecars' own functions compute, the same
ones a command runs on a store it opens itself (`--store`), so the output is the same whichever
way the data came. Each call opens a store connection of its own and works in a worker thread:
a long read (a page of records, a comparison over a week) never holds the connection or the
event loop that GetRecords and the rollout controller use.

Who may call what is decided at the front (envoy/security.py): records readers and admins read
records; outcomes are written by admins. Explain also scores the request's model, so the
caller must be allowed that model too (the same rule as for an inference).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from meshserve.core.errors import ManifestError
from meshserve.core.mesh_protocol import forwarded_headers
from meshserve.core.settings import get_settings
from meshserve.router.data_plane.authorization import principal_of
from meshserve.sidecars.records.store import RecordStore, open_store
from meshserve.v1 import control_pb2 as cpb

NO_RECORDS = "this mesh keeps no records (records.enabled is false in meshserve.yaml)"
DEFAULT_PAGE = 500
LARGEST_PAGE = 5000
LARGEST_OUTCOME_BATCH = 10_000
DEFAULT_BACKGROUND = 50
EXPLAIN_TIMEOUT_S = 120.0


class Refused(Exception):
    """A request the reads cannot answer: its status code and a message that says what to do."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


@contextmanager
def _store(url: str) -> Iterator[RecordStore]:
    store = open_store(url)
    try:
        yield store
    finally:
        store.close()


def _optional(request, name: str) -> float | None:
    return getattr(request, name) if request.HasField(name) else None


async def _answer(servicer, context, work: Callable[[RecordStore], Any], writes: bool = False) -> Any:
    """WORK run on a fresh store connection in a worker thread; a store that fails is UNAVAILABLE."""
    url = servicer.table.control.records_store
    if not url:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, NO_RECORDS)

    def run() -> Any:
        with _store(url) as store:
            return work(store)

    try:
        return await asyncio.to_thread(run)
    except Refused as exc:
        await context.abort(exc.code, str(exc))
    except Exception as exc:  # sqlite3 and psycopg errors alike: the store, not the request
        await context.abort(grpc.StatusCode.UNAVAILABLE,
                            f"the records store cannot be {'written' if writes else 'read'} now: {exc}")


async def get_comparison(servicer, request, context) -> cpb.Comparison:
    from meshserve.sidecars.compare.api import compare
    from meshserve.sidecars.compare.api import Thresholds

    since = _optional(request, "since")
    if since is None and request.window_s > 0:
        since = time.time() - request.window_s
    thresholds = None
    if request.HasField("thresholds"):
        given = request.thresholds
        thresholds = Thresholds(given.min_requests, given.alpha, given.min_agreement, given.max_distance,
                                given.max_error_rate_increase)
    result = await _answer(servicer, context, lambda store: compare(
        store, request.model, since, _optional(request, "until"), thresholds=thresholds))
    return cpb.Comparison(model=request.model, comparison_json=json.dumps(result))


async def get_drift(servicer, request, context) -> cpb.DriftReport:
    def drift(store: RecordStore) -> dict:
        from meshserve.sidecars.drift.api import DriftTables

        plan = _drift_plan(servicer, request.model) if request.check_now else None
        tables = DriftTables(store)
        if plan is not None:
            columns = _check_now(store, plan, request.version or None)
        else:  # without a baseline: what the recorder's monitor found at its last check
            columns = tables.status(request.model)
        if request.alerts_only:
            columns = [c for c in columns if c.get("alerting")]
        return {"columns": columns, "alerts": tables.alerts(request.model, since=_optional(request, "alerts_since")),
                "policy": plan.policy.__dict__ if plan is not None else None}

    result = await _answer(servicer, context, drift)
    return cpb.DriftReport(model=request.model, drift_json=json.dumps(result, default=str))


def _drift_plan(servicer, model: str):
    """MODEL's drift plan from the packages the mesh serves and its spec's `drift:` settings."""
    from meshserve.sidecars.drift.api import plan_for

    entry = servicer.table.models.get(model)
    if entry is None:
        return None
    spec = servicer.rollouts.spec if servicer.rollouts is not None else None
    settings = {m: d.drift.model_dump() for m, d in spec.models.items()} if spec is not None else {}
    try:  # reads each baseline file, which may have changed since the mesh started
        plans = plan_for([v.package for v in entry.versions.values()], settings)
    except ManifestError as exc:
        raise Refused(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
    return plans[0] if plans else None


def _check_now(store: RecordStore, plan, version: str | None) -> list[dict]:
    from pathlib import Path

    from meshserve.sidecars.drift.api import read_baseline
    from meshserve.sidecars.drift.api import check_model

    now = time.time()
    baselines = {v: read_baseline(Path(p)) for v, p in plan.baselines.items() if version in (None, v)}
    return [r.status_row(now) for r in check_model(store, plan, baselines, now, get_settings().drift_max_window_rows)]


async def get_quality(servicer, request, context) -> cpb.QualityReport:
    from meshserve.sidecars.records.api import quality

    window_s = request.window_s or 3600.0
    result = await _answer(servicer, context, lambda store: quality(
        store.joined(request.model, _optional(request, "since"), _optional(request, "until")), window_s=window_s))
    return cpb.QualityReport(model=request.model, quality_json=json.dumps(result))


async def import_outcomes(servicer, request, context) -> cpb.ImportOutcomesResponse:
    if len(request.outcomes) > LARGEST_OUTCOME_BATCH:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"outcomes: {len(request.outcomes)} in one batch; "
                            f"send at most {LARGEST_OUTCOME_BATCH} at a time")
    batch = []
    for number, row in enumerate(request.outcomes, 1):
        try:
            values = json.loads(row.values_json)
        except json.JSONDecodeError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"outcomes[{number}].values_json: not JSON ({exc.msg}); give {{output: value}}")
        if not row.request_id or not isinstance(values, dict) or not values:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"outcomes[{number}]: give a request_id and "
                                "values_json holding {output: value} with at least one output")
        batch.append((row.request_id, row.time or time.time(), values))
    if len({request_id for request_id, _, _ in batch}) != len(batch):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                            "outcomes: a request id appears twice in one batch; send only its latest outcome")
    known, recorded = await _answer(servicer, context, lambda store: store.save_outcomes(batch), writes=True)
    return cpb.ImportOutcomesResponse(reported_before=sorted(known), recorded=sorted(recorded))


async def export_records(servicer, request, context) -> AsyncIterator[cpb.RecordPage]:
    from meshserve.sidecars.records.api import to_message

    url = servicer.table.control.records_store
    if not url:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, NO_RECORDS)
    if request.role not in ("", "primary", "canary", "shadow"):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                            f"role '{request.role[:40]}': give primary, canary or shadow (or none for all)")
    size = min(request.page_size or DEFAULT_PAGE, LARGEST_PAGE)
    bytes_per_page = get_settings().max_message_bytes // 2
    since, until, version = _optional(request, "since"), _optional(request, "until"), request.version or None
    try:
        store = await asyncio.to_thread(open_store, url)
    except Exception as exc:
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"the records store cannot be read now: {exc}")
    try:
        total = await asyncio.to_thread(store.count_matching, request.model, version, since, until)
        records = store.query(request.model, version, since, until, role=request.role or None,
                              limit=request.limit or None, newest_first=request.newest_first)
        first = True
        while True:
            page = await asyncio.to_thread(_page, records, size, bytes_per_page, to_message)
            if page or first:
                yield cpb.RecordPage(records=page, total=total if first else 0)
            first = False
            if len(page) < size:
                return
    finally:
        await asyncio.to_thread(store.close)


def _page(records: Iterator[dict], size: int, most_bytes: int, to_message) -> list:
    """The next SIZE records as messages, fewer when they would pass MOST_BYTES together."""
    page, used = [], 0
    for record in records:
        message = to_message(record)
        page.append(message)
        used += message.ByteSize()
        if len(page) >= size or used >= most_bytes:
            break
    return page


async def explain(servicer, request, context) -> cpb.Explanation:
    """Attributions of a recorded prediction; its model is scored through the mesh as the caller."""
    from meshserve.router.data_plane.upstreams import Upstreams
    from meshserve.sidecars.records.api import CannotExplain, explain as attributions

    if not request.request_id:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request_id: give the id of a recorded prediction")
    loop, upstreams = asyncio.get_running_loop(), Upstreams()
    principal = principal_of(context.invocation_metadata())

    def scored(store: RecordStore) -> dict:
        predict = _predictor(servicer, upstreams, loop, principal)
        try:
            return attributions(store, request.request_id, predict, background=request.background or
                                DEFAULT_BACKGROUND, output=request.output or None, row=request.row)
        except CannotExplain as exc:
            raise Refused(grpc.StatusCode.FAILED_PRECONDITION, f"cannot explain {request.request_id}: {exc}") from None
        except IndexError:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"row {request.row}: request {request.request_id} "
                          "has fewer rows") from None

    try:
        result = await _answer(servicer, context, scored, writes=True)
    finally:
        await upstreams.close()
    return cpb.Explanation(request_id=request.request_id, explanation_json=json.dumps(result))


def _predictor(servicer, upstreams, loop: asyncio.AbstractEventLoop, principal: str | None):
    """predict(model, version, inputs) for the explainer: one inference pinned to VERSION, sent the
    way the router sends its own (to Envoy's mesh listener, or straight to the adapter)."""

    def predict(model: str, version: str, inputs: dict) -> dict:
        from meshserve.sidecars.records.api import EXPLAIN_ID_PREFIX

        if principal is not None and not servicer.security.may_call(principal, model):
            raise Refused(grpc.StatusCode.PERMISSION_DENIED,
                          f"principal '{principal}' may not call model '{model}', which explaining scores; "
                          "ask an operator to add it to security.principals in meshserve.yaml")
        try:
            entry = servicer.table.model(model).version(version)
        except Exception:
            raise Refused(grpc.StatusCode.FAILED_PRECONDITION, f"cannot explain: model '{model}' version "
                          f"'{version}' is no longer served, so its answers cannot be scored") from None
        request_id = f"{EXPLAIN_ID_PREFIX}{uuid.uuid4().hex}"
        message = _infer_request(model, version, request_id, inputs)
        address = servicer.table.mesh_address or entry.address

        async def call():
            return await upstreams.stub(address).ModelInfer(
                message, timeout=EXPLAIN_TIMEOUT_S, metadata=forwarded_headers((), request_id, model, version))

        try:
            answer = asyncio.run_coroutine_threadsafe(call(), loop).result()
        except grpc.aio.AioRpcError as exc:
            from meshserve.sidecars.records.api import CannotExplain

            raise CannotExplain(f"{exc.code().name}: {exc.details()}") from None
        return _outputs(answer)

    return predict


def _infer_request(model: str, version: str, request_id: str, inputs: dict):
    """A ModelInferRequest of numpy INPUTS, built the way tritonclient builds one."""
    import tritonclient.grpc as triton
    from tritonclient.grpc._utils import _get_inference_request

    from meshserve.core.datatypes import NUMPY_DTYPES

    datatype = {dtype.str: name for name, dtype in NUMPY_DTYPES.items()}
    tensors = []
    for name, array in inputs.items():
        tensor = triton.InferInput(name, list(array.shape), datatype.get(array.dtype.str, "BYTES"))
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    return _get_inference_request(model_name=model, inputs=tensors, model_version=version, request_id=request_id,
                                  outputs=None, sequence_id=0, sequence_start=False, sequence_end=False,
                                  priority=0, timeout=None, parameters=None)


def _outputs(answer) -> dict:
    import tritonclient.grpc as triton

    result = triton.InferResult(answer)
    return {o.name: result.as_numpy(o.name) for o in answer.outputs}
