"""Triton Python-backend model: the digits MLP's forward pass over NumPy weights from train.py.

On a GPU instance (Triton resolved KIND_AUTO to KIND_GPU) the weights move to that GPU with CuPy
or PyTorch when either is installed; otherwise, and on CPU instances, NumPy does the work.
Triton's dynamic batcher hands `execute` several requests at once: they are scored as one matrix.
"""

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils


def mlp_array_api(xp, pixels, weights):
    """Forward pass with NumPy or CuPy (same array API): scale, ReLU layers, softmax."""
    h = pixels / 16.0
    for i, (w, b) in enumerate(weights):
        h = h @ w + b
        if i < len(weights) - 1:
            h = xp.maximum(h, 0)
    e = xp.exp(h - h.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def mlp_torch(torch, pixels, weights):
    """The same forward pass with PyTorch tensors."""
    h = pixels / 16.0
    for i, (w, b) in enumerate(weights):
        h = h @ w + b
        if i < len(weights) - 1:
            h = torch.relu(h)
    return torch.softmax(h, dim=1)


class TritonPythonModel:
    def initialize(self, args):
        weights_path = Path(__file__).resolve().parent / "weights.npz"
        if not weights_path.exists():
            raise FileNotFoundError(f"{weights_path} is missing: run examples/triton_digits/train.py")
        saved = np.load(weights_path)
        layer_count = sum(1 for k in saved.files if k.startswith("w"))
        self.weights = [(saved[f"w{i}"], saved[f"b{i}"]) for i in range(layer_count)]
        self.classes = saved["classes"]
        self.forward = lambda pixels: mlp_array_api(np, pixels, self.weights)
        self.device = "cpu (numpy)"
        if args["model_instance_kind"] == "GPU":
            self.device = self._move_to_gpu(int(args["model_instance_device_id"]))
        config = json.loads(args["model_config"])
        pb_utils.Logger.log_info(f"digits_mlp instance {args['model_instance_name']} on {self.device}, "
                                 f"max batch {config.get('max_batch_size')}")

    def _move_to_gpu(self, device_id: int) -> str:
        """Put the weights on the instance's GPU with CuPy or PyTorch; say where the work runs."""
        try:
            import cupy

            cupy.cuda.Device(device_id).use()
            weights = [(cupy.asarray(w), cupy.asarray(b)) for w, b in self.weights]
            self.forward = lambda pixels: cupy.asnumpy(mlp_array_api(cupy, cupy.asarray(pixels), weights))
            return f"gpu {device_id} (cupy)"
        except ImportError:
            pass
        try:
            import torch

            device = f"cuda:{device_id}"
            weights = [(torch.from_numpy(w).to(device), torch.from_numpy(b).to(device)) for w, b in self.weights]
            self.forward = lambda pixels: mlp_torch(torch, torch.from_numpy(pixels).to(device), weights).cpu().numpy()
            return f"gpu {device_id} (torch)"
        except ImportError:
            return f"cpu (numpy; Triton gave GPU {device_id} but neither cupy nor torch is installed)"

    def execute(self, requests):
        batches = [pb_utils.get_input_tensor_by_name(r, "pixels").as_numpy() for r in requests]
        probabilities = self.forward(np.concatenate(batches).astype(np.float32, copy=False)).astype(np.float32)
        digits = self.classes[probabilities.argmax(axis=1)].astype(np.int64).reshape(-1, 1)
        responses, start = [], 0
        for batch in batches:
            end = start + len(batch)
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("probabilities", probabilities[start:end]),
                pb_utils.Tensor("digit", digits[start:end]),
            ]))
            start = end
        return responses
