"""The MLflow model registry seen from a run: the name a trained model registers under, and the
weights a `models:/` URI (a version, `latest`, or an alias such as `@champion`) or `model.path`
stands for, downloaded before the Predictor is built.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forecaster.errors import UserError
from forecaster.tracking import mlflow_client

if TYPE_CHECKING:
    from forecaster.config import Config, PathsConfig
    from forecaster.models.base import ProbabilityModel
    from forecaster.tracking import TrackingBackend

log = logging.getLogger(__name__)

# models:/<name>/<version or latest>, or models:/<name>@<alias> (e.g. @champion, set by the leaderboard)
MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>latest|[0-9]+)|@(?P<alias>[\w-]+))$")


def registered_name(config: Config) -> str:
    return f"forecaster-{config.model.name}-{config.timeframe.name}"


def download_model(store: str, uri: str) -> Path:
    """`models:/<name>/<version or latest>` or `models:/<name>@<alias>` from the store -> a local
    folder of weights."""
    found = MODELS_URI.match(uri)
    if not found:
        raise UserError(
            f"model.uri={uri} is not of the form models:/<name>/<version or latest> or models:/<name>@<alias>"
        )
    client = mlflow_client(store)
    from mlflow.artifacts import download_artifacts

    name, wanted, alias = found["name"], found["version"], found["alias"]
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except Exception as exc:
        raise UserError(f"cannot read the model registry at {store} ({str(exc).splitlines()[0]})") from exc
    if not versions:
        raise UserError(f"no model registered as {name} in {store}; train one with mode=train")
    if alias is not None:
        wanted = _aliased_version(client, name, alias, store)
    chosen = max(versions, key=lambda v: int(v.version)) if wanted == "latest" else None
    chosen = chosen or next((v for v in versions if str(v.version) == wanted), None)
    if chosen is None:
        have = ", ".join(str(v) for v in sorted(int(v.version) for v in versions))
        raise UserError(f"{name} has no version {wanted} in {store}; versions: {have}")
    log.info("model.uri %s -> %s version %s (run %s)", uri, name, chosen.version, chosen.run_id)
    return Path(download_artifacts(artifact_uri=chosen.source, tracking_uri=store))


def _aliased_version(client: Any, name: str, alias: str, store: str) -> str:
    """The version an alias points at; a missing alias says how one is set."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        raise UserError(
            f"{name} has no alias @{alias} in {store}; a -m training sweep's leaderboard sets @champion "
            "(or give a version: models:/<name>/<version or latest>)"
        ) from exc


def weights_path(model: ProbabilityModel, tracking: TrackingBackend, paths: PathsConfig) -> Path | None:
    """Where the model's trained weights are: model.path, or model.uri downloaded from the store; None
    for a model without weights. Resolved before the Predictor is built, so it never talks to MLflow."""
    if model.path:
        return Path(model.path)
    return download_model(tracking.store_uri(paths), model.uri) if model.uri else None
