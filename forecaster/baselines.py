"""Baselines that need no training, judged on the same candles as the models."""

from __future__ import annotations

import numpy as np

LAST_RETURN = 0  # column of ret_0 (the newest log-return) in every feature set
CERTAIN, UNSURE = 1.0, 0.5


class Persistence:
    """Predict that the last move repeats; a zero last move gives a tie (FLAT)."""

    trained = True

    def __call__(self, x: np.ndarray) -> tuple[float, float, float]:
        last = float(x[LAST_RETURN])
        if last == 0:
            return UNSURE, UNSURE, 0.0
        up = CERTAIN if last > 0 else 1 - CERTAIN
        return up, 1 - up, 0.0
