"""Feature standardisation: besides the weights, the only state fitted in training that prediction needs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from forecaster.errors import UserError

# A feature whose training std is below this is constant there; dividing by it would blow up noise.
MIN_STD = 1e-12


@dataclass(frozen=True)
class Standardizer:
    """Per-feature mean/std fitted on training rows only, saved in the model card, applied everywhere else."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, rows: np.ndarray) -> Standardizer:
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or len(rows) == 0:
            raise ValueError(f"fit needs a non-empty (N, F) matrix, got shape {rows.shape}")
        if not np.isfinite(rows).all():
            raise ValueError("fit rows contain NaN or inf; drop incomplete windows before fitting")
        std = rows.std(axis=0)
        # A constant feature carries no information; std 1 maps it to 0 instead of dividing by ~0.
        return cls(rows.mean(axis=0), np.where(std < MIN_STD, 1.0, std))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Standardise a (F,) vector or an (N, F) matrix (float64; the model casts to float32)."""
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.std

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[float]]) -> Standardizer:
        mean, std = np.asarray(data["mean"], dtype=np.float64), np.asarray(data["std"], dtype=np.float64)
        if mean.shape != std.shape or mean.ndim != 1 or not (std > 0).all():
            raise UserError("normalisation stats in the model sidecar are malformed; re-train the model")
        return cls(mean, std)
