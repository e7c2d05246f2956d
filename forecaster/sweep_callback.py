"""The Hydra callback (conf/config.yaml `hydra.callbacks`) that ends every `-m` training sweep with
its leaderboard, written into the sweep dir.

Hydra builds callbacks for every run, so this module imports only Hydra and OmegaConf; the work is
imported when a sweep ends. Sweeps without mode=train jobs are left alone, and a leaderboard that
cannot be made (say, every job failed) is one warning: the sweep's own result stands.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from forecaster.errors import UserError

log = logging.getLogger(__name__)
HYDRA_KEY = "hydra"


class SweepLeaderboard(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from forecaster.config import to_config
        from forecaster.sweeps import is_training_sweep, judge_sweep

        sweep_dir = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
        if not is_training_sweep(sweep_dir):
            return
        task = copy.deepcopy(config)  # the jobs' config: Hydra's own node removed, as run_job does
        with read_write(task), open_dict(task):
            del task[HYDRA_KEY]
        try:
            judged = to_config(task)
            judged.tracking.check_reachable(judged.paths)  # before the work, as every mode does
            judge_sweep(judged, str(sweep_dir), sweep_dir)
        except UserError as exc:
            log.warning("no sweep leaderboard: %s", exc)
