"""The two-head model: deterministic init, one forward for single and batch, ensembles, save/load, errors."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from forecaster.config import ModelConfig
from forecaster.errors import UserError
from forecaster.model import (
    SIDECAR_FILE,
    WEIGHTS_FILE,
    CompiledModel,
    Ensemble,
    ModelSpec,
    Standardizer,
    TwoHead,
    build,
    check_sidecar,
    load,
    load_compiled,
    save,
)

N_FEATURES = 19
N_ROWS = 257  # not a power of two: odd tail tiles are where batched matmuls round differently
MEMBERS = 4
TWOHEAD = ModelSpec("twohead", N_FEATURES, (64, 64), seed=0)
ENSEMBLE = ModelSpec("ensemble", N_FEATURES, (64, 64), members=MEMBERS, seed=0)
META = {"timeframe": "1m", "feature_set": "basic", "feature_fingerprint": "abc123"}


def _leaves(model: eqx.Module) -> list[np.ndarray]:
    return [np.asarray(leaf) for leaf in jax.tree.leaves(eqx.filter(model, eqx.is_array))]


def _same(a: eqx.Module, b: eqx.Module) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(_leaves(a), _leaves(b), strict=True))


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((N_ROWS, N_FEATURES))


@pytest.fixture(scope="module")
def twohead() -> CompiledModel:
    return CompiledModel(build(TWOHEAD))


@pytest.fixture(scope="module")
def ensemble() -> CompiledModel:
    return CompiledModel(build(ENSEMBLE))


def test_init_is_deterministic_per_seed_and_differs_between_seeds() -> None:
    assert _same(build(TWOHEAD), build(TWOHEAD))
    other = replace(TWOHEAD, seed=1)
    assert not any(
        np.array_equal(a, b) for a, b in zip(_leaves(build(TWOHEAD)), _leaves(build(other)), strict=True)
    )


def test_ensemble_members_are_distinct() -> None:
    weights = np.asarray(build(ENSEMBLE).members.up.weight)
    assert weights.shape[0] == MEMBERS
    assert len({w.tobytes() for w in weights}) == MEMBERS


def test_logreg_is_two_logistic_heads_on_the_input() -> None:
    spec = ModelSpec.from_config(ModelConfig(name="logreg", hidden=[]), N_FEATURES, seed=0)
    model = build(spec)
    assert isinstance(model, TwoHead) and model.trunk == ()
    assert model.up.in_features == model.down.in_features == N_FEATURES
    with pytest.raises(UserError, match="logreg has no hidden layers"):
        ModelSpec.from_config(ModelConfig(name="logreg", hidden=[8]), N_FEATURES, seed=0)


def test_forward_returns_two_logits_and_probabilities_inside_0_1(rows: np.ndarray, ensemble) -> None:
    model = build(TWOHEAD)
    assert model(jnp.asarray(rows[0], jnp.float32)).shape == (2,)
    for compiled in (CompiledModel(build(ModelSpec("logreg", N_FEATURES, ()))), ensemble):
        out = compiled.batch(rows)
        for p in (out.p_up, out.p_down):
            assert p.dtype == np.float32 and ((p > 0) & (p < 1)).all()
        assert (out.spread >= 0).all()


def test_batch_equals_single_window_bit_for_bit(rows: np.ndarray, twohead, ensemble) -> None:
    for compiled in (twohead, ensemble):
        batch = compiled.batch(rows)
        single = np.array([compiled(row) for row in rows], dtype=np.float32)
        np.testing.assert_array_equal(single, np.stack([batch.p_up, batch.p_down, batch.spread], axis=1))


def test_fast_batch_agrees_within_float32_rounding(rows: np.ndarray, twohead) -> None:
    fast = CompiledModel(twohead.model, exact=False).batch(rows)
    exact = twohead.batch(rows)
    np.testing.assert_allclose(fast.p_up, exact.p_up, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fast.p_down, exact.p_down, rtol=0, atol=1e-6)


def test_ensemble_of_identical_members_equals_the_single_model(rows: np.ndarray, twohead) -> None:
    key = jax.random.PRNGKey(TWOHEAD.seed)
    clones = Ensemble(jnp.stack([key] * MEMBERS), N_FEATURES, TWOHEAD.hidden)
    assert _same(jax.tree.map(lambda a: a[0] if eqx.is_array(a) else a, clones.members), twohead.model)
    out, single = CompiledModel(clones).batch(rows), twohead.batch(rows)
    np.testing.assert_allclose(out.p_up, single.p_up, rtol=0, atol=1e-7)
    np.testing.assert_allclose(out.p_down, single.p_down, rtol=0, atol=1e-7)
    assert np.abs(out.spread).max() <= 1e-7
    assert (single.spread == 0).all()


def test_dropout_acts_only_in_training(rows: np.ndarray) -> None:
    x = jnp.asarray(rows[0], jnp.float32)
    train = eqx.filter_jit(lambda model, key: model(x, inference=False, key=key))
    model = build(replace(TWOHEAD, dropout=0.5))
    np.testing.assert_array_equal(model(x), model(x, inference=True))
    assert not np.array_equal(train(model, jax.random.PRNGKey(0)), train(model, jax.random.PRNGKey(1)))
    compiled = CompiledModel(model)
    assert compiled(rows[0]) == compiled(rows[0])
    members = build(replace(ENSEMBLE, dropout=0.5))
    assert train(members, jax.random.PRNGKey(0)).shape == (MEMBERS, 2)


def test_fresh_model_is_untrained(twohead) -> None:
    assert twohead.trained is False
    assert CompiledModel(twohead.model, trained=True).trained is True


def test_save_load_is_bit_identical(tmp_path: Path, rows: np.ndarray, twohead, ensemble) -> None:
    for spec, compiled in ((TWOHEAD, twohead), (ENSEMBLE, ensemble)):
        folder = tmp_path / spec.name
        save(folder, compiled.model, spec, trained=True, metadata=META)
        model, sidecar = load(folder, expect={"n_features": N_FEATURES, **META})
        assert load_compiled(folder)[0].trained is True
        assert _same(model, compiled.model)
        assert sidecar["trained"] is True and sidecar["hidden"] == list(spec.hidden)
        assert ModelSpec.from_dict(sidecar) == spec
        loaded = CompiledModel(model).batch(rows)
        original = compiled.batch(rows)
        np.testing.assert_array_equal(loaded.p_up, original.p_up)
        np.testing.assert_array_equal(loaded.p_down, original.p_down)


def test_metadata_cannot_overwrite_the_spec(tmp_path: Path, twohead) -> None:
    with pytest.raises(ValueError, match="n_features"):
        save(tmp_path, twohead.model, TWOHEAD, trained=False, metadata={"n_features": 3})


@pytest.fixture
def saved(tmp_path: Path, twohead) -> Path:
    return save(tmp_path / "m", twohead.model, TWOHEAD, trained=False, metadata=META)


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        ({"timeframe": "5m"}, "trained with timeframe='1m' but this run uses timeframe='5m'"),
        ({"n_features": 20}, "n_features=19 but this run uses n_features=20"),
        ({"feature_fingerprint": "zzz"}, "feature_fingerprint='abc123'"),
        ({"threshold_bps": 0}, "saved without 'threshold_bps'"),
    ],
)
def test_sidecar_mismatch_is_a_one_line_user_error(saved: Path, expect: dict, message: str) -> None:
    with pytest.raises(UserError, match=message) as info:
        load(saved, expect=expect)
    assert "\n" not in str(info.value)


def test_check_sidecar_compares_json_values() -> None:
    check_sidecar({"hidden": [64, 64], "dropout": 0}, {"hidden": (64, 64), "dropout": 0.0})


def test_missing_model_files_are_user_errors(tmp_path: Path, saved: Path) -> None:
    with pytest.raises(UserError, match=f"{SIDECAR_FILE} is missing"):
        load(tmp_path / "nowhere")
    (saved / WEIGHTS_FILE).unlink()
    with pytest.raises(UserError, match=f"{WEIGHTS_FILE} is missing"):
        load(saved)


def test_corrupt_files_are_user_errors(saved: Path) -> None:
    weights = saved / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(UserError, match="does not match the checksum"):
        load(saved)
    sidecar = json.loads((saved / SIDECAR_FILE).read_text())
    (saved / SIDECAR_FILE).write_text(json.dumps({**sidecar, "weights_sha256": _sha(weights)}))
    with pytest.raises(UserError, match="cannot read weights"):
        load(saved)
    (saved / SIDECAR_FILE).write_text("{not json")
    with pytest.raises(UserError, match="not a readable model sidecar"):
        load(saved)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_inputs_of_the_wrong_shape_are_refused(twohead) -> None:
    with pytest.raises(ValueError, match=r"shape \(19,\)"):
        twohead(np.zeros(N_FEATURES + 1))
    with pytest.raises(ValueError, match=r"shape \(N, 19\)"):
        twohead.batch(np.zeros((2, N_FEATURES - 1)))
    assert len(twohead.batch(np.zeros((0, N_FEATURES)))) == 0


def test_standardizer_fits_applies_and_round_trips(rows: np.ndarray) -> None:
    train = rows.copy()
    train[:, 3] = 5.0  # a constant feature must not divide by zero
    scaler = Standardizer.fit(train)
    out = scaler(train)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-12)
    assert (out[:, 3] == 0).all() and np.isfinite(out).all()
    again = Standardizer.from_dict(json.loads(json.dumps(scaler.to_dict())))
    np.testing.assert_array_equal(again(rows[0]), scaler(rows[0]))
    with pytest.raises(ValueError, match="NaN"):
        Standardizer.fit(np.full((3, 2), np.nan))
