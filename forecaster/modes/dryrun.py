"""mode=dryrun: which backend and devices JAX will use, the resolved config, and a checklist.

Needs no network: the Bybit REST check runs only with `mode.check_network=true`, and a failure
there is a warning. The exit code is 0 when every required check passes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from forecaster import __version__, backend
from forecaster.checks import Check, Status
from forecaster.config import Config, config_source
from forecaster.data import SAMPLE_CSV
from forecaster.errors import UserError
from forecaster.models.describe import loaded_line
from forecaster.modes.base import RunResult
from forecaster.predictor import load_model
from forecaster.registry import weights_path
from forecaster.show import show


def check_output_dir(run_dir: Path) -> Check:
    probe = run_dir / ".write-probe"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return Check("output dir writable", Status.FAIL, f"{run_dir}: {exc.strerror}")
    return Check("output dir writable", Status.OK, str(run_dir.resolve()))


def check_data(shared_data: str) -> Check:
    shared = Path(shared_data)
    files = sorted(shared.glob("*.csv.gz")) if shared.is_dir() else []
    if not SAMPLE_CSV.is_file():
        return Check(
            "data present", Status.FAIL, f"shipped sample missing at {SAMPLE_CSV}; reinstall forecaster"
        )
    if files:
        return Check("data present", Status.OK, f"{shared} ({len(files)} files) and the shipped sample")
    return Check(
        "data present",
        Status.WARN,
        f"{shared} not found (set paths.shared_data); the shipped sample {SAMPLE_CSV.name} is there",
    )


def check_model(config: Config) -> Check:
    """The weights of model.path / model.uri resolved and loaded as a live run would, before one starts."""
    model = config.model
    if not model.trainable:
        return Check("model weights", Status.SKIP, f"model={model.name} needs none")
    try:
        if not (model.path or model.uri):
            model.untrained(config.features.n_features, config.seed)  # refuses where a model needs weights
            return Check(
                "model weights",
                Status.WARN,
                f"model={model.name} has no model.path / model.uri: it would run untrained (trained=false)",
            )
        weights = weights_path(model, config.tracking, config.paths)
        loaded = load_model(model, config.features, config.timeframe.name, config.seed, weights)
    except UserError as exc:
        return Check("model weights", Status.FAIL, str(exc))
    card = loaded.card
    detail = f"model={model.name} loaded" if card is None else loaded_line(card, weights or "")
    return Check("model weights", Status.OK, detail)


def resolved_yaml(config: Config) -> str:
    """The config as YAML, each part shown with the `_target_` it was built from."""
    return OmegaConf.to_yaml(OmegaConf.create(_plain(config))).rstrip()


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        kind = type(value)
        if kind.__module__ == Config.__module__:  # a plain block; every other dataclass is a part
            return fields
        return {"_target_": f"{kind.__module__}.{kind.__qualname__}", **fields}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


@dataclass(frozen=True)
class Dryrun:
    """Backend, devices, the resolved config and a checklist; exit code 1 when a required check fails."""

    name: str = "dryrun"
    check_network: bool = False  # also ask Bybit REST (a failure is a warning)

    def run(self, config: Config, run_dir: Path) -> RunResult:
        backend.configure_jax(config.paths.jax_cache)
        info = backend.describe()
        show(
            f"backend={info.backend} devices={info.devices}",
            f"jax={info.jax_version} jaxlib={info.jaxlib_version} python={info.python_version}",
            f"forecaster={__version__} config={config_source()}",
            "--- resolved config ---",
            resolved_yaml(config),
            "--- checks ---",
        )
        checks = [
            check_output_dir(run_dir),
            config.tracking.check(config.paths),
            check_data(config.paths.shared_data),
            check_model(config),
            *config.source.checks(config.paths, self.check_network),
        ]
        failed = [check.name for check in checks if check.status == Status.FAIL]
        show(
            *(check.line() for check in checks),
            f"dryrun: {'FAILED: ' + ', '.join(failed) if failed else 'all required checks passed'}",
        )
        return RunResult(exit_code=1 if failed else 0)
