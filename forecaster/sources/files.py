"""`source.path` of a recorded source: one file, a glob, or a list of either, resolved to the files it names.

Each file becomes its own labelled history (its label is the file name without its extensions, e.g.
`btcusdt_1m_binance-spot_20230101_20230128`), so results can be split by file and venue.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

from forecaster.errors import ConfigError

GLOB_CHARACTERS = frozenset("*?[")
EXTENSIONS = (".gz", ".csv", ".jsonl")


def candle_files(path: str | Sequence[str]) -> list[Path]:
    """The files a `source.path` names, in the order given (a glob's matches sorted); no match is one line."""
    patterns = [path] if isinstance(path, str) else list(path)
    if not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise ConfigError(f"source.path={path!r}: give a file, a glob or a list of them")
    files: list[Path] = []
    for pattern in patterns:
        if GLOB_CHARACTERS & set(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise ConfigError(f"source.path: no file matches {pattern!r}")
            files.extend(Path(m) for m in matches)
        else:
            files.append(Path(pattern))
    twice = sorted({f for f in files if files.count(f) > 1})
    if twice:
        raise ConfigError(f"source.path names {twice[0]} twice")
    return files


def file_label(path: Path) -> str:
    """The file name without its extensions: the label its rows carry."""
    name = path.name
    while (suffix := Path(name).suffix) in EXTENSIONS:
        name = name[: -len(suffix)]
    return name
