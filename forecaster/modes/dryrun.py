"""mode=dryrun: which backend and devices JAX will use, the resolved config, and a checklist.

Needs no network: the Bybit REST check runs only with `mode.check_network=true`, and a failure
there is a warning. The exit code is 0 when every required check passes.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from forecaster import __version__, backend
from forecaster.config import Config, config_source
from forecaster.data import SAMPLE_CSV
from forecaster.errors import UserError
from forecaster.sources.bybit.protocol import RET_OK, TIME_PATH
from forecaster.tracking import open_tracker


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | fail | warn | skip
    detail: str

    def line(self) -> str:
        return f"[{self.status:<4}] {self.name}: {self.detail}"


def check_output_dir(run_dir: Path) -> Check:
    probe = run_dir / ".write-probe"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return Check("output dir writable", "fail", f"{run_dir}: {exc.strerror}")
    return Check("output dir writable", "ok", str(run_dir.resolve()))


def check_tracking(config: Config) -> Check:
    if config.tracking.name == "off":
        return Check("MLflow store usable", "skip", "tracking=off")
    try:
        return Check("MLflow store usable", "ok", open_tracker(config).describe())
    except UserError as exc:
        return Check("MLflow store usable", "fail", str(exc))


def check_data(config: Config) -> Check:
    if config.source.name == "replay" and config.source.path:
        path = Path(config.source.path)
        ok = path.is_file()
        return Check("replay data present", "ok" if ok else "fail", f"{path}{'' if ok else ' not found'}")
    shared = Path(config.paths.shared_data)
    files = sorted(shared.glob("*.csv.gz")) if shared.is_dir() else []
    if not SAMPLE_CSV.is_file():
        return Check("data present", "fail", f"shipped sample missing at {SAMPLE_CSV}; reinstall forecaster")
    if files:
        return Check("data present", "ok", f"{shared} ({len(files)} files) and the shipped sample")
    return Check(
        "data present",
        "warn",
        f"{shared} not found (set paths.shared_data); the shipped sample {SAMPLE_CSV.name} is there",
    )


def check_network(config: Config) -> Check:
    if not config.mode.check_network:
        return Check("Bybit REST reachable", "skip", "not checked (mode.check_network=true checks it)")
    url = config.source.rest_url.rstrip("/") + TIME_PATH
    try:
        with urllib.request.urlopen(url, timeout=config.source.request_timeout_s) as answer:
            body = json.load(answer)
        answered = "ok" if body.get("retCode") == RET_OK else "warn"
        return Check(
            "Bybit REST reachable", answered, f"{url} retCode={body.get('retCode')} {body.get('retMsg', '')}"
        )
    except (OSError, ValueError) as exc:
        return Check("Bybit REST reachable", "warn", f"{url}: {exc}")


def run(config: Config, run_dir: Path) -> int:
    backend.configure_jax(config.paths.jax_cache)
    info = backend.describe()
    print(f"backend={info.backend} devices={info.devices}")
    print(f"jax={info.jax_version} jaxlib={info.jaxlib_version} python={info.python_version}")
    print(f"forecaster={__version__} config={config_source()}")
    print("--- resolved config ---")
    print(OmegaConf.to_yaml(OmegaConf.structured(config)).rstrip())
    print("--- checks ---")
    checks = [check_output_dir(run_dir), check_tracking(config), check_data(config), check_network(config)]
    for check in checks:
        print(check.line())
    failed = [check.name for check in checks if check.status == "fail"]
    print(f"dryrun: {'FAILED: ' + ', '.join(failed) if failed else 'all required checks passed'}")
    return 1 if failed else 0
