"""The Equinox two-head network and its stacked ensemble, built from a ModelSpec.

One forward (`TwoHeadNet.__call__`) serves training, single-window prediction and batch scoring;
there is no second implementation of the network anywhere, so what was trained is exactly what
predicts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array
from jaxtyping import Float, PRNGKeyArray, UInt32

from forecaster.models.spec import ModelSpec

# One function per name of spec.ACTIVATION_NAMES (a test checks they agree).
ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "tanh": jnp.tanh,
}
# Columns of every summarised prediction: mean p_up, mean p_down, member spread.
P_UP, P_DOWN, SPREAD = 0, 1, 2
N_OUTPUTS = 3


class TwoHeadNet(eqx.Module):
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
        key: PRNGKeyArray,
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

    def __call__(
        self, x: Float[Array, " features"], *, inference: bool = True, key: PRNGKeyArray | None = None
    ) -> Float[Array, " 2"]:
        """Logits (up, down) for one window x.

        Dropout acts only with `inference=False`, which needs a key; prediction never drops units.
        """
        act = ACTIVATIONS[self.activation]
        keys = [None] * len(self.trunk) if key is None else list(jax.random.split(key, len(self.trunk)))
        for layer, layer_key in zip(self.trunk, keys, strict=True):
            x = self.dropout(act(layer(x)), inference=inference, key=layer_key)
        return jnp.stack([self.up(x), self.down(x)])

    @property
    def n_features(self) -> int:
        return _inputs(self.trunk[0] if self.trunk else self.up)


class EnsembleNet(eqx.Module):
    """K TwoHeadNet members with their parameters stacked on a leading axis, run in one vmapped call."""

    members: TwoHeadNet

    def __init__(
        self,
        keys: UInt32[Array, "members 2"],
        n_features: int,
        hidden: Sequence[int],
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        def member(key: PRNGKeyArray) -> TwoHeadNet:
            return TwoHeadNet(n_features, hidden, activation, dropout, key=key)

        self.members = eqx.filter_vmap(member)(keys)

    def __call__(
        self, x: Float[Array, " features"], *, inference: bool = True, key: PRNGKeyArray | None = None
    ) -> Float[Array, "members 2"]:
        """Logits (up, down) of every member for one window x.

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
        return _inputs(self.members.trunk[0] if self.members.trunk else self.members.up)


Model = TwoHeadNet | EnsembleNet


def build(spec: ModelSpec) -> Model:
    """A freshly initialised (untrained) model; the same spec always gives the same weights."""
    key = jax.random.PRNGKey(spec.seed)
    hparams = (spec.n_features, spec.hidden, spec.activation, spec.dropout)
    if spec.is_ensemble:
        return EnsembleNet(jax.random.split(key, spec.members), *hparams)
    return TwoHeadNet(*hparams, key=key)


def member_logits(model: Model, x: Float[Array, " features"]) -> Float[Array, "members 2"]:
    """Logits of every member at inference; one member for a single TwoHeadNet."""
    logits = model(x)
    return logits[None] if isinstance(model, TwoHeadNet) else logits


def summarise(model: Model, x: Float[Array, " features"]) -> Float[Array, " 3"]:
    """One window -> [mean p_up, mean p_down, spread], spread = the larger of the two heads' member std.

    Probabilities are averaged (not logits) so that the ensemble output is a calibrated mixture.
    """
    probs = jax.nn.sigmoid(member_logits(model, x))
    return jnp.concatenate([probs.mean(axis=0), probs.std(axis=0).max(keepdims=True)])


def _inputs(layer: eqx.nn.Linear) -> int:
    """A first layer's input width (our layers never take the "scalar" input Equinox also allows)."""
    assert isinstance(layer.in_features, int)
    return layer.in_features
