"""What an adapter does with an inference, free of gRPC: check, decode, predict, encode.

`ModelService` owns one loaded runtime. The gRPC servicer in server.py only moves
messages and turns errors into status codes. Every inference, answered or refused, is
handed to the service's observers with its decoded tensors and per-stage timings.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np

from tritonclient.grpc import service_pb2 as pb

from meshserve.adapters.batching import MicroBatcher
from meshserve.adapters.runtime import Runtime, Tensors, create_runtime, request_deadline
from meshserve.adapters.tensor_codec import as_datatype, decode_tensor, encode_tensor
from meshserve.core.classification import class_counts, classify
from meshserve.core.errors import DeadlineExceeded, MeshError, ModelFailed
from meshserve.core.input_policy import check_values
from meshserve.core.mesh_protocol import ROLE_PARAMETER, CallInfo, model_metadata
from meshserve.core.model_package import ModelPackage
from meshserve.core.observers import InferenceEvent, Observers
from meshserve.core.request_parameters import (
    IGNORED_PARAMETERS, check_shared_memory, ignored_parameters, request_timeout_s, with_request_timeout)
from meshserve.core.signature_check import check_request, one_value_per_row


class ModelService:
    def __init__(self, package: ModelPackage, runtime: Runtime, observers: Observers | None = None):
        self.package = package
        self.runtime = runtime
        self.observers = observers or Observers()
        batching = package.manifest.batching
        self.batcher = (MicroBatcher(runtime.predict, batching.max_batch_size, batching.max_wait_us,
                                     batching.concurrency)
                        if batching.max_batch_size > 1 else None)

    @classmethod
    async def start(cls, package: ModelPackage, observers: Observers | None = None) -> "ModelService":
        runtime = create_runtime(package)
        await runtime.load(package)
        return cls(package, runtime, observers)

    @property
    def signature(self):
        return self.package.manifest.signature

    def metadata(self) -> pb.ModelMetadataResponse:
        return model_metadata(self.package, [self.package.version])

    def serves(self, name: str, version: str) -> bool:
        return name == self.package.name and version in ("", self.package.version)

    async def infer(self, request: pb.ModelInferRequest, call: CallInfo) -> pb.ModelInferResponse:
        event = InferenceEvent(side="adapter", call=call, model=self.package.name, version=self.package.version)
        async with self.observers.observing(event):
            timeout = request_timeout_s(request)
            if timeout is None:
                return await self._infer(request, call, event)
            # The request's own `timeout` parameter: a deadline the server keeps even for a
            # caller that set none on its call.
            call = with_request_timeout(call, request)
            try:
                return await asyncio.wait_for(self._infer(request, call, event), call.remaining())
            except TimeoutError:
                raise DeadlineExceeded(f"the request's timeout of {round(timeout * 1e6)} us passed before "
                                       "its answer; raise the timeout parameter or send fewer rows") from None

    async def _infer(self, request: pb.ModelInferRequest, call: CallInfo, event: InferenceEvent) -> pb.ModelInferResponse:
        timings = event.timings
        mark = time.perf_counter()
        check_shared_memory(request)  # first: such a request carries no data for the checks below
        check_request(request, self.signature)
        counts = class_counts(request, self.signature)
        raw = request.raw_input_contents
        inputs = {
            t.name: decode_tensor(t.name, t.datatype, t.shape, t.contents, raw[i] if raw else None)
            for i, t in enumerate(request.inputs)
        }
        for name, array in inputs.items():
            if one_value_per_row(self.signature.input(name).shape, array.shape):
                inputs[name] = array.reshape(-1)
        event.inputs = inputs
        check_values(inputs, self.signature, self.package.manifest.input_policy)
        now = time.perf_counter()
        timings["decode"], mark = now - mark, now
        if call.deadline is not None:
            # Each RPC runs in its own task, so this stays this request's; runtimes that call
            # another server (Triton) pass it on, and the batcher gives each batch its own.
            request_deadline.set(call.deadline)
        outputs = await self._predict(inputs, event)
        event.outputs = outputs
        self._check_rows(inputs, outputs)
        now = time.perf_counter()
        timings["predict"], mark = now - mark - timings.get("queue", 0.0), now
        wanted = [o.name for o in request.outputs] or [o.name for o in self.signature.outputs]
        response = pb.ModelInferResponse(model_name=self.package.name, model_version=self.package.version,
                                         id=call.request_id)
        response.parameters[ROLE_PARAMETER].string_param = call.role
        ignored = ignored_parameters(request)
        if ignored:
            response.parameters[IGNORED_PARAMETERS].string_param = ",".join(ignored)
        as_raw = bool(raw) or not request.inputs
        for name in wanted:
            spec = self.signature.output(name)
            if name not in outputs:
                raise ModelFailed(f"the model returned no output '{name}' (it returned {', '.join(outputs) or 'nothing'})")
            try:
                array = as_datatype(name, outputs[name], spec.datatype)
            except (TypeError, ValueError) as exc:
                raise ModelFailed(str(exc)) from exc
            if not spec.accepts_shape(array.shape):
                raise ModelFailed(f"the model returned output '{name}' of shape {list(array.shape)}; "
                                  f"model.yaml declares {spec.shape}")
            datatype = spec.datatype
            if name in counts:
                array, datatype = classify(array, counts[name], spec.features, spec.shape[:1] == [-1]), "BYTES"
            data = encode_tensor(array, datatype, response.outputs.add(name=name), raw=as_raw)
            if data is not None:
                response.raw_output_contents.append(data)
        timings["encode"] = time.perf_counter() - mark
        return response

    def _check_rows(self, inputs: Tensors, outputs: Tensors) -> None:
        """An output with a batch dimension has one row per input row, whatever the runtime."""
        batched = [a.shape[0] for name, a in inputs.items()
                   if getattr(a, "ndim", 0) and self.signature.input(name).shape[0] == -1]
        if not batched:
            return
        rows = batched[0]
        for spec in self.signature.outputs:
            array = outputs.get(spec.name)
            if array is None or not spec.shape or spec.shape[0] != -1:
                continue
            got = np.shape(array)[0] if np.ndim(array) else 0
            if got != rows:
                raise ModelFailed(f"the model returned output '{spec.name}' with {got} rows for {rows} input rows; "
                                  "a model must answer one row per input row")

    async def _predict(self, inputs: Tensors, event: InferenceEvent) -> Tensors:
        try:
            if self.batcher is not None:
                return await self.batcher.predict(inputs, event)
            return await self.runtime.predict(inputs)
        except MeshError:
            raise
        except Exception as exc:
            raise ModelFailed.from_exception(exc, origin=self.package.manifest.runtime) from exc

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()
        await self.runtime.close()
