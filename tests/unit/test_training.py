"""Dataset, chronological splits and the Optax loop: it learns a planted pattern, is deterministic,
stops early on noise with the best weights, and never looks ahead."""

from __future__ import annotations

import dataclasses
import itertools

import jax
import numpy as np
import pytest

from forecaster.candles import MINUTE_MS, CandleArray, read_csv
from forecaster.config import TrainConfig
from forecaster.data import SAMPLE_CSV
from forecaster.errors import ConfigError, UserError
from forecaster.features.basic import BasicFeatures
from forecaster.models.network import EnsembleNet, TwoHeadNet
from forecaster.models.spec import ModelSpec
from forecaster.training.dataset import Dataset, make_dataset
from forecaster.training.loop import (
    EpochStats,
    TrainResult,
    bce_per_member,
    class_weights,
    predict_probabilities,
    smoothed,
    train,
)
from forecaster.training.schedules import Constant, WarmupCosine
from forecaster.training.splits import SplitError, split, walk_forward

FEATURES = BasicFeatures(n_returns=8, volume_window=20)
PLANTED_CANDLES = 12_000
SMALL_CANDLES = 3_000
FLIP = 0.03  # the next move repeats the last one except with this probability: ~97% is learnable
TYPICAL_RET = 1e-3
WICK = 5e-4
FAST = TrainConfig(schedule=WarmupCosine(), epochs=4, batch_size=256, learning_rate=3e-3, progress=False)


def planted_candles(n: int, flip: float = FLIP, seed: int = 0) -> CandleArray:
    """1m candles whose next log return has the sign of the last one, flipped with probability `flip`."""
    rng = np.random.default_rng(seed)
    flips = np.where(rng.random(n) < flip, -1.0, 1.0)
    sign = np.cumprod(flips)
    ret = sign * rng.lognormal(np.log(TYPICAL_RET), 0.3, n)
    close = 100.0 * np.exp(np.cumsum(ret))
    open_ = np.r_[100.0, close[:-1]]
    volume = rng.lognormal(0.0, 0.5, n)
    return CandleArray(
        start_ms=np.arange(n, dtype=np.int64) * MINUTE_MS,
        open=open_,
        high=np.maximum(open_, close) * (1 + WICK),
        low=np.minimum(open_, close) * (1 - WICK),
        close=close,
        volume=volume,
        turnover=volume * close,
    ).validate()


def parts(data: Dataset, embargo: int = FEATURES.window) -> tuple[Dataset, Dataset, Dataset]:
    s = split(len(data), 0.15, 0.15, embargo)
    return data[s.train], data[s.val], data[s.test]


def decided_accuracy(p_up: np.ndarray, p_down: np.ndarray, next_ret: np.ndarray) -> float:
    """UP where p_up > p_down, else DOWN, against the sign of the next move (zero moves excluded)."""
    moved = next_ret != 0
    predicted = np.where(p_up > p_down, 1.0, -1.0)
    return float((predicted[moved] == np.sign(next_ret[moved])).mean())


def bce(p_up: np.ndarray, p_down: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(np.stack([p_up, p_down], axis=1), 1e-7, 1 - 1e-7)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


@pytest.fixture(scope="module")
def planted() -> Dataset:
    return make_dataset(planted_candles(PLANTED_CANDLES), FEATURES, 0.0)


# --- dataset -------------------------------------------------------------------------------------------


def test_dataset_rows_align_features_and_next_return() -> None:
    candles = planted_candles(SMALL_CANDLES)
    data = make_dataset(candles, FEATURES, 0.0)
    rows = FEATURES.batch(candles)
    t = np.searchsorted(candles.start_ms, data.candle_ts)
    assert len(data) == SMALL_CANDLES - FEATURES.window  # first full window .. the candle before last
    assert data.X.dtype == np.float64 and data.y.dtype == np.float32 and data.candle_ts.dtype == np.int64
    np.testing.assert_array_equal(data.X, rows[t])
    np.testing.assert_array_equal(data.next_ret, np.diff(np.log(candles.close))[t])
    np.testing.assert_array_equal(data.y[:, 0], data.next_ret > 0)
    np.testing.assert_array_equal(data.y[:, 1], data.next_ret < 0)


def test_threshold_is_a_log_return_in_bps() -> None:
    data = make_dataset(planted_candles(SMALL_CANDLES), FEATURES, threshold_bps=10.0)
    thr = 10.0 / 1e4
    np.testing.assert_array_equal(data.y[:, 0], data.next_ret > thr)
    np.testing.assert_array_equal(data.y[:, 1], data.next_ret < -thr)
    inside = np.abs(data.next_ret) <= thr
    assert inside.any() and not data.y[inside].any()


def test_dataset_has_no_look_ahead() -> None:
    candles = planted_candles(SMALL_CANDLES)
    t = SMALL_CANDLES // 2
    later = slice(t + 1, None)
    scale = np.random.default_rng(1).uniform(0.5, 2.0, SMALL_CANDLES - t - 1)
    changed = dataclasses.replace(
        candles,
        open=np.r_[candles.open[: t + 1], candles.open[later] * scale],
        high=np.r_[candles.high[: t + 1], candles.high[later] * scale],
        low=np.r_[candles.low[: t + 1], candles.low[later] * scale],
        close=np.r_[candles.close[: t + 1], candles.close[later] * scale],
        volume=np.r_[candles.volume[: t + 1], candles.volume[later] * scale],
    ).validate()
    before, after = make_dataset(candles, FEATURES, 0.0), make_dataset(changed, FEATURES, 0.0)
    upto = before.candle_ts <= candles.start_ms[t]
    np.testing.assert_array_equal(before.X[upto], after.X[upto])
    earlier = before.candle_ts < candles.start_ms[t]  # their targets end at or before t
    np.testing.assert_array_equal(before.y[earlier], after.y[earlier])
    assert not np.array_equal(before.X[~upto], after.X[~upto])


def test_gap_drops_every_row_whose_window_or_target_spans_it() -> None:
    candles = planted_candles(SMALL_CANDLES)
    missing = SMALL_CANDLES // 2
    keep = np.arange(SMALL_CANDLES) != missing
    full, gapped = make_dataset(candles, FEATURES, 0.0), make_dataset(candles[keep], FEATURES, 0.0)
    gap_ts = candles.start_ms[missing]
    spans = (full.candle_ts >= gap_ts - MINUTE_MS) & (
        full.candle_ts <= gap_ts + (FEATURES.window - 1) * MINUTE_MS
    )
    assert spans.sum() == FEATURES.window + 1  # the missing candle's own row too
    np.testing.assert_array_equal(gapped.candle_ts, full.candle_ts[~spans])
    np.testing.assert_array_equal(gapped.X, full.X[~spans])
    np.testing.assert_array_equal(gapped.next_ret, full.next_ret[~spans])


# --- splits --------------------------------------------------------------------------------------------


def _bounds(part: slice) -> tuple[int, int]:
    return part.start, part.stop


def test_split_is_chronological_with_embargo() -> None:
    s = split(1000, 0.15, 0.1, embargo=20)
    assert s.sizes() == (1000 - 150 - 100 - 2 * 20, 150, 100)
    assert s.train.start == 0 and s.test.stop == 1000
    assert s.val.start - s.train.stop == 20 and s.test.start - s.val.stop == 20


def test_split_without_room_is_a_one_line_user_error() -> None:
    with pytest.raises(SplitError, match="need more history") as caught:
        split(100, 0.3, 0.3, embargo=30)
    assert isinstance(caught.value, UserError) and isinstance(caught.value, ValueError)
    assert "\n" not in str(caught.value)
    with pytest.raises(SplitError, match="need more history"):
        split(5, 0.1, 0.1, embargo=0)  # val and test would be empty


def test_walk_forward_folds_are_chronological_and_tile_the_end() -> None:
    n, embargo = 2000, 25
    folds = walk_forward(n, 4, 0.1, 0.1, embargo)
    assert walk_forward(n, 1, 0.1, 0.1, embargo) == [split(n, 0.1, 0.1, embargo)]
    assert folds[-1] == split(n, 0.1, 0.1, embargo)
    assert folds[-1].test.stop == n
    for earlier, later in itertools.pairwise(folds):
        assert earlier.test.stop == later.test.start  # consecutive, non-overlapping test blocks
        assert later.train.stop > earlier.train.stop  # expanding window
    for fold in folds:
        assert fold.train.start == 0
        assert fold.val.start - fold.train.stop == embargo and fold.test.start - fold.val.stop == embargo
        assert fold.sizes()[1:] == (200, 200)
    with pytest.raises(SplitError, match=r"fewer train\.folds"):
        walk_forward(n, 9, 0.1, 0.1, embargo)


# --- training ------------------------------------------------------------------------------------------


@pytest.mark.slow  # JAX compiles several networks: seconds each
def test_twohead_learns_a_planted_pattern(planted: Dataset) -> None:
    train_part, val_part, test_part = parts(planted)
    seen: list[EpochStats] = []
    config = dataclasses.replace(FAST, progress=True)  # the bar goes to stderr; pytest captures it
    result = train(
        ModelSpec("twohead", FEATURES.n_features, (64, 64)), train_part, val_part, config, 0, seen.append
    )
    assert isinstance(result.model, TwoHeadNet)
    assert seen == result.history and len(seen) >= 1
    assert result.history[-1].train_loss < result.history[0].train_loss
    p_up, p_down = predict_probabilities(result.model, result.standardizer, test_part.X)
    assert p_up.dtype == np.float64 and p_up.shape == (len(test_part),)
    assert decided_accuracy(p_up, p_down, test_part.next_ret) > 0.9


def test_more_steps_than_the_loop_counts_is_a_config_error_before_compiling(planted: Dataset) -> None:
    train_part, val_part, _ = parts(planted)
    config = dataclasses.replace(FAST, epochs=1_000_000, batch_size=1)  # beyond int32 optimiser steps
    with pytest.raises(ConfigError, match=r"train\.epochs=1000000 x \d+ steps per epoch"):
        train(ModelSpec("logreg", FEATURES.n_features, ()), train_part, val_part, config, 0)


@pytest.mark.slow  # JAX compiles several networks: seconds each
def test_logreg_trains_the_same_way(planted: Dataset) -> None:
    train_part, val_part, test_part = parts(planted)
    result = train(ModelSpec("logreg", FEATURES.n_features, ()), train_part, val_part, FAST, 0)
    p_up, p_down = predict_probabilities(result.model, result.standardizer, test_part.X)
    assert decided_accuracy(p_up, p_down, test_part.next_ret) > 0.85


@pytest.mark.slow  # JAX compiles several networks: seconds each
def test_ensemble_with_dropout_trains(planted: Dataset) -> None:
    train_part, val_part, test_part = parts(planted)
    spec = ModelSpec("ensemble", FEATURES.n_features, (16,), dropout=0.1, members=3)
    config = dataclasses.replace(FAST, epochs=2)
    result = train(spec, train_part, val_part, config, 0)
    assert isinstance(result.model, EnsembleNet) and result.model.size == 3
    assert all(np.isfinite([h.train_loss, h.val_loss]).all() for h in result.history)
    p_up, p_down = predict_probabilities(result.model, result.standardizer, test_part.X)
    assert decided_accuracy(p_up, p_down, test_part.next_ret) > 0.75


@pytest.mark.slow  # JAX compiles several networks: seconds each
def test_bootstrap_members_see_different_resamples(planted: Dataset) -> None:
    """Members of one seed differ only by init and dropout without bootstrap; with it they also
    weigh rows differently, deterministically, and still learn the pattern."""
    train_part, val_part, test_part = parts(planted)
    spec = ModelSpec("ensemble", FEATURES.n_features, (16,), members=3)
    config = dataclasses.replace(FAST, epochs=2, bootstrap=True)
    plain = train(spec, train_part, val_part, dataclasses.replace(config, bootstrap=False), 0)
    boot, again = (train(spec, train_part, val_part, config, 0) for _ in range(2))
    assert all(np.array_equal(a, b) for a, b in zip(_leaves(boot), _leaves(again), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(_leaves(boot), _leaves(plain), strict=True))
    p_up, p_down = predict_probabilities(boot.model, boot.standardizer, test_part.X)
    assert decided_accuracy(p_up, p_down, test_part.next_ret) > 0.75


def test_bootstrap_weights_are_a_weighted_mean_per_member() -> None:
    logits = jax.numpy.zeros((2, 2, 2))  # two rows, two members: every loss is log 2
    y = jax.numpy.array([[1.0, 0.0], [0.0, 1.0]])
    weights = jax.numpy.array([[0.0, 2.0], [3.0, 0.0]])
    expected = np.full(2, np.log(2.0))
    np.testing.assert_allclose(np.asarray(bce_per_member(logits, y, weights)), expected, rtol=1e-6)
    nobody = jax.numpy.zeros((2, 2))  # a member that drew no row at all gets loss 0, not NaN
    assert np.asarray(bce_per_member(logits, y, nobody)).tolist() == [0.0, 0.0]


def test_class_weights_make_both_classes_count_the_same() -> None:
    y = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # up: 3 of 4; down: 2 of 4
    weights = class_weights(y)
    np.testing.assert_allclose(weights, [[0.5 / 0.75, 1.0], [0.5 / 0.25, 1.0]])
    logits = jax.numpy.zeros((4, 2))
    balanced = bce_per_member(logits, jax.numpy.asarray(y), None, jax.numpy.asarray(weights))
    np.testing.assert_allclose(np.asarray(balanced), [np.log(2.0)], rtol=1e-6)  # weights average to 1
    assert class_weights(np.ones((3, 2))).tolist() == [[0.5, 0.5], [1.0, 1.0]]  # no negatives: weight 1


def test_label_smoothing_pulls_targets_to_one_half(planted: Dataset) -> None:
    assert smoothed(np.array([0.0, 1.0]), 0.2).tolist() == [0.1, 0.9]
    assert smoothed(np.array([0.0, 1.0]), 0.0).tolist() == [0.0, 1.0]
    train_part, val_part, test_part = parts(planted)
    config = dataclasses.replace(FAST, epochs=2, label_smoothing=0.2, class_balance=True)
    result = train(ModelSpec("logreg", FEATURES.n_features, ()), train_part, val_part, config, 0)
    p_up, p_down = predict_probabilities(result.model, result.standardizer, test_part.X)
    assert decided_accuracy(p_up, p_down, test_part.next_ret) > 0.85
    assert max(p_up.max(), p_down.max()) < 0.9 + 1e-6  # a smoothed target of 0.9 caps the fit


def _leaves(result: TrainResult) -> list[np.ndarray]:
    return [np.asarray(leaf) for leaf in jax.tree.leaves(result.model)]


def _losses(result: TrainResult) -> list[tuple[float, float]]:
    return [(h.train_loss, h.val_loss) for h in result.history]


@pytest.mark.slow  # JAX compiles several networks: seconds each
def test_same_seed_is_bit_identical_and_other_seeds_differ() -> None:
    data = make_dataset(planted_candles(SMALL_CANDLES), FEATURES, 0.0)
    train_part, val_part, _ = parts(data)
    spec = ModelSpec("twohead", FEATURES.n_features, (16, 16), dropout=0.1)
    config = dataclasses.replace(FAST, epochs=2, batch_size=128)
    first, again, other = (train(spec, train_part, val_part, config, seed) for seed in (7, 7, 8))
    assert all(np.array_equal(a, b) for a, b in zip(_leaves(first), _leaves(again), strict=True))
    assert _losses(first) == _losses(again)
    assert not all(np.array_equal(a, b) for a, b in zip(_leaves(first), _leaves(other), strict=True))
    assert _losses(first) != _losses(other)


@pytest.mark.slow  # JAX compiles several networks: seconds each
def test_early_stopping_on_noise_keeps_the_best_epoch() -> None:
    data = make_dataset(planted_candles(SMALL_CANDLES, flip=0.5, seed=3), FEATURES, 0.0)
    train_part, val_part, _ = parts(data)
    config = TrainConfig(
        epochs=40, batch_size=64, learning_rate=1e-2, schedule=Constant(), patience=2, progress=False
    )
    result = train(ModelSpec("twohead", FEATURES.n_features, (64, 64)), train_part, val_part, config, 0)
    assert result.stopped_early and len(result.history) < config.epochs
    assert len(result.history) == result.best_epoch + config.patience
    best = result.history[result.best_epoch - 1].val_loss
    assert best == min(h.val_loss for h in result.history)
    assert result.history[-1].val_loss > best + 1e-3
    p_up, p_down = predict_probabilities(result.model, result.standardizer, val_part.X)
    assert bce(p_up, p_down, val_part.y) == pytest.approx(best, abs=1e-5)


@pytest.mark.slow  # JAX compiles several networks: seconds each
def test_short_training_on_the_shipped_sample() -> None:
    candles = read_csv(SAMPLE_CSV)
    features = BasicFeatures()
    data = make_dataset(candles, features, 0.0)
    s = split(len(data), 0.15, 0.15, features.window)
    config = TrainConfig(schedule=WarmupCosine(), epochs=2, progress=False)
    result = train(ModelSpec("twohead", features.n_features, (64, 64)), data[s.train], data[s.val], config, 0)
    assert len(result.history) == 2
    assert all(np.isfinite([h.train_loss, h.val_loss, h.samples_per_s]).all() for h in result.history)
    p_up, p_down = predict_probabilities(result.model, result.standardizer, data[s.test].X)
    assert ((p_up >= 0) & (p_up <= 1) & (p_down >= 0) & (p_down <= 1)).all()
