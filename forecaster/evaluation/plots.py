"""Evaluation plots as PNG files: one function per plot, each writes one file and returns its path.

Figures are built with `matplotlib.figure.Figure` and rendered by Agg, never through pyplot: no
display, no global state, safe in sweep workers. Matplotlib is imported here only, as it is slow.
Every plot draws something readable on empty or all-FLAT input (a note instead of data).
Inputs are the sections of `forecaster.evaluation.evaluate`, so plots and metrics.json agree.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from forecaster.config import FlatConfig
from forecaster.evaluation.join import Joined
from forecaster.evaluation.leaderboard import Leaderboard
from forecaster.evaluation.outcomes import BLOCKS
from forecaster.evaluation.sections import (
    MODEL,
    Confusion,
    Coverage,
    CoveragePoint,
    Evaluation,
    EvaluationSet,
    Heads,
)
from forecaster.evaluation.statistics import CHANCE, LABELS, running_accuracy, wilson_bounds
from forecaster.flat import directions

DPI = 110
SQUARE = (5.5, 4.8)
WIDE = (8.0, 4.5)
TALL = (6.0, 6.5)
MAX_LINE_POINTS = 4000  # the running accuracy is thinned to this many points: a longer line adds nothing
NOTE_STYLE = {"ha": "center", "va": "center", "fontsize": 11, "color": "0.4"}
HEAD_COLOURS = {"up": "tab:green", "down": "tab:red"}
DARK_CELL = 0.6  # share of the colour range above which cell text turns white
SETTLE_SHARE = 10  # the y axis of the running accuracy ignores the first 1/SETTLE_SHARE of it
Y_MARGIN = 0.05  # the y axis shows at least chance +- this
BOARD_BASE_HEIGHT, BOARD_ROW_HEIGHT = 1.6, 0.4  # the leaderboard grows with its jobs (inches)
BOARD_LABEL_CHARS = 60  # job labels (the settings a job changed) are wrapped at this width
BOARD_LINE_HEIGHT = 0.2  # inches per line of a wrapped label: a row is at least this tall per line
BOARD_WIDTH = 12.0
BOARD_OFFSET = 0.15  # validation above, test below each job's line
BOARD_COLOURS = {"val": "tab:orange", "test": "tab:blue"}


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, format="png")
    return path


def _thinned(points: int) -> np.ndarray:
    """Indices of at most MAX_LINE_POINTS of `points`, evenly spread, first and last included."""
    return np.unique(np.linspace(0, points - 1, min(points, MAX_LINE_POINTS)).astype(np.int64))


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, **NOTE_STYLE)


def confusion(confusion: Confusion, path: str | Path, title: str = "") -> Path:
    """Heatmap of the 3x3 confusion matrix, counts and row shares."""
    counts = confusion.array()
    total = int(counts.sum())
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    figure = Figure(figsize=SQUARE, layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(counts, cmap="Blues", vmin=0, vmax=max(1, int(counts.max())))
    figure.colorbar(image, ax=ax, label="predictions")
    for i in range(len(LABELS)):
        for j in range(len(LABELS)):
            colour = "white" if counts[i, j] > DARK_CELL * max(1, counts.max()) else "black"
            ax.text(
                j, i, f"{counts[i, j]:,}\n{shares[i, j]:.1%} of row", ha="center", va="center", color=colour
            )
    ax.set_xticks(range(len(LABELS)), LABELS)
    ax.set_yticks(range(len(LABELS)), LABELS)
    ax.set_xlabel("fact (next candle; zero move = FLAT)")
    ax.set_ylabel("predicted")
    ax.set_title(f"{title + ': ' if title else ''}confusion matrix (n = {total:,})")
    return _save(figure, path)


def reliability(heads: Heads, path: str | Path, title: str = "", before: Heads | None = None) -> Path:
    """Reliability diagram of both heads: observed frequency against mean predicted probability per
    bin, with the diagonal of perfect calibration; counts per bin below. With `before` (the heads
    before the model's calibration), those are drawn dashed for comparison."""
    figure = Figure(figsize=TALL, layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.plot((0, 1), (0, 1), ls="--", color="0.5", label="perfectly calibrated")
    any_rows = False
    width = 0.0
    for offset, (name, head) in zip((-0.5, 0.5), heads.named().items(), strict=False):
        table = head.reliability
        width = (table[0].bin_high - table[0].bin_low) / 2.5
        filled = [row for row in table if row.count]
        colour = HEAD_COLOURS.get(name)
        if filled:
            any_rows = True
            ece = f", ECE {head.ece:.3f}" if head.ece is not None else ""
            top.plot(
                [row.mean_predicted for row in filled],
                [row.observed for row in filled],
                marker="o",
                color=colour,
                label=f"p_{name}{ece}",
            )
        raw = before.named()[name] if before is not None else None
        if raw is not None and (raw_filled := [row for row in raw.reliability if row.count]):
            ece = f", ECE {raw.ece:.3f}" if raw.ece is not None else ""
            top.plot(
                [row.mean_predicted for row in raw_filled],
                [row.observed for row in raw_filled],
                marker="x",
                ls=":",
                color=colour,
                label=f"p_{name} before calibration{ece}",
            )
        centres = [(row.bin_low + row.bin_high) / 2 + offset * width for row in table]
        bottom.bar(centres, [row.count for row in table], width=width, color=colour, label=f"p_{name}")
    if not any_rows:
        _note(top, "no predictions")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("observed frequency")
    top.set_title(f"{title + ': ' if title else ''}reliability (equal-width bins)")
    top.legend(loc="upper left")
    bottom.set_xlabel("predicted probability")
    bottom.set_ylabel("count")
    bottom.set_ylim(bottom=0)
    return _save(figure, path)


def _curve(ax: Axes, points: Sequence[CoveragePoint], label: str, marker: str) -> bool:
    shown = [(c, a) for p in points if (c := p.coverage) is not None and (a := p.accuracy) is not None]
    if shown:
        ax.plot([c for c, _ in shown], [a for _, a in shown], marker=marker, ms=3, label=label)
    return bool(shown)


def coverage(curves: Coverage, path: str | Path, title: str = "") -> Path:
    """Decided accuracy against coverage (decided share) as the FLAT thresholds tighten; the named
    rules as labelled points."""
    figure = Figure(figsize=WIDE, layout="constrained")
    ax = figure.subplots()
    drawn = _curve(ax, curves.by_min_prob, "min_prob swept (min_margin 0)", "o")
    drawn |= _curve(ax, curves.by_min_margin, "min_margin swept (min_prob 0)", "s")
    for rule in curves.rules:
        point = rule.point
        if point.accuracy is not None and point.coverage is not None:
            ax.scatter(point.coverage, point.accuracy, color="black", zorder=3)
            ax.annotate(
                rule.name, (point.coverage, point.accuracy), xytext=(4, 4), textcoords="offset points"
            )
            drawn = True
    ax.axhline(CHANCE, ls="--", color="0.5", label="chance (50%)")
    if not drawn:
        _note(ax, "no decided prediction at any threshold")
        ax.set_ylim(0, 1)
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("coverage (share of candles decided)")
    ax.set_ylabel("decided accuracy")
    ax.set_title(f"{title + ': ' if title else ''}accuracy vs coverage over FLAT thresholds")
    ax.legend(loc="best")
    return _save(figure, path)


def cumulative_accuracy(
    candle_ts: np.ndarray, predicted: np.ndarray, actual: np.ndarray, path: str | Path, title: str = ""
) -> Path:
    """Running decided accuracy over time (x: candle start, UTC), to see whether an edge is steady or
    comes from one stretch."""
    figure = Figure(figsize=WIDE, layout="constrained")
    ax = figure.subplots()
    where, hits, decided = running_accuracy(predicted, actual)
    ax.axhline(CHANCE, ls="--", color="0.5", label="chance (50%)")
    if len(where):
        keep = _thinned(len(where))
        times = np.asarray(candle_ts, np.int64)[where[keep]].astype("datetime64[ms]")
        running = hits[keep] / decided[keep]
        low, high = wilson_bounds(hits[keep], decided[keep])
        ax.fill_between(times, low, high, color="tab:blue", alpha=0.2, lw=0, label="95% Wilson interval")
        ax.plot(times, running, color="tab:blue", label=f"decided accuracy (final {running[-1]:.1%})")
        # The first few decisions swing between 0 and 1; scale the axis to the settled part.
        settled = slice(len(keep) // SETTLE_SHARE, None)
        ax.set_ylim(
            min(CHANCE - Y_MARGIN, float(low[settled].min())),
            max(CHANCE + Y_MARGIN, float(high[settled].max())),
        )
        figure.autofmt_xdate()
    else:
        _note(ax, "no decided prediction")
        ax.set_ylim(0, 1)
    ax.set_xlabel("candle start (UTC)")
    ax.set_ylabel("decided accuracy so far")
    ax.set_title(f"{title + ': ' if title else ''}cumulative decided accuracy ({len(where):,} decided)")
    ax.legend(loc="best")
    return _save(figure, path)


def write_all(
    result: Evaluation,
    candle_ts: np.ndarray,
    predicted: np.ndarray,
    actual: np.ndarray,
    directory: str | Path,
    prefix: str = "",
    title: str = "",
) -> list[Path]:
    """The four plots of one evaluation into `directory` (file names start with `prefix`)."""
    directory = Path(directory)
    return [
        confusion(result.confusion, directory / f"{prefix}confusion.png", title),
        reliability(result.heads, directory / f"{prefix}reliability.png", title, result.uncalibrated),
        coverage(result.coverage, directory / f"{prefix}coverage.png", title),
        cumulative_accuracy(
            candle_ts, predicted, actual, directory / f"{prefix}cumulative_accuracy.png", title
        ),
    ]


def plot_all(
    joined: Joined, results: EvaluationSet, directory: str | Path, rule: FlatConfig | None = None
) -> list[Path]:
    """eval's plots: the four of the model and the confusion matrix of every other judged predictor
    (the baselines, any compared model).

    Pass the same `rule` the model was evaluated with: the running accuracy then re-decides from the
    probabilities exactly as the metrics did, instead of plotting the recorded directions.
    """
    directory = Path(directory)
    if rule is None:
        predicted = joined.predicted
    else:
        predicted = directions(joined.p_up, joined.p_down, rule, joined.spread)
    paths = write_all(results.model, joined.candle_ts, predicted, joined.actual, directory, title=MODEL)
    for name, result in results.judged.items():
        if name != MODEL:
            paths.append(confusion(result.confusion, directory / f"{name}_confusion.png", name))
    return paths


def leaderboard(board: Leaderboard, path: str | Path) -> Path:
    """Each judged job's decided accuracy on validation and test with 95% Wilson intervals, against
    persistence's on the same candles; the job chosen on validation in bold. Jobs with fewer than
    min_decided decided calls in a block show no point there."""
    jobs = board.judged
    labels = [textwrap.fill(job.label, BOARD_LABEL_CHARS) for job in jobs]
    lines = max((label.count("\n") + 1 for label in labels), default=1)
    height = BOARD_BASE_HEIGHT + max(BOARD_ROW_HEIGHT, BOARD_LINE_HEIGHT * lines) * len(jobs)
    figure = Figure(figsize=(BOARD_WIDTH, height), layout="constrained")
    ax = figure.subplots()
    for offset, block in zip((-BOARD_OFFSET, BOARD_OFFSET), BLOCKS, strict=True):
        colour = BOARD_COLOURS[block]
        rows = [
            (y + offset, f)
            for y, job in enumerate(jobs)
            if (f := getattr(job, block)) is not None
            and f.accuracy is not None
            and f.decided >= board.min_decided
        ]
        if rows:
            accuracy = np.array([f.accuracy for _, f in rows])
            low = accuracy - np.array([f.wilson_low for _, f in rows])
            high = np.array([f.wilson_high for _, f in rows]) - accuracy
            ax.errorbar(
                accuracy,
                [y for y, _ in rows],
                xerr=(low, high),
                fmt="o",
                color=colour,
                capsize=3,
                label=block,
            )
        bar = board.persistence[block].accuracy
        if bar is not None:
            ax.axvline(bar, ls="--", color=colour, alpha=0.6, label=f"persistence, {block}")
    ax.axvline(CHANCE, ls=":", color="0.5", label="chance (50%)")
    ax.set_yticks(range(len(jobs)), labels, fontsize="small")
    chosen = board.chosen_job
    for tick, job in zip(ax.get_yticklabels(), jobs, strict=True):
        if job is chosen:
            tick.set_fontweight("bold")
    ax.invert_yaxis()
    ax.set_xlabel("decided accuracy (95% Wilson interval)")
    best = board.best_of_n
    ax.set_title(
        f"sweep leaderboard: {len(jobs)} jobs; best of N, Reality Check p={best.reality_check_p:.3g}, "
        f"SPA p={best.spa_p:.3g}"
    )
    ax.legend(loc="best", fontsize="small")
    return _save(figure, path)


def member_weights(candle_ts: Sequence[int], weights: dict[str, list[float]], path: str | Path) -> Path:
    """A combiner's member weights over time (model=combiner): who it listened to, and when."""
    figure = Figure(figsize=WIDE, layout="constrained")
    ax = figure.subplots()
    if len(candle_ts):
        keep = _thinned(len(candle_ts))
        times = np.asarray(candle_ts, np.int64)[keep].astype("datetime64[ms]")
        for name, series in weights.items():
            ax.plot(times, np.asarray(series, np.float64)[keep], label=name)
        ax.legend(loc="best")
        figure.autofmt_xdate()
    else:
        _note(ax, "no candle")
    ax.set(
        xlabel="candle start (UTC)", ylabel="weight", ylim=(0, 1), title="member weights after each candle"
    )
    return _save(figure, path)
