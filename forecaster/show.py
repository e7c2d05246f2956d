"""What a mode shows people at its end (result tables, verdicts): stdout, and the run dir's log file
(`<mode>.log`), so the log of a run keeps its results beside its messages.

In a `-m` sweep each block starts with the job's label (`job 3: model=logreg seed=1`): parallel
jobs (hydra/launcher=joblib) print into one console, and their tables must be told apart.
"""

from __future__ import annotations

import logging
import sys

from forecaster.run_labels import job_label

# conf/hydra/job_logging sends this logger to the log file only (stdout already has the text); it
# never passes records on, so outside a job (tests, a sweep's callback) nothing is printed twice.
log = logging.getLogger("forecaster.results")
log.propagate = False


def show(*lines: str, of_job: bool = True) -> None:
    """Print `lines` as one block (one write, so parallel jobs do not interleave inside it) and log it.

    of_job=False: the block is not one job's (a sweep's leaderboard), so it gets no job label.
    """
    label = job_label() if of_job else None
    text = "\n".join([*([label] if label else []), *lines])
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    log.info("%s", text)
