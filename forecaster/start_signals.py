"""The Hydra callback (conf/config.yaml `hydra.callbacks`) that lets Ctrl-C and SIGTERM in again.

forecaster.__main__ holds both signals while Hydra is imported, the command line is checked and
Hydra composes the config (forecaster.interrupts.hold_signals); a signal sent meanwhile is pending,
and arrives here, once the config is built and before any job runs: one line and exit 130 / 143.
Every process that runs jobs passes here (a joblib worker inherits the held signals).
"""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from forecaster.interrupts import release_signals


class ReleaseSignals(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        release_signals()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        release_signals()

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        release_signals()
