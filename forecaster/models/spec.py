"""The hyperparameters that rebuild a network's skeleton; light (no JAX), so model cards read anywhere."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from forecaster.errors import UserError

# The trunk's nonlinearities; forecaster.models.network maps each name to its function.
ACTIVATION_NAMES = ("relu", "gelu", "tanh")
# The spec's keys in a model card, in the order they are written.
SPEC_KEYS = ("name", "n_features", "hidden", "activation", "dropout", "members", "seed", "ensemble")


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model's skeleton: what goes into the model card besides the weights.

    `name` labels the model (card, registered names, progress bar); nothing dispatches on it.
    `ensemble` stacks the members on a leading axis even when there is one; more than one member
    always does.
    """

    name: str
    n_features: int
    hidden: tuple[int, ...]
    activation: str = "relu"
    dropout: float = 0.0
    members: int = 1
    seed: int = 0
    ensemble: bool = False

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise UserError(f"model spec is invalid: {problem}")

    def _problem(self) -> str | None:
        if self.n_features < 1 or any(w < 1 for w in self.hidden) or self.members < 1:
            return f"n_features, hidden widths and members must be >= 1 (got {self.to_dict()})"
        if self.activation not in ACTIVATION_NAMES:
            return f"activation {self.activation!r} is not one of {', '.join(ACTIVATION_NAMES)}"
        if not 0.0 <= self.dropout < 1.0:
            return f"dropout must be in [0, 1), got {self.dropout}"
        return None

    @property
    def is_ensemble(self) -> bool:
        return self.ensemble or self.members > 1

    def to_dict(self) -> dict[str, Any]:
        return {key: list(v) if isinstance(v := getattr(self, key), tuple) else v for key in SPEC_KEYS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        missing = [key for key in SPEC_KEYS if key not in data]
        if missing:
            raise UserError(f"model sidecar lacks {', '.join(missing)}; re-save the model")
        values = {key: data[key] for key in SPEC_KEYS}
        return cls(**{**values, "hidden": tuple(values["hidden"])})
