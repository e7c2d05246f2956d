"""Calibration: one monotone map per head, fitted on validation rows and stored in the model card.

A network trained on noisy 1m moves is rarely calibrated: its p_up may sit at 0.52 when the move is
up 49 % of the time. `train.calibration` (conf/train/calibration) chooses how the map is fitted, on
the validation rows of each fold only; the last fold's map goes into the card and the Predictor
applies it, so live, replay, eval and training's own scores see the same calibrated probabilities.

Light at import (numpy only): the options are built while the config is validated.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, ClassVar, Protocol

import numpy as np

from forecaster.errors import ConfigError, UserError
from forecaster.schema import bounded

log = logging.getLogger(__name__)
LOGIT_CLIP = 1e-7  # probabilities are kept this far from 0 and 1 before taking logits


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), LOGIT_CLIP, 1.0 - LOGIT_CLIP)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free for any z


class HeadMap(Protocol):
    """A fitted, monotone map of one head's probabilities."""

    method: ClassVar[str]

    def __call__(self, p: np.ndarray) -> np.ndarray: ...

    def to_json(self) -> dict[str, Any]: ...

    def summary(self) -> str:
        """A few words for logs."""
        ...


@dataclass(frozen=True)
class TemperatureMap:
    """p -> sigmoid(logit(p) / temperature): > 1 softens an over-confident head, < 1 sharpens."""

    temperature: float
    method: ClassVar[str] = "temperature"

    def __call__(self, p: np.ndarray) -> np.ndarray:
        return _sigmoid(_logit(p) / self.temperature)

    def to_json(self) -> dict[str, Any]:
        return {"temperature": self.temperature}

    def summary(self) -> str:
        return f"temperature {self.temperature:.3g}"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TemperatureMap:
        return cls(float(data["temperature"]))


@dataclass(frozen=True)
class IsotonicMap:
    """The non-decreasing step fit of validation frequencies, interpolated between its knots."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    method: ClassVar[str] = "isotonic"

    def __call__(self, p: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(p, np.float64), self.x, self.y)

    def to_json(self) -> dict[str, Any]:
        return {"x": list(self.x), "y": list(self.y)}

    def summary(self) -> str:
        return f"isotonic, {len(self.x)} knots"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IsotonicMap:
        x, y = tuple(float(v) for v in data["x"]), tuple(float(v) for v in data["y"])
        if not x or len(x) != len(y) or any(b <= a for a, b in pairwise(x)):
            raise ValueError("isotonic knots must be non-empty, paired and strictly increasing in x")
        return cls(x, y)


@dataclass(frozen=True)
class PlattMap:
    """p -> sigmoid(slope * logit(p) + intercept): a temperature (1 / slope) plus a shift of the base rate."""

    slope: float
    intercept: float
    method: ClassVar[str] = "platt"

    def __call__(self, p: np.ndarray) -> np.ndarray:
        return _sigmoid(self.slope * _logit(p) + self.intercept)

    def to_json(self) -> dict[str, Any]:
        return {"slope": self.slope, "intercept": self.intercept}

    def summary(self) -> str:
        return f"platt, slope {self.slope:.3g}, intercept {self.intercept:+.3g}"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlattMap:
        return cls(float(data["slope"]), float(data["intercept"]))


MAPS = {kind.method: kind for kind in (TemperatureMap, PlattMap, IsotonicMap)}


@dataclass(frozen=True)
class Calibration:
    """The fitted maps of both heads, as the model card stores them."""

    up: HeadMap
    down: HeadMap

    def __call__(self, p_up: np.ndarray, p_down: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.up(p_up), self.down(p_down)

    def one(self, p_up: float, p_down: float) -> tuple[float, float]:
        """One row, through the very same vectorised maps as a batch."""
        up, down = self(np.array([p_up]), np.array([p_down]))
        return float(up[0]), float(down[0])

    def describe(self) -> str:
        return f"p_up: {self.up.summary()}; p_down: {self.down.summary()}"

    def to_json(self) -> dict[str, Any]:
        return {"method": self.up.method, "up": self.up.to_json(), "down": self.down.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Calibration:
        kind = MAPS.get(str(data["method"]))
        if kind is None:
            raise ValueError(f"unknown calibration method {data['method']!r}; known: {', '.join(MAPS)}")
        return cls(kind.from_json(data["up"]), kind.from_json(data["down"]))


class Calibrator(Protocol):
    """A train.calibration option: fits a Calibration on validation rows, or None for no calibration."""

    def fit(
        self, p_up: np.ndarray, p_down: np.ndarray, y_up: np.ndarray, y_down: np.ndarray
    ) -> Calibration | None:
        """Maps fitted on these (validation) probabilities and their 0/1 targets."""
        ...


@dataclass(frozen=True)
class NoCalibration:
    """The network's probabilities as they are."""

    def fit(self, p_up: np.ndarray, p_down: np.ndarray, y_up: np.ndarray, y_down: np.ndarray) -> None:
        return None


@dataclass(frozen=True)
class Temperature:
    """One temperature per head, minimising the validation log loss (Guo et al. 2017).

    The loss is convex in 1/temperature, so Newton's method from 1 converges in a few steps; the
    temperature is kept within [min_temperature, max_temperature].
    """

    min_temperature: float = bounded(0.05, gt=0)
    max_temperature: float = bounded(100.0, gt=0)
    iterations: int = bounded(50, ge=1)
    tolerance: float = bounded(1e-9, gt=0)  # stop when a Newton step changes 1/temperature by less

    def __post_init__(self) -> None:
        if self.min_temperature >= self.max_temperature:
            raise ConfigError(
                f"train.calibration.min_temperature={self.min_temperature} must be below "
                f"max_temperature={self.max_temperature}"
            )

    def fit(self, p_up: np.ndarray, p_down: np.ndarray, y_up: np.ndarray, y_down: np.ndarray) -> Calibration:
        up, down = self.head(p_up, y_up), self.head(p_down, y_down)
        for name, head in (("p_up", up), ("p_down", down)):
            if math.isclose(head.temperature, self.max_temperature):
                log.warning(
                    "calibration: %s needs the largest temperature allowed (%g): on validation its "
                    "ranking carries almost no information, so its probabilities shrink to 1/2",
                    name,
                    self.max_temperature,
                )
        return Calibration(up, down)

    def head(self, p: np.ndarray, y: np.ndarray) -> TemperatureMap:
        z, y = _logit(p), np.asarray(y, np.float64)
        low, high = 1.0 / self.max_temperature, 1.0 / self.min_temperature
        beta = 1.0
        for _ in range(self.iterations):
            q = _sigmoid(beta * z)
            curvature = float(np.sum(q * (1.0 - q) * z * z))
            if curvature <= 0.0:  # every logit is 0: there is nothing to scale
                break
            step = float(np.sum((q - y) * z)) / curvature
            beta = min(max(beta - step, low), high)
            if abs(step) < self.tolerance:
                break
        return TemperatureMap(1.0 / beta)


@dataclass(frozen=True)
class Platt:
    """Slope and intercept per head on the logit, minimising the validation log loss (Platt 1999).

    Unlike a temperature it can also move the probabilities to the validation base rate (about 0.485
    for "up" when zero moves count as not up), which is where a head without information belongs.
    The slope is kept >= 0: calibration never reverses a head's ranking on the strength of validation.
    Newton's method on the convex loss, with `ridge` added to the curvature so that a constant head
    (every logit equal) still has a step.
    """

    iterations: int = bounded(50, ge=1)
    tolerance: float = bounded(1e-9, gt=0)  # stop when a Newton step moves both parameters by less
    ridge: float = bounded(1e-9, gt=0)

    def fit(self, p_up: np.ndarray, p_down: np.ndarray, y_up: np.ndarray, y_down: np.ndarray) -> Calibration:
        return Calibration(self.head(p_up, y_up), self.head(p_down, y_down))

    def head(self, p: np.ndarray, y: np.ndarray) -> PlattMap:
        design = np.column_stack([_logit(p), np.ones(len(p))])
        y = np.asarray(y, np.float64)
        weights = np.array([1.0, 0.0])
        for _ in range(self.iterations):
            q = _sigmoid(design @ weights)
            gradient = design.T @ (q - y)
            curvature = (design * (q * (1.0 - q))[:, None]).T @ design + self.ridge * np.eye(2)
            step = np.linalg.solve(curvature, gradient)
            weights = weights - step
            if np.max(np.abs(step)) < self.tolerance:
                break
        if weights[0] < 0.0:  # the loss is convex: with the slope held >= 0 its optimum is the base rate
            base_rate = float(np.clip(np.mean(y), LOGIT_CLIP, 1.0 - LOGIT_CLIP))
            return PlattMap(0.0, float(_logit(np.array([base_rate]))[0]))
        return PlattMap(float(weights[0]), float(weights[1]))


@dataclass(frozen=True)
class Isotonic:
    """A non-decreasing step function per head, by pool-adjacent-violators (Zadrozny & Elkan 2002).

    More flexible than a temperature and so more prone to fit validation noise: prefer it with many
    validation rows. Its output is kept within [clip, 1 - clip] so that log loss stays finite.
    """

    clip: float = bounded(1e-3, gt=0, lt=0.5)

    def fit(self, p_up: np.ndarray, p_down: np.ndarray, y_up: np.ndarray, y_down: np.ndarray) -> Calibration:
        return Calibration(self.head(p_up, y_up), self.head(p_down, y_down))

    def head(self, p: np.ndarray, y: np.ndarray) -> IsotonicMap:
        xs, inverse = np.unique(np.asarray(p, np.float64), return_inverse=True)
        if len(xs) == 0:
            raise UserError("train.calibration=isotonic needs validation rows; enlarge train.val_fraction")
        weights = np.bincount(inverse).astype(np.float64)
        means = np.bincount(inverse, weights=np.asarray(y, np.float64)) / weights
        blocks = _pool_adjacent_violators(means, weights)
        knots_x: list[float] = []
        knots_y: list[float] = []
        for first, last, value in blocks:
            for index in dict.fromkeys((first, last)):  # one knot where a block is a single value
                knots_x.append(float(xs[index]))
                knots_y.append(float(np.clip(value, self.clip, 1.0 - self.clip)))
        return IsotonicMap(tuple(knots_x), tuple(knots_y))


def _pool_adjacent_violators(means: np.ndarray, weights: np.ndarray) -> list[tuple[int, int, float]]:
    """(first index, last index, value) of the blocks of the weighted non-decreasing least-squares fit."""
    blocks: list[list[float]] = []  # [first, last, weighted mean, weight]
    for index, (mean, weight) in enumerate(zip(means.tolist(), weights.tolist(), strict=True)):
        block = [index, index, mean, weight]
        while blocks and blocks[-1][2] >= block[2]:
            first, _, previous, previous_weight = blocks.pop()
            total = previous_weight + block[3]
            block = [first, block[1], (previous * previous_weight + block[2] * block[3]) / total, total]
        blocks.append(block)
    return [(int(first), int(last), value) for first, last, value, _ in blocks]
