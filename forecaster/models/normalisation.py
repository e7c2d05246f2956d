"""Feature standardisation: besides the weights, the only state fitted in training that prediction needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from forecaster.errors import UserError

# A feature whose training std is below this is constant there; dividing by it would blow up noise.
MIN_STD = 1e-12


@dataclass(frozen=True)
class Standardizer:
    """Per-feature mean/std fitted on training rows only, saved in the model card, applied everywhere else.

    `clip`: standardised values are cut to +-clip, so that the heavy tails of price-scale features
    (kurtosis in the hundreds at 1m) cannot dominate a network's input; None: no cut.
    """

    mean: np.ndarray
    std: np.ndarray
    clip: float | None = None

    @classmethod
    def fit(cls, rows: np.ndarray, clip: float | None = None) -> Standardizer:
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or len(rows) == 0:
            raise ValueError(f"fit needs a non-empty (N, F) matrix, got shape {rows.shape}")
        if not np.isfinite(rows).all():
            raise ValueError("fit rows contain NaN or inf; drop incomplete windows before fitting")
        std = rows.std(axis=0)
        # A constant feature carries no information; std 1 maps it to 0 instead of dividing by ~0.
        return cls(rows.mean(axis=0), np.where(std < MIN_STD, 1.0, std), clip)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Standardise a (F,) vector or an (N, F) matrix (float64; the model casts to float32)."""
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        return z if self.clip is None else np.clip(z, -self.clip, self.clip)

    def to_dict(self) -> dict[str, Any]:
        stats: dict[str, Any] = {"mean": self.mean.tolist(), "std": self.std.tolist()}
        return stats if self.clip is None else {**stats, "clip": self.clip}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Standardizer:
        mean, std = np.asarray(data["mean"], dtype=np.float64), np.asarray(data["std"], dtype=np.float64)
        clip = data.get("clip")
        bad_clip = clip is not None and clip <= 0
        if mean.shape != std.shape or mean.ndim != 1 or not (std > 0).all() or bad_clip:
            raise UserError("normalisation stats in the model sidecar are malformed; re-train the model")
        return cls(mean, std, None if clip is None else float(clip))
