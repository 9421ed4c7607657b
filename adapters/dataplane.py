"""What an adapter does with an inference, free of gRPC: check, decode, predict, encode.

`ModelService` owns one loaded runtime. The gRPC servicer in server.py only moves
messages and turns errors into status codes.
"""

from __future__ import annotations

from dataclasses import dataclass

from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2 as pb

from meshserve.adapters.batching import MicroBatcher
from meshserve.adapters.runtime import Runtime, Tensors, create_runtime, request_deadline
from meshserve.adapters.tensor_codec import as_datatype, decode_tensor, encode_tensor
from meshserve.errors import MeshError, ModelFailed
from meshserve.model_package import ModelPackage
from meshserve.signature_check import check_request


@dataclass(frozen=True)
class Call:
    """What the adapter knows of one inference besides its tensors."""

    request_id: str
    role: str  # primary | canary | shadow: which traffic this is, for records and answers
    deadline: float | None = None  # time.monotonic() by which the caller wants the answer


class ModelService:
    def __init__(self, package: ModelPackage, runtime: Runtime):
        self.package = package
        self.runtime = runtime
        batching = package.manifest.batching
        self.batcher = (MicroBatcher(runtime.predict, batching.max_batch_size, batching.max_wait_us,
                                     batching.concurrency)
                        if batching.max_batch_size > 1 else None)

    @classmethod
    async def start(cls, package: ModelPackage) -> "ModelService":
        runtime = create_runtime(package)
        await runtime.load(package)
        return cls(package, runtime)

    @property
    def signature(self):
        return self.package.manifest.signature

    def metadata(self) -> pb.ModelMetadataResponse:
        return model_metadata(self.package, [self.package.version])

    def serves(self, name: str, version: str) -> bool:
        return name == self.package.name and version in ("", self.package.version)

    async def infer(self, request: pb.ModelInferRequest, call: Call) -> pb.ModelInferResponse:
        check_request(request, self.signature)
        raw = request.raw_input_contents
        inputs = {
            t.name: decode_tensor(t.name, t.datatype, t.shape, t.contents, raw[i] if raw else None)
            for i, t in enumerate(request.inputs)
        }
        if call.deadline is not None:
            # Each RPC runs in its own task, so this stays this request's; runtimes that call
            # another server (Triton) pass it on.
            request_deadline.set(call.deadline)
        outputs = await self._predict(inputs)
        wanted = [o.name for o in request.outputs] or [o.name for o in self.signature.outputs]
        response = pb.ModelInferResponse(model_name=self.package.name, model_version=self.package.version,
                                         id=call.request_id)
        response.parameters["meshserve_role"].string_param = call.role
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
            data = encode_tensor(array, spec.datatype, response.outputs.add(name=name), raw=as_raw)
            if data is not None:
                response.raw_output_contents.append(data)
        return response

    async def _predict(self, inputs: Tensors) -> Tensors:
        try:
            if self.batcher is not None:
                return await self.batcher.predict(inputs)
            return await self.runtime.predict(inputs)
        except MeshError:
            raise
        except Exception as exc:
            raise ModelFailed.from_exception(exc, origin=self.package.manifest.runtime) from exc

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()
        await self.runtime.close()


def model_metadata(package: ModelPackage, versions: list[str]) -> pb.ModelMetadataResponse:
    signature = package.manifest.signature
    tensor = pb.ModelMetadataResponse.TensorMetadata
    return pb.ModelMetadataResponse(
        name=package.name,
        versions=versions,
        platform=f"meshserve_{package.manifest.runtime}",
        inputs=[tensor(name=s.name, datatype=s.datatype, shape=s.shape) for s in signature.inputs],
        outputs=[tensor(name=s.name, datatype=s.datatype, shape=s.shape) for s in signature.outputs],
    )


def model_config(package: ModelPackage) -> pb.ModelConfigResponse:
    """The model as Triton's ModelConfig describes one, for Triton's own tools (perf_analyzer).

    max_batch_size 0 tells them the dims are the full shapes, batch dimension (-1) included.
    """
    signature = package.manifest.signature

    def tensor(kind, spec):
        data_type = "TYPE_STRING" if spec.datatype == "BYTES" else f"TYPE_{spec.datatype}"
        return kind(name=spec.name, data_type=mc.DataType.Value(data_type), dims=spec.shape)

    config = mc.ModelConfig(
        name=package.name, platform=f"meshserve_{package.manifest.runtime}", max_batch_size=0,
        input=[tensor(mc.ModelInput, s) for s in signature.inputs],
        output=[tensor(mc.ModelOutput, s) for s in signature.outputs])
    return pb.ModelConfigResponse(config=config)
