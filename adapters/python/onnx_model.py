"""ONNX models through onnxruntime, their signature checked against the graph when they load.

The graph's inputs must be the signature's inputs (same names, compatible element types and
ranks) and every declared output must be a graph output; a mismatch is refused at load with the
file, the field and the fix, never discovered by a client.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from meshserve.core.errors import ManifestError
from meshserve.core.model_package import ModelPackage

ONNX_TYPES = {
    "tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(float16)": "FP16",
    "tensor(int8)": "INT8", "tensor(int16)": "INT16", "tensor(int32)": "INT32", "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16", "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64",
    "tensor(bool)": "BOOL", "tensor(string)": "BYTES",
}


def _dims(shape: list[Any]) -> list[int]:
    return [d if isinstance(d, int) and d > 0 else -1 for d in shape]


def _fits(declared: list[int], graph: list[int]) -> bool:
    return len(declared) == len(graph) and all(g == -1 or d == -1 or d == g for d, g in zip(declared, graph))


class OnnxModel:
    def __init__(self, package: ModelPackage, threads: int):
        import onnxruntime

        path = package.path(package.manifest.entrypoint)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(threads, 1)
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a bad file
            raise ManifestError(str(package.manifest_path), "entrypoint", f"onnxruntime cannot load {path}: {exc}",
                                "export the model again (e.g. skl2onnx, torch.onnx.export) and check the file") from None
        check_signature(self.session, package)
        from meshserve.adapters.python.categories import onnx_categories

        self.categories = onnx_categories(package)
        self.outputs = [o.name for o in package.manifest.signature.outputs]
        self._types = {i.name: i.type for i in self.session.get_inputs()}

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {}
        for name, array in inputs.items():
            if self._types.get(name) == "tensor(string)":
                array = np.array([v.decode() if isinstance(v, bytes) else v for v in array.reshape(-1)],
                                 dtype=object).reshape(array.shape)
            feed[name] = array
        results = self.session.run(self.outputs, feed)
        return {name: np.asarray(value) for name, value in zip(self.outputs, results)}


def check_signature(session, package: ModelPackage) -> None:
    where = str(package.manifest_path)
    signature = package.manifest.signature
    graph_inputs = {i.name: i for i in session.get_inputs()}
    graph_outputs = {o.name: o for o in session.get_outputs()}
    declared = {s.name for s in signature.inputs}
    if set(graph_inputs) != declared:
        raise ManifestError(where, "signature.inputs", f"the ONNX graph takes {', '.join(sorted(graph_inputs))}, "
                            f"model.yaml declares {', '.join(sorted(declared))}",
                            "declare exactly the graph's inputs, by their names in the graph")
    for kind, specs, graph in (("inputs", signature.inputs, graph_inputs), ("outputs", signature.outputs, graph_outputs)):
        for index, spec in enumerate(specs):
            node = graph.get(spec.name)
            if node is None:
                raise ManifestError(where, f"signature.{kind}[{index}].name",
                                    f"the ONNX graph has no output '{spec.name}' (it has {', '.join(graph)})",
                                    "name one of the graph's outputs")
            wanted = ONNX_TYPES.get(node.type)
            if wanted is not None and wanted != spec.datatype:
                raise ManifestError(where, f"signature.{kind}[{index}].datatype",
                                    f"'{spec.name}' is {node.type} in the ONNX graph, model.yaml says {spec.datatype}",
                                    f"declare datatype {wanted}")
            dims = _dims(node.shape)
            if node.shape and not _fits(spec.shape, dims):
                raise ManifestError(where, f"signature.{kind}[{index}].shape",
                                    f"'{spec.name}' has shape {dims} in the ONNX graph (-1: any), model.yaml says "
                                    f"{spec.shape}", f"declare shape {dims}")
