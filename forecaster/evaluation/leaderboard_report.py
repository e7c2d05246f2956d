"""The sweep leaderboard as text: a console table and one verdict line, leaderboard.md, a CSV row per job."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from forecaster.evaluation.leaderboard import (
    TEST,
    VALIDATION,
    BlockFigures,
    FoldFigures,
    JobResult,
    Leaderboard,
)
from forecaster.evaluation.report import SIGNIFICANCE
from forecaster.evaluation.sections import PERSISTENCE, REVERSAL
from forecaster.evaluation.statistics import CHANCE, wilson_interval
from forecaster.models.describe import utc_minute

BEST_OF_NAMES = {"spa": "SPA", "reality_check": "Reality Check"}
LABEL_WIDTH = 64  # the console's job column at most; longer labels are cut (the files keep them whole)
CSV_BLOCK_FIELDS = (
    "n",
    "decided",
    "accuracy",
    "wilson_low",
    "wilson_high",
    "p_vs_chance",
    "flat_share",
    "score",
    "edge",
)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _hits_text(hits: int, calls: int, min_decided: int) -> str:
    """'51.2% [50.1, 52.3]' (hits of calls, with the Wilson interval), or why there is no percentage."""
    if calls < min_decided:
        return f"too few calls ({calls})"
    low, high = wilson_interval(hits, calls)
    return f"{hits / calls:.1%} [{100 * low:.1f}, {100 * high:.1f}]"


def accuracy_text(figures: BlockFigures | None, min_decided: int) -> str:
    """Decided accuracy with its interval, or why there is none."""
    return "-" if figures is None else _hits_text(figures.hits, figures.decided, min_decided)


def _paired_p(figures: BlockFigures | None) -> float | None:
    return None if figures is None or figures.vs_persistence is None else figures.vs_persistence.p_value


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4f}"


def _cells(job: JobResult, min_decided: int) -> list[str]:
    """The row of one job in COLUMNS order."""
    val, test = job.val, job.test
    return [
        "-" if val is None else str(val.decided),
        accuracy_text(val, min_decided),
        _signed(None if val is None else val.edge),
        _signed(None if val is None else val.score),
        "-" if test is None else str(test.decided),
        accuracy_text(test, min_decided),
        "-" if test is None else _pct(test.flat_share),
        _signed(None if test is None else test.edge),
        _p(None if test is None else test.p_vs_chance),
        _p(_paired_p(test)),
        _p(job.holm_p),
    ]


# (Markdown header, console header or None where the console leaves the column out, console width)
COLUMNS = (
    ("val decided", "val dec", 7),
    ("val accuracy [95% CI]", "val acc [95% CI]", 20),
    ("val edge", "val edge", 8),
    ("val score", None, 0),
    ("test decided", "test dec", 8),
    ("test accuracy [95% CI]", "test acc [95% CI]", 20),
    ("test FLAT", "FLAT", 6),
    ("test edge", "test edge", 9),
    ("test p vs 50%", None, 0),
    ("test p vs persistence", "p", 6),
    ("Holm p", "Holm p", 6),
)
HEADERS = tuple(header for header, _, _ in COLUMNS)
SHOWN = [(k, header, width) for k, (_, header, width) in enumerate(COLUMNS) if header is not None]


def _console_row(start: str, cells: list[str]) -> str:
    return start + "".join(f"  {cells[k]:>{width}}" for k, _, width in SHOWN)


def _baseline_cells(name: str, by_block: Mapping[str, BlockFigures], min_decided: int) -> list[str]:
    """A baseline's row (persistence, reversal) in COLUMNS order."""
    return _cells(JobResult(name, "", "", by_block[VALIDATION], by_block[TEST]), min_decided)


def console_table(board: Leaderboard) -> list[str]:
    """One line per job (the chosen one marked *), persistence last; unfinished jobs say so. edge: over
    persistence, per candle; p: the test block's paired p vs persistence; Holm p: the same adjusted
    over the jobs."""
    width = min(
        max(len(name) for name in ["job", PERSISTENCE, *(job.label for job in board.jobs)]), LABEL_WIDTH
    )
    lines = [_console_row(f"  {'job':<{width}}", [header or "" for _, header, _ in COLUMNS])]
    for index, job in enumerate(board.jobs):
        mark = "*" if index == board.chosen else " "
        label = job.label[: width - 1] + "~" if len(job.label) > width else job.label
        if job.val is None:
            lines.append(f"{mark} {label:<{width}}  {job.status}")
            continue
        lines.append(_console_row(f"{mark} {label:<{width}}", _cells(job, board.min_decided)))
    lines.append(
        _console_row(
            f"  {PERSISTENCE:<{width}}", _baseline_cells(PERSISTENCE, board.persistence, board.min_decided)
        )
    )
    lines.append(
        _console_row(f"  {REVERSAL:<{width}}", _baseline_cells(REVERSAL, board.reversal, board.min_decided))
    )
    return lines


def verdict(board: Leaderboard) -> str:
    """One line: the job chosen on validation, its test result, and the corrected best-of-N p."""
    best, name = board.best_of_n, BEST_OF_NAMES[board.best_of]
    other = "reality_check" if board.best_of == "spa" else "spa"
    other_p = best.reality_check_p if other == "reality_check" else best.spa_p
    corrected = (
        f"best of {best.n_models} on the test block: {name} p={_p(board.corrected_p)} "
        f"({BEST_OF_NAMES[other]} {_p(other_p)})"
    )
    conclusion = (
        f"a configuration beats persistence even after correcting for the {best.n_models} tried"
        if board.corrected_p < SIGNIFICANCE
        else "no evidence that any configuration beats persistence"
    )
    bar = board.persistence[TEST].accuracy
    if bar is not None and bar < CHANCE:
        mirror = board.reversal[TEST].accuracy
        conclusion += (
            f" (persistence is right on only {bar:.1%} of its test calls: a low bar; "
            f"reversed, the last move is right on {_pct(mirror)})"
        )
    job = board.chosen_job
    if job is None or job.test is None:
        chosen = f"no job decided {board.min_decided} validation calls (eval.min_decided)"
    else:
        test = job.test
        accuracy = accuracy_text(test, board.min_decided)
        chosen = (
            f"best on validation ({board.select}): {job.label}: test {accuracy} "
            f"of {test.decided} decided (vs 50% p={_p(test.p_vs_chance)}), vs persistence "
            f"p={_p(_paired_p(test))} (Holm {_p(job.holm_p)}), vs reversal "
            f"p={_p(None if job.vs_reversal is None else job.vs_reversal.p_value)}"
        )
    return f"verdict: {chosen}; {corrected}: {conclusion}"


def moved_text(figures: BlockFigures, min_decided: int) -> str:
    """Accuracy on the decided calls whose next candle moved (zero moves left out), with its interval;
    a call against a zero move never hits, so the hits are the same."""
    return _hits_text(figures.hits, figures.moved, min_decided)


FOLD_HEADERS = (
    "fold",
    "candles (UTC)",
    "decided",
    "accuracy [95% CI]",
    "non-zero moves",
    "accuracy on non-zero moves [95% CI]",
    "p vs persistence",
)


def _fold_cells(fold: FoldFigures, min_decided: int) -> list[str]:
    figures = fold.figures
    return [
        str(fold.fold),
        f"{utc_minute(fold.first_ms)} .. {utc_minute(fold.last_ms)}",
        str(figures.decided),
        accuracy_text(figures, min_decided),
        str(figures.moved),
        moved_text(figures, min_decided),
        _p(_paired_p(figures)),
    ]


def fold_lines(board: Leaderboard) -> list[str]:
    """The chosen job and persistence on each fold's test candles, for the console."""
    job = board.chosen_job
    if job is None or not job.folds:
        return []
    lines = [f"test block by fold, {job.label} (chosen), accuracy on non-zero moves:"]
    for mine, bar, mirror in zip(job.folds, board.persistence_folds, board.reversal_folds, strict=True):
        lines.append(
            f"  fold {mine.fold} {utc_minute(mine.first_ms)}..{utc_minute(mine.last_ms)}: "
            f"{moved_text(mine.figures, board.min_decided)} of {mine.figures.moved} vs persistence "
            f"{moved_text(bar.figures, board.min_decided)} (paired p={_p(_paired_p(mine.figures))}), "
            f"reversal {moved_text(mirror.figures, board.min_decided)}"
        )
    return lines


def console_lines(board: Leaderboard) -> list[str]:
    return [*console_table(board), *fold_lines(board), verdict(board)]


def fold_table(board: Leaderboard) -> list[str]:
    """Markdown: every judged job and persistence on each fold's test candles."""
    rows = [_md_row(["job", *FOLD_HEADERS]), _md_row(["---"] * (len(FOLD_HEADERS) + 1))]
    for job in board.judged:
        label = f"**{job.label}** (chosen)" if job is board.chosen_job else job.label
        rows += [_md_row([label, *_fold_cells(fold, board.min_decided)]) for fold in job.folds]
    for name, folds in ((PERSISTENCE, board.persistence_folds), (REVERSAL, board.reversal_folds)):
        rows += [_md_row([name, *_fold_cells(fold, board.min_decided)]) for fold in folds]
    return rows


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def render_markdown(board: Leaderboard, sweep: str, plot: Path | None, notes: Sequence[str]) -> str:
    best = board.best_of_n
    rows = [_md_row(["", "job", "status", *HEADERS]), _md_row(["---"] * (len(HEADERS) + 3))]
    for index, job in enumerate(board.jobs):
        cells = _cells(job, board.min_decided) if job.val is not None else ["-"] * len(HEADERS)
        rows.append(_md_row(["**chosen**" if index == board.chosen else "", job.label, job.status, *cells]))
    rows.append(
        _md_row(
            ["", PERSISTENCE, "the bar", *_baseline_cells(PERSISTENCE, board.persistence, board.min_decided)]
        )
    )
    rows.append(
        _md_row(
            [
                "",
                REVERSAL,
                "the last move reversed",
                *_baseline_cells(REVERSAL, board.reversal, board.min_decided),
            ]
        )
    )
    judged = board.judged
    val_n, test_n = board.persistence[VALIDATION].n, board.persistence[TEST].n
    parts = [
        "# Sweep leaderboard",
        "",
        f"Sweep `{sweep}`: {len(board.jobs)} jobs, {len(judged)} judged on the same {val_n} validation "
        f"and {test_n} test candles (those every judged job scored). Score per candle: +1 a right call, "
        "-1 a wrong one (a call against a zero move too), 0 FLAT. Edge over persistence per candle: +1 "
        "where only the job's call was right, -1 where only persistence's was, on the candles both "
        "decide. p vs persistence: exact one-sided McNemar on those candles; Holm p: the same, "
        "adjusted for the family of jobs.",
        "",
        *rows,
        "",
        "## The choice (validation) and the verdict (test)",
        "",
        f"- chosen on validation by `{board.select}` (at least {board.min_decided} decided calls): "
        f"{board.chosen_job.label if board.chosen_job else 'none'}",
        f"- best of N={best.n_models} on the test block by mean edge over persistence: "
        f"{judged[best.best].label} ({best.best_mean:+.4f} per candle)",
        f"- White's Reality Check p = {_p(best.reality_check_p)}; Hansen's SPA (consistent) p = "
        f"{_p(best.spa_p)}; stationary bootstrap, {best.draws} resamples, mean block {best.mean_block:g} "
        "candles",
        *(f"- {note}" for note in notes),
        "",
        verdict(board),
        "",
        "## The test block by walk-forward fold",
        "",
        "Each fold's test candles were predicted by a model trained on earlier candles only. Accuracy "
        "on non-zero moves leaves out the decided calls whose next candle did not move; p vs "
        "persistence: exact one-sided McNemar on the fold's candles both decide.",
        "",
        *fold_table(board),
        "",
    ]
    if plot is not None:
        parts += [f"![{plot.stem}]({plot.name})", ""]
    return "\n".join(parts)


def render_csv(board: Leaderboard) -> str:
    """One row per job: both blocks' figures, the paired and Holm p-values, the chosen flag."""
    out = io.StringIO()
    writer = csv.writer(out)
    block_columns = [f"{block}_{name}" for block in (VALIDATION, TEST) for name in CSV_BLOCK_FIELDS]
    writer.writerow(
        ["label", "status", "source", *block_columns, "val_p", "test_p", "holm_p", "registered", "chosen"]
    )
    for index, job in enumerate(board.jobs):
        values = [
            "" if (f := getattr(job, block)) is None or (v := getattr(f, name)) is None else v
            for block in (VALIDATION, TEST)
            for name in CSV_BLOCK_FIELDS
        ]
        registered = "" if job.registered is None else job.registered.uri()
        p_values = [_paired_p(job.val), _paired_p(job.test), job.holm_p]
        writer.writerow(
            [
                job.label,
                job.status,
                job.source,
                *values,
                *("" if p is None else p for p in p_values),
                registered,
                index == board.chosen,
            ]
        )
    return out.getvalue()
