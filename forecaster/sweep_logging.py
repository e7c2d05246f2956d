"""The Hydra callback (conf/config.yaml `hydra.callbacks`) that keeps a search sweep's console plain.

Optuna gives its logger a handler of its own, with colour codes, at INFO ("A new study created in
memory ..."), when the Optuna sweeper imports it, after Hydra has configured logging. Before that
import, this switches Optuna's handler off and passes its warnings to Hydra's plain console, and
drops the sweeper's four set-up lines (study name, storage, sampler, directions); its results
("Best parameters", "Best value") stay.
Light at import (Hydra builds callbacks for every run); Optuna is imported only for its sweeper.
"""

from __future__ import annotations

import logging
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

SWEEPER_LOGGER = "hydra_plugins.hydra_optuna_sweeper._impl"
SETUP_LINES = ("Study name:", "Storage:", "Sampler:", "Directions:")  # how its set-up lines start


class _NoSetupLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(SETUP_LINES)


class QuietOptuna(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if "optuna" not in str(OmegaConf.select(config, "hydra.sweeper._target_", default="")).lower():
            return
        import optuna

        optuna.logging.disable_default_handler()
        optuna.logging.enable_propagation()
        optuna.logging.set_verbosity(logging.WARNING)
        logging.getLogger(SWEEPER_LOGGER).addFilter(_NoSetupLines())
