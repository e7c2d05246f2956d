"""One line of mode=dryrun's checklist; parts (sources, trackers) say themselves whether they are usable."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    FAIL = "fail"  # a required check: dryrun exits 1
    WARN = "warn"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str

    def line(self) -> str:
        return f"[{self.status:<4}] {self.name}: {self.detail}"
