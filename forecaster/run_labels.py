"""What a run is called and tagged: its config as flat MLflow params, the tags that filter runs side
by side, and in a `-m` sweep the sweep's folder and the overrides that set each job apart.

Light at import: Hydra's run state is read inside the functions.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from forecaster.config import Config

SWEEP_OVERRIDES_TAG = "overrides"  # a sweep job's run and registered version: what sets the job apart
MAX_RUN_NAME = 160  # characters of a run name with a sweep job's overrides
CUT = "..."  # ends a run name that was cut


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'flat': {'min_prob': 0.55}} -> {'flat.min_prob': 0.55}: MLflow params are flat.

    Tuples are shown as lists ([64, 64]), as the config files write them.
    """
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return out


def run_tags(config: Config, run_dir: Path) -> dict[str, str]:
    """Tags that make runs easy to filter side by side in the MLflow UI."""
    return {
        "mode": config.mode.name,
        "model": config.model.name,
        "timeframe": config.timeframe.name,
        "flat": config.flat.name,
        "source": config.source.name,
        "run_dir": str(run_dir.resolve()),
        **_sweep_tag(),
    }


def _in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_label() -> str | None:
    """In a `-m` sweep, `job 3: model=logreg seed=1`: Hydra's number of the job (as its launcher logs
    it) and what sets the job apart; None in a single run."""
    from hydra.core.hydra_config import HydraConfig

    if not _in_sweep():
        return None
    return f"job {HydraConfig.get().job.num}: {' '.join(_varied_overrides())}".rstrip()


def _sweep_tag() -> dict[str, str]:
    """In a `-m` sweep, every job's run carries the sweep's directory (one filter shows the sweep) and
    the overrides that set this job apart."""
    from hydra.core.hydra_config import HydraConfig

    if not _in_sweep():
        return {}
    varied = ",".join(_varied_overrides())
    return {"sweep": HydraConfig.get().sweep.dir, **({SWEEP_OVERRIDES_TAG: varied} if varied else {})}


def sweep_run_name(base: str) -> str:
    """`base`, and in a `-m` sweep the job's varied overrides: `train-twohead-1m[seed=1,flat=strict]`,
    cut to MAX_RUN_NAME characters (MLflow lists runs by name, and sweep jobs otherwise look alike)."""
    tag = _sweep_tag().get(SWEEP_OVERRIDES_TAG)
    if not tag:
        return base
    name = f"{base}[{tag}]"
    return name if len(name) <= MAX_RUN_NAME else f"{name[: MAX_RUN_NAME - len(CUT) - 1]}{CUT}]"


def _varied_overrides() -> list[str]:
    """The job's overrides of the keys the sweep varies: `seed=1` of `seed=0,1`, or a search sweeper's
    choice. Hydra hands a job only its own overrides (every key of the command line, one value each);
    the keys the command line sets to one value are shared by every job. joblib's workers inherit
    sys.argv; submitit's do not, and there every override of the job is shown."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    shared: set[str] = set()
    for argument in sys.argv[1:]:
        try:
            override = parser.parse_override(argument)
        except HydraException:  # a flag (-m) or a flag's value
            continue
        if not override.is_sweep_override():
            shared.add(override.get_key_element())
    job = parser.parse_overrides(list(HydraConfig.get().overrides.task))
    return [str(override.input_line) for override in job if override.get_key_element() not in shared]
