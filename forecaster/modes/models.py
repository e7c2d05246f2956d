"""mode=models: every trained model one can run, in one table: the registered versions of the MLflow
store (tracking.uri, or the local store under paths.mlruns) with their aliases, and the local weights
folders (`<folder>/**/model/model.json`, e.g. outputs/DATE/TIME/model), each with its validation and
test figures and the history it was trained on.

Registered versions carry their figures as tags (forecaster.models.describe.version_tags); a local
folder's are read from its card through the same function, so both rows say the same things.
Nothing is trained or loaded: no JAX.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forecaster.config import Config
from forecaster.errors import UserError
from forecaster.evaluation.sections import Paired
from forecaster.models.card import SIDECAR_FILE, read_card
from forecaster.models.describe import BLOCKS, version_tags
from forecaster.modes.base import METRICS_FILE, RunResult
from forecaster.show import show
from forecaster.tracking import SQLITE_PREFIX, mlflow_client

log = logging.getLogger(__name__)
WEIGHTS_FOLDER = "model"  # mode=train saves its weights to <run dir>/model
COLUMNS = ("where", "aliases", "model", "tf", "features", "validation", "test", "test p", "history")
GAP = "  "  # between columns
NONE = "-"  # a cell without a value


@dataclass(frozen=True)
class Models:
    name: str = "models"
    # folders searched for weights folders (<folder>/**/model/model.json), relative to the launch dir
    folders: tuple[str, ...] = ("outputs", "multirun")

    def run(self, config: Config, run_dir: Path) -> RunResult:
        store = config.tracking.store_uri(config.paths)
        registered = list(registered_rows(store))
        local = list(local_rows(self.folders))
        show(
            f"registered in {store}: {len(registered)} version(s); local weights folders under "
            f"{', '.join(self.folders)}: {len(local)}",
            *aligned([COLUMNS, *registered, *local]),
            "validation / test: decided accuracy (decided calls / rows, means per fold); test p: paired "
            "test against persistence; run one with model.uri=models:/<name>@<alias> or model.path=<folder>",
        )
        return RunResult()


def row(where: str, aliases: Sequence[str], tags: Mapping[str, str]) -> tuple[str, ...]:
    """One table row from a version's tags (or a card's, as version_tags writes them)."""
    first, last = tags.get("data_first"), tags.get("data_last")
    return (
        where,
        ",".join(aliases) or NONE,
        tags.get("model", NONE),
        tags.get("timeframe", NONE),
        tags.get("feature_set", NONE),
        _figures(tags, "val"),
        _figures(tags, "test"),
        tags.get("test.p_vs_persistence", NONE),
        f"{first}..{last}" if first and last else NONE,
    )


def _figures(tags: Mapping[str, str], block: str) -> str:
    """'51.2% (123/1071)': decided accuracy, decided calls and rows of one block."""
    accuracy, decided, n = (tags.get(f"{block}.{key}") for key in ("decided_accuracy", "decided", "n"))
    if n is None:
        return NONE
    shown = NONE if accuracy is None else f"{float(accuracy):.1%}"
    return f"{shown} ({decided or 0}/{n})"


def registered_rows(store: str) -> Iterator[tuple[str, ...]]:
    """A row per registered version, by name then version; none when the local store was never made."""
    if store.startswith(SQLITE_PREFIX) and not Path(store.removeprefix(SQLITE_PREFIX)).is_file():
        return
    client = mlflow_client(store)
    try:
        models = _every(client.search_registered_models)
        versions = _every(client.search_model_versions)
    except Exception as exc:
        raise UserError(f"cannot read the model registry at {store} ({str(exc).splitlines()[0]})") from exc
    aliases = {model.name: model.aliases or {} for model in models}
    for version in sorted(versions, key=lambda v: (v.name, int(v.version))):
        named = aliases.get(version.name, {})
        mine = sorted(alias for alias, number in named.items() if str(number) == str(version.version))
        yield row(f"models:/{version.name}/{version.version}", mine, version.tags or {})


def _every(search: Callable[..., Any]) -> list[Any]:
    """Every page of an MLflow search."""
    found: list[Any] = []
    token = None
    while True:
        page = search(page_token=token)
        found += list(page)
        token = page.token
        if not token:
            return found


def local_rows(folders: Sequence[str]) -> Iterator[tuple[str, ...]]:
    """A row per weights folder under `folders`; a folder whose card cannot be read is one warning."""
    pattern = f"**/{WEIGHTS_FOLDER}/{SIDECAR_FILE}"
    cards = sorted(card for folder in folders for card in Path(folder).glob(pattern))
    for path in cards:
        try:
            card = read_card(path.parent)
        except UserError as exc:
            log.warning("skipping %s: %s", path.parent, exc)
            continue
        yield row(str(path.parent), [], version_tags(card, _paired(path.parent.parent / METRICS_FILE)))


def _paired(metrics: Path) -> dict[str, Paired]:
    """Train's model-vs-persistence tests per block from the run dir's metrics.json, if it has them."""
    try:
        return {
            block: Paired(**test)
            for block, test in json.loads(metrics.read_text())["paired"].items()
            if block in BLOCKS
        }
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as left-aligned columns, one line each."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [GAP.join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip() for r in rows]
