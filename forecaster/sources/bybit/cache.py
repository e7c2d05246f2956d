"""Closed kline history on disk, one CSV per complete UTC day, so downloads only fetch what is missing."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from forecaster.candles import CSV_COLUMNS, DAY_MS, CandleArray, CandleError, read_csv
from forecaster.sources.bybit.protocol import interval_code

log = logging.getLogger(__name__)

CSV_FORMAT = ["%d"] + ["%.17g"] * (len(CSV_COLUMNS) - 1)  # %.17g round-trips every float64


class KlineCache:
    """Closed candles of complete UTC days: `<root>/<host>/<category>/<symbol>/<interval>/<YYYY-MM-DD>.csv`.

    A file exists only for a day that had ended on the server clock when it was written, so it
    never changes; a header-only file records a day with no candles (before a listing, an outage).
    The host is part of the path so emulator data never mixes with the real exchange's.
    """

    def __init__(self, root: str | Path, rest_url: str, category: str, symbol: str, timeframe: str) -> None:
        host = re.sub(r"[^A-Za-z0-9.-]", "_", urlsplit(rest_url).netloc or "local")
        self.dir = Path(root) / host / category / symbol / interval_code(timeframe)
        self.timeframe = timeframe

    def _path(self, day_ms: int) -> Path:
        return self.dir / f"{np.datetime64(day_ms, 'ms').astype('datetime64[D]')}.csv"

    def load(self, day_ms: int) -> CandleArray | None:
        path = self._path(day_ms)
        try:
            with path.open(encoding="utf-8") as handle:
                empty = handle.readline() and not handle.readline()
            no_rows = CandleArray.from_candles([], self.timeframe)  # header only: a day without candles
            candles = no_rows if empty else read_csv(path, self.timeframe)
        except FileNotFoundError:
            return None
        except (OSError, CandleError) as exc:
            log.warning("ignoring damaged cache file %s (%s); fetching that day again", path, exc)
            path.unlink(missing_ok=True)
            return None
        if len(candles) and not (day_ms <= candles.start_ms[0] and candles.start_ms[-1] < day_ms + DAY_MS):
            log.warning("ignoring cache file %s: candles outside its day; fetching that day again", path)
            path.unlink(missing_ok=True)
            return None
        return candles

    def store(self, day_ms: int, candles: CandleArray) -> None:
        """Atomically (write + rename), so a crash never leaves a half-written day behind."""
        path = self._path(day_ms)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        table = np.column_stack([c.astype(np.float64) for c in candles._columns()])
        np.savetxt(tmp, table, fmt=CSV_FORMAT, delimiter=",", header=",".join(CSV_COLUMNS), comments="")
        os.replace(tmp, path)
