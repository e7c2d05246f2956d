"""Before Hydra starts: can the run dir be written? If not, one line naming it and the OS error.

Hydra creates the run dir and opens its log file inside `run_and_report`, which catches whatever
fails there and prints it itself (a 30-line traceback for a read-only disk) before exiting 1: the
failure never reaches our code as an exception to reduce. So the entry point resolves the run
dir (or sweep dir) the way Hydra will, from the composition that validates the command line, and
tries it first. The probe
creates and removes a file in the nearest existing folder (which gives the OS's own error, e.g. a
read-only file system), because os.access alone says yes to root whatever the folder's mode.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

PROBE_PREFIX = ".forecaster-probe-"


def output_dir(cfg: DictConfig, multirun: bool) -> Path | None:
    """hydra.run.dir (hydra.sweep.dir for -m) of a config composed with its Hydra node; None if it
    cannot be resolved before the job runs (Hydra then says what it says)."""
    try:
        value = OmegaConf.select(cfg, "hydra.sweep.dir" if multirun else "hydra.run.dir")
    except OmegaConfBaseException:
        return None
    return Path(str(value)) if value else None


def unwritable(path: Path) -> str | None:
    """None when `path` can be created (or exists) and written; else the one line saying why not."""
    existing = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, os.strerror(20), str(existing))
        handle, probe = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=existing)
        os.close(handle)
        os.unlink(probe)
        if not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError(13, os.strerror(13), str(existing))
    except OSError as exc:
        where = "" if existing == path.absolute() else f" (at {existing})"
        return (
            f"cannot write the run dir {path}: {exc.strerror or exc}{where}; "
            "choose another hydra.run.dir (or hydra.sweep.dir for -m)"
        )
    return None
