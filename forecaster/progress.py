"""Progress of long loops (training epochs, REST history pages, warm-up): a tqdm bar on a terminal,
plain log lines elsewhere.

A bar redraws itself with carriage returns, which a log file, a pipe or CI shows as one long
garbled line; off a terminal the same loop logs one line every `every` steps (and the last one).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger("forecaster.progress")


def on_terminal() -> bool:
    """Whether stderr (where bars and log lines go) is a terminal."""
    return sys.stderr.isatty()


class Progress:
    """A counter shown as a bar on a terminal, or as `desc: n/total unit (details)` log lines."""

    def __init__(self, total: int, desc: str, unit: str, every: int = 1, enabled: bool = True) -> None:
        self.total, self.desc, self.unit, self.every = total, desc, unit, max(1, every)
        self.enabled = enabled
        self.count = 0
        self.details: dict[str, Any] = {}
        self._bar: Any = None
        if enabled and on_terminal():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit)

    def update(self, steps: int = 1, **details: Any) -> None:
        """`steps` more done; `details` (e.g. train="0.6931") go on the bar or the log line."""
        self.count += steps
        self.details.update(details)
        if self._bar is not None:
            if details:
                self._bar.set_postfix(self.details, refresh=False)
            self._bar.update(steps)
        elif self.enabled and (self.count % self.every == 0 or self.count >= self.total):
            extra = " ".join(f"{key}={value}" for key, value in self.details.items())
            extra = f" ({extra})" if extra else ""
            log.info("%s: %d/%d %s%s", self.desc, self.count, self.total, self.unit, extra)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
