"""A plain Python model: the function meshserve calls gets and returns named numpy arrays."""

from pathlib import Path

import numpy as np

_fitted = np.load(Path(__file__).with_name("centroids.npz"))
CENTROIDS = _fitted["centroids"]
SPECIES = np.array([name.encode() for name in _fitted["species"]], dtype=object)


def predict(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    measurements = inputs["measurements"]
    distances = np.linalg.norm(measurements[:, None, :] - CENTROIDS[None, :, :], axis=2)
    nearest = distances.argmin(axis=1)
    return {"species": SPECIES[nearest], "distance": distances.min(axis=1).astype(np.float32)}
