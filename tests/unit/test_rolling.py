"""Rolling window statistics: equal to the direct window computation, and independent of how much
history precedes a window (what keeps the live window equal to the batch rows)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from forecaster.features.rolling import rolling_max, rolling_mean, rolling_min, rolling_sum, rolling_zscore

VALUES = np.random.default_rng(0).lognormal(3, 1, 1003)


@pytest.mark.parametrize("window", [1, 2, 7, 60])
def test_equal_to_the_direct_window(window: int) -> None:
    direct = sliding_window_view(VALUES, window)
    for rolled, expected in [
        (rolling_sum(VALUES, window), direct.sum(axis=1)),
        (rolling_mean(VALUES, window), direct.mean(axis=1)),
        (rolling_max(VALUES, window), direct.max(axis=1)),
        (rolling_min(VALUES, window), direct.min(axis=1)),
    ]:
        assert np.isnan(rolled[: window - 1]).all()
        np.testing.assert_allclose(rolled[window - 1 :], expected, rtol=1e-13)


@pytest.mark.parametrize("window", [20, 60])
def test_zscore(window: int) -> None:
    direct = sliding_window_view(VALUES, window)
    expected = (direct[:, -1] - direct.mean(axis=1)) / direct.std(axis=1)
    np.testing.assert_allclose(rolling_zscore(VALUES, window)[window - 1 :], expected, rtol=0, atol=1e-11)
    constant = rolling_zscore(np.full(10, 3.0), 4)
    assert np.isnan(constant[:3]).all() and (constant[3:] == 0).all()


def test_a_window_does_not_depend_on_the_history_before_it() -> None:
    for offset in (1, 13, 59):
        np.testing.assert_allclose(
            rolling_mean(VALUES[offset:], 60)[-1], rolling_mean(VALUES, 60)[-1], rtol=1e-14
        )
