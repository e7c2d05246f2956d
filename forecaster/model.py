"""The Equinox two-head model, its ensembles, a low-latency compiled predictor, and save/load without pickle.

One forward (`TwoHead.__call__`) serves training, single-window prediction and batch scoring; there is
no second implementation of the network anywhere, so what was trained is exactly what predicts.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from forecaster.config import ModelConfig
from forecaster.errors import UserError

WEIGHTS_FILE = "model.eqx"
SIDECAR_FILE = "model.json"
SIDECAR_FORMAT = 1
TRAINABLE_MODELS = ("twohead", "logreg", "ensemble")
ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "tanh": jnp.tanh,
}
# Columns of every prediction this module returns: mean p_up, mean p_down, member spread.
P_UP, P_DOWN, SPREAD = 0, 1, 2
N_OUTPUTS = 3
# A feature whose training std is below this is constant there; dividing by it would blow up noise.
MIN_STD = 1e-12
SHA_CHUNK_BYTES = 1 << 20
# Sidecar keys the model itself owns; caller metadata may not overwrite them.
SPEC_KEYS = ("name", "n_features", "hidden", "activation", "dropout", "members", "seed")
RESERVED_KEYS = (*SPEC_KEYS, "format", "trained", "weights_sha256")


class TwoHead(eqx.Module):
    """MLP trunk and two independent logistic heads: logit of P(up) and logit of P(down).

    With `hidden=()` the trunk is empty and the heads are two logistic regressions on the input.
    Returns logits so that training can use a numerically stable BCE-with-logits.
    """

    trunk: tuple[eqx.nn.Linear, ...]
    up: eqx.nn.Linear
    down: eqx.nn.Linear
    dropout: eqx.nn.Dropout
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        n_features: int,
        hidden: Sequence[int],
        activation: str = "relu",
        dropout: float = 0.0,
        *,
        key: Array,
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r} is not one of {', '.join(ACTIVATIONS)}")
        widths = (n_features, *hidden)
        keys = jax.random.split(key, len(hidden) + 2)
        self.trunk = tuple(
            eqx.nn.Linear(w_in, w_out, key=k)
            for w_in, w_out, k in zip(widths[:-1], widths[1:], keys, strict=False)
        )
        self.up = eqx.nn.Linear(widths[-1], "scalar", key=keys[-2])
        self.down = eqx.nn.Linear(widths[-1], "scalar", key=keys[-1])
        self.dropout = eqx.nn.Dropout(dropout)
        self.activation = activation

    def __call__(self, x: Array, *, inference: bool = True, key: Array | None = None) -> Array:
        """Logits (up, down), shape (2,), for one window x of shape (F,).

        Dropout acts only with `inference=False`, which needs a key; prediction never drops units.
        """
        act = ACTIVATIONS[self.activation]
        keys = [None] * len(self.trunk) if key is None else list(jax.random.split(key, len(self.trunk)))
        for layer, layer_key in zip(self.trunk, keys, strict=True):
            x = self.dropout(act(layer(x)), inference=inference, key=layer_key)
        return jnp.stack([self.up(x), self.down(x)])

    @property
    def n_features(self) -> int:
        return (self.trunk[0] if self.trunk else self.up).in_features


class Ensemble(eqx.Module):
    """K TwoHead members with their parameters stacked on a leading axis, run in one vmapped call."""

    members: TwoHead

    def __init__(
        self,
        keys: Array,
        n_features: int,
        hidden: Sequence[int],
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        def member(key: Array) -> TwoHead:
            return TwoHead(n_features, hidden, activation, dropout, key=key)

        self.members = eqx.filter_vmap(member)(keys)

    def __call__(self, x: Array, *, inference: bool = True, key: Array | None = None) -> Array:
        """Logits (up, down) of every member, shape (K, 2), for one window x of shape (F,).

        In training (`inference=False` and a key) each member draws its own dropout mask.
        """
        if key is None:
            return eqx.filter_vmap(lambda m: m(x, inference=inference))(self.members)
        keys = jax.random.split(key, self.size)
        return eqx.filter_vmap(lambda m, k: m(x, inference=inference, key=k))(self.members, keys)

    @property
    def size(self) -> int:
        return self.members.up.weight.shape[0]

    @property
    def n_features(self) -> int:
        first = self.members.trunk[0] if self.members.trunk else self.members.up
        return first.in_features


Model = TwoHead | Ensemble


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model's skeleton: what goes into the sidecar besides the weights."""

    name: str
    n_features: int
    hidden: tuple[int, ...]
    activation: str = "relu"
    dropout: float = 0.0
    members: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise UserError(f"model spec is invalid: {problem}")

    def _problem(self) -> str | None:
        if self.name not in TRAINABLE_MODELS:
            return f"model {self.name!r} has no weights; choose one of: {', '.join(TRAINABLE_MODELS)}"
        if self.name == "logreg" and self.hidden:
            return f"model=logreg has no hidden layers, got hidden={list(self.hidden)}; use model=twohead"
        if self.n_features < 1 or any(w < 1 for w in self.hidden) or self.members < 1:
            return f"n_features, hidden widths and members must be >= 1 (got {self.to_dict()})"
        if self.activation not in ACTIVATIONS:
            return f"activation {self.activation!r} is not one of {', '.join(ACTIVATIONS)}"
        if not 0.0 <= self.dropout < 1.0:
            return f"dropout must be in [0, 1), got {self.dropout}"
        return None

    @property
    def is_ensemble(self) -> bool:
        return self.name == "ensemble" or self.members > 1

    @classmethod
    def from_config(cls, config: ModelConfig, n_features: int, seed: int) -> ModelSpec:
        return cls(
            name=config.name,
            n_features=n_features,
            hidden=tuple(int(w) for w in config.hidden),
            activation=config.activation,
            dropout=float(config.dropout),
            members=int(config.members),
            seed=seed,
        )

    def to_dict(self) -> dict[str, Any]:
        return {key: list(v) if isinstance(v := getattr(self, key), tuple) else v for key in SPEC_KEYS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        missing = [key for key in SPEC_KEYS if key not in data]
        if missing:
            raise UserError(f"model sidecar lacks {', '.join(missing)}; re-save the model")
        values = {key: data[key] for key in SPEC_KEYS}
        return cls(**{**values, "hidden": tuple(values["hidden"])})


def build(spec: ModelSpec) -> Model:
    """A freshly initialised (untrained) model; the same spec always gives the same weights."""
    key = jax.random.PRNGKey(spec.seed)
    hparams = (spec.n_features, spec.hidden, spec.activation, spec.dropout)
    if spec.is_ensemble:
        return Ensemble(jax.random.split(key, spec.members), *hparams)
    return TwoHead(*hparams, key=key)


def member_logits(model: Model, x: Array) -> Array:
    """Logits of every member at inference, shape (K, 2); K=1 for a single TwoHead."""
    logits = model(x)
    return logits[None] if isinstance(model, TwoHead) else logits


def summarise(model: Model, x: Array) -> Array:
    """One window -> [mean p_up, mean p_down, spread], spread = the larger of the two heads' member std.

    Probabilities are averaged (not logits) so that the ensemble output is a calibrated mixture.
    """
    probs = jax.nn.sigmoid(member_logits(model, x))
    return jnp.concatenate([probs.mean(axis=0), probs.std(axis=0).max(keepdims=True)])


@dataclass(frozen=True)
class BatchProbabilities:
    """Predictions for N windows, float32, one value per row."""

    p_up: np.ndarray
    p_down: np.ndarray
    spread: np.ndarray

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
        self.members = model.size if isinstance(model, Ensemble) else 1

        def one(x: Array) -> Array:
            return summarise(model, x)

        def many(xs: Array) -> Array:
            return jax.lax.map(one, xs) if exact else jax.vmap(one)(xs)

        self._one = jax.jit(one)
        self._many = jax.jit(many)

    def __call__(self, x: np.ndarray) -> tuple[float, float, float]:
        """(p_up, p_down, spread) for one standardised feature vector of shape (F,)."""
        x = np.asarray(x, dtype=np.float32)
        if x.shape != (self.n_features,):
            raise ValueError(f"expected features of shape ({self.n_features},), got {x.shape}")
        p_up, p_down, spread = np.asarray(self._one(x)).tolist()  # faster than jax.Array.tolist
        return p_up, p_down, spread

    def batch(self, xs: np.ndarray) -> BatchProbabilities:
        """Predictions for N standardised feature rows (N, F); compiles once per distinct N."""
        xs = np.asarray(xs, dtype=np.float32)
        if xs.ndim != 2 or xs.shape[1] != self.n_features:
            raise ValueError(f"expected features of shape (N, {self.n_features}), got {xs.shape}")
        out = np.asarray(self._many(xs)) if len(xs) else np.zeros((0, N_OUTPUTS), np.float32)
        return BatchProbabilities(out[:, P_UP], out[:, P_DOWN], out[:, SPREAD])


@dataclass(frozen=True)
class Standardizer:
    """Per-feature mean/std fitted on training rows only, saved in the sidecar, applied everywhere else."""

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


def save(
    directory: str | os.PathLike[str],
    model: Model,
    spec: ModelSpec,
    *,
    trained: bool,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write `<dir>/model.eqx` (leaves only, no pickle) and `<dir>/model.json` (spec + metadata).

    Each file is written to a temporary name and renamed, the sidecar last, so a crash never leaves a
    sidecar pointing at half-written weights. The sidecar records the weights' SHA-256.
    """
    extra = dict(metadata or {})
    clash = sorted(set(extra) & set(RESERVED_KEYS))
    if clash:
        raise ValueError(f"metadata may not set {', '.join(clash)}; they are written by save()")
    if model.n_features != spec.n_features or _structure(model) != _structure(_skeleton(spec)):
        raise ValueError(f"model does not have the structure of {spec}")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_FILE
    partial = weights.with_suffix(".eqx.tmp")
    eqx.tree_serialise_leaves(partial, model)
    os.replace(partial, weights)
    sidecar = {
        "format": SIDECAR_FORMAT,
        **spec.to_dict(),
        "trained": trained,
        "weights_sha256": _sha256(weights),
        **extra,
    }
    _write_json(folder / SIDECAR_FILE, sidecar)
    return folder


def load(directory: str | os.PathLike[str], expect: Mapping[str, Any] | None = None) -> tuple[Model, dict]:
    """Rebuild the skeleton from the sidecar, check it against `expect`, and read the weights.

    Every problem a user can cause (missing, corrupt or mismatched files) is a one-line UserError.
    """
    folder = Path(directory)
    sidecar_path, weights = folder / SIDECAR_FILE, folder / WEIGHTS_FILE
    for path in (sidecar_path, weights):
        if not path.is_file():
            raise UserError(
                f"no saved model at {folder}: {path.name} is missing (train one or fix model.path)"
            )
    try:
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{sidecar_path} is not a readable model sidecar ({exc}); re-save the model") from exc
    if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT:
        raise UserError(f"{sidecar_path} is not a format-{SIDECAR_FORMAT} model sidecar; re-save the model")
    if expect:
        check_sidecar(sidecar, expect, source=f"model at {folder}")
    try:
        spec = ModelSpec.from_dict(sidecar)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{sidecar_path} holds malformed hyperparameters ({exc}); re-save the model") from exc
    if sidecar.get("weights_sha256") != _sha256(weights):
        raise UserError(
            f"{weights} does not match the checksum in {SIDECAR_FILE}; it is corrupt or was replaced"
        )
    try:
        model = eqx.tree_deserialise_leaves(weights, _skeleton(spec))
    except Exception as exc:  # numpy/equinox raise several unrelated types for a bad file
        raise UserError(f"cannot read weights from {weights} ({type(exc).__name__}: {exc})") from exc
    return model, sidecar


def load_compiled(
    directory: str | os.PathLike[str], expect: Mapping[str, Any] | None = None, *, exact: bool = True
) -> tuple[CompiledModel, dict]:
    """`load`, then compile; the sidecar's `trained` flag becomes `.trained` so records can report it."""
    model, sidecar = load(directory, expect)
    return CompiledModel(model, trained=bool(sidecar.get("trained", False)), exact=exact), sidecar


def check_sidecar(sidecar: Mapping[str, Any], expected: Mapping[str, Any], *, source: str = "model") -> None:
    """Raise a one-line UserError naming the first key whose saved value differs from the run's value.

    Values are compared after a JSON round trip, so tuples match lists and numpy values match floats.
    """
    for key, want in expected.items():
        if key not in sidecar:
            raise UserError(
                f"{source} was saved without {key!r} (this run needs {key}={want!r}); re-train it"
            )
        have = sidecar[key]
        if _as_json(have) != _as_json(want):
            raise UserError(
                f"{source} was trained with {key}={have!r} but this run uses {key}={want!r}; "
                "train a model for these settings or point model.path elsewhere"
            )


def _skeleton(spec: ModelSpec) -> Model:
    """The model's structure with shape-only leaves: no PRNG work, so loading skips init's compile cost."""
    return eqx.filter_eval_shape(build, spec)


def _structure(model: Model) -> Any:
    leaves, treedef = jax.tree.flatten(model)
    return treedef, [(getattr(leaf, "shape", None), getattr(leaf, "dtype", type(leaf))) for leaf in leaves]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(SHA_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    partial = path.with_suffix(path.suffix + ".tmp")
    partial.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
