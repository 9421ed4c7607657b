"""Train the handwritten-digits classifier served by Triton and save its weights as NumPy arrays.

Data: scikit-learn's bundled `load_digits` (1,797 images of 8x8 pixels, values 0-16), so training
needs no download. Model: a multi-layer perceptron (64 -> 64 -> 32 -> 10) fitted by scikit-learn;
its weights are saved to `model_repository/digits_mlp/1/weights.npz`, and the Triton Python model
(`1/model.py`) runs the same forward pass with NumPy (or on the GPU with CuPy/PyTorch when Triton
gives it a GPU instance). Run: `python train.py` (about 3 s); set-up runs `python train.py --if-missing`,
which does nothing when the weights are newer than this file.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "model_repository" / "digits_mlp" / "1" / "weights.npz"


def main() -> None:
    if "--if-missing" in sys.argv and WEIGHTS.exists() and WEIGHTS.stat().st_mtime >= Path(__file__).stat().st_mtime:
        return
    digits = load_digits()
    # Scale pixels to [0, 1] (the model does the same with `pixels / 16`): inputs of 0-16 stay the contract.
    x = digits.data.astype(np.float32) / 16.0
    x_train, x_test, y_train, y_test = train_test_split(x, digits.target, test_size=0.25, random_state=0,
                                                        stratify=digits.target)
    model = MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=400, random_state=0)
    model.fit(x_train, y_train)
    accuracy = model.score(x_test, y_test)
    arrays = {}
    for i, (weights, bias) in enumerate(zip(model.coefs_, model.intercepts_)):
        arrays[f"w{i}"] = weights.astype(np.float32)
        arrays[f"b{i}"] = bias.astype(np.float32)
    arrays["classes"] = model.classes_.astype(np.int64)
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    np.savez(WEIGHTS, **arrays)
    fingerprint = hashlib.sha256(digits.data.tobytes()).hexdigest()[:16]
    print(f"digits_mlp: test accuracy {accuracy:.3f}; data sha256 {fingerprint}...; weights {WEIGHTS}")


if __name__ == "__main__":
    main()
