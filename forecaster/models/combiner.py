"""model=combiner: the reward-weighted combination of other live predictors of one timeframe.

An entry of `live.predictors` like any other, whose inputs are its members' predictions rather than
features (forecaster/combined.py; weights by Hedge, forecaster/hedge.py). It has no weights and no
row predictor, so it cannot run alone: `mode=live model=combiner` and mode=train refuse it. Light at
import (no JAX): config validation builds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from forecaster.errors import ConfigError, UserError
from forecaster.models.base import Combining
from forecaster.schema import bounded

if TYPE_CHECKING:
    from forecaster.combined import CombinedPredictor
    from forecaster.config import Config
    from forecaster.models.base import RowPredictor


@dataclass(frozen=True)
class Combiner:
    """Hedge over `predictors` (names of other live.predictors entries; null: every other
    non-combining entry of the same timeframe), learning rate `eta`, points over the last `window`
    settled candles (null: all)."""

    trainable: ClassVar[bool] = False
    path: ClassVar[str | None] = None  # no weights, from anywhere
    uri: ClassVar[str | None] = None
    name: str = "combiner"
    eta: float = bounded(0.1, gt=0)
    window: int | None = bounded(None, ge=1)
    predictors: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.predictors is not None:
            object.__setattr__(self, "predictors", tuple(str(name) for name in self.predictors))

    def members(self, label: str, timeframe: str, others: Mapping[str, Config]) -> tuple[str, ...]:
        """The entries this one combines, among `others` (every live predictor's config by name);
        one-line ConfigErrors for a name that is not there, another timeframe or another combiner."""
        where = f"live.predictors: {label}"
        if self.predictors is None:
            chosen = [
                name
                for name, each in others.items()
                if name != label
                and each.timeframe.name == timeframe
                and not isinstance(each.model, Combining)
            ]
            if not chosen:
                raise ConfigError(f"{where} has no other predictor of timeframe {timeframe} to combine")
            return tuple(chosen)
        if not self.predictors:
            raise ConfigError(f"{where}: predictors=[] combines nothing; name entries or leave it null")
        for name in self.predictors:
            if name not in others or name == label:
                names = ", ".join(n for n in others if n != label)
                raise ConfigError(f"{where} combines {name!r}, which is not another entry; entries: {names}")
            if isinstance(others[name].model, Combining):
                raise ConfigError(f"{where} combines {name!r}, another combiner; name its members instead")
            if (other := others[name].timeframe.name) != timeframe:
                raise ConfigError(
                    f"{where} ({timeframe}) combines {name!r} of timeframe {other}; "
                    "a combiner's members share its timeframe"
                )
        if len(set(self.predictors)) != len(self.predictors):
            raise ConfigError(f"{where} lists a predictor twice; list each once")
        return self.predictors

    def combined(self, config: Config, members: tuple[str, ...], folder: Path) -> CombinedPredictor:
        """The live predictor of the entry whose whole config is `config`, recording in `folder` beside
        its members' folders; what an earlier session recorded there is replayed, so that its weights
        go on where they stopped."""
        from forecaster.combined import CombinerSettings, resumed
        from forecaster.scoring import ScoreRule

        if config.flat.coverage is not None:
            raise ConfigError(
                f"flat=coverage takes its margin from a trained model's validation rows; model={self.name} "
                "has none: give its entry another flat"
            )
        settings = CombinerSettings(
            model=self.name,
            timeframe=config.timeframe.name,
            members=members,
            eta=self.eta,
            window=self.window,
            score=ScoreRule.from_config(config.live),
            rule=config.flat,
        )
        return resumed(settings, folder, config.sink)

    def untrained(self, n_features: int, seed: int) -> RowPredictor:
        """Where every path that would run it alone ends (spec, fit and load are never reached: it is
        not trainable and has no weights)."""
        raise UserError(
            f"model={self.name} combines other live predictors and predicts nothing alone: give it as an "
            f"entry of live.predictors beside them, e.g. live.predictors=[{{model: twohead}}, "
            f"{{model: logreg}}, {{model: {self.name}}}]"
        )
