"""Low-latency compiled inference for a trained or untrained network: one window per call, or a batch."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np
from jax import Array
from jaxtyping import Float

from forecaster.models.network import N_OUTPUTS, P_DOWN, P_UP, SPREAD, EnsembleNet, Model, summarise


@dataclass(frozen=True)
class BatchProbabilities:
    """Predictions for N windows, float32, one value per row."""

    p_up: Float[np.ndarray, " n"]
    p_down: Float[np.ndarray, " n"]
    spread: Float[np.ndarray, " n"]

    def __len__(self) -> int:
        return len(self.p_up)


class CompiledModel:
    """Jitted inference for a trained or untrained model: one window per call, or a batch of windows.

    The weights are closed over, so each call passes a single array through JAX's C++ dispatch
    (measured fastest here; see forecaster/benchmarks/model.py). With `exact=True` the batch path
    runs the very same per-window computation in a `lax.map` loop, so a batch row equals the
    single-window call bit for bit (a vmapped matmul rounds differently per batch shape);
    `exact=False` uses one vmapped call instead, several times faster on CPU and the right
    choice on a GPU, equal to the single path within float32 rounding.
    """

    def __init__(self, model: Model, *, trained: bool = False, exact: bool = True) -> None:
        self.model = model
        self.trained = trained
        self.exact = exact
        self.n_features = model.n_features
        self.members = model.size if isinstance(model, EnsembleNet) else 1

        def one(x: Float[Array, " features"]) -> Float[Array, " 3"]:
            return summarise(model, x)

        def many(xs: Float[Array, "n features"]) -> Float[Array, "n 3"]:
            return jax.lax.map(one, xs) if exact else jax.vmap(one)(xs)

        self._one = jax.jit(one)
        self._many = jax.jit(many)

    def __call__(self, x: Float[np.ndarray, " features"]) -> tuple[float, float, float]:
        """(p_up, p_down, spread) for one standardised feature vector."""
        x = np.asarray(x, dtype=np.float32)
        if x.shape != (self.n_features,):
            raise ValueError(f"expected features of shape ({self.n_features},), got {x.shape}")
        p_up, p_down, spread = np.asarray(self._one(x)).tolist()  # faster than jax.Array.tolist
        return p_up, p_down, spread

    def batch(self, xs: Float[np.ndarray, "n features"]) -> BatchProbabilities:
        """Predictions for N standardised feature rows; compiles once per distinct N."""
        xs = np.asarray(xs, dtype=np.float32)
        if xs.ndim != 2 or xs.shape[1] != self.n_features:
            raise ValueError(f"expected features of shape (N, {self.n_features}), got {xs.shape}")
        out = np.asarray(self._many(xs)) if len(xs) else np.zeros((0, N_OUTPUTS), np.float32)
        return BatchProbabilities(out[:, P_UP], out[:, P_DOWN], out[:, SPREAD])
