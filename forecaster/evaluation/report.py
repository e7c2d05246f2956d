"""eval's results as text: a few console lines and a Markdown report (report.md in the run dir)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from forecaster.evaluation.sections import Confusion, Evaluation, EvaluationSet, HourRow
from forecaster.evaluation.statistics import LABELS


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _decided_line(name: str, result: Evaluation) -> str:
    decided, flat_share = result.decided, result.overall.flat_share
    interval = (
        f" [{_pct(decided.wilson_low)}, {_pct(decided.wilson_high)}]" if decided.accuracy is not None else ""
    )
    coverage = _pct(None if flat_share is None else 1 - flat_share)
    brier = f"{_num(result.heads.up.brier)}/{_num(result.heads.down.brier)}"
    return (
        f"{name:<16} decided {decided.n:>7} of {result.n:<7} ({coverage})"
        f"  accuracy {_pct(decided.accuracy)}{interval}"
        f"  p(vs 50%)={_num(decided.p_value_vs_chance, 3)}  Brier up/down {brier}"
    )


def summary_lines(results: EvaluationSet) -> list[str]:
    join = results.join
    lines = [
        f"joined {join.matched} predictions with their facts ({join.unmatched} without a fact yet, "
        f"{join.duplicate_predictions} duplicate and {join.out_of_order} out-of-order lines)",
    ]
    lines += [_decided_line(who, result) for who, result in results.judged.items()]
    return lines


def _confusion_table(confusion: Confusion) -> list[str]:
    lines = ["| predicted \\ fact | " + " | ".join(LABELS) + " |", "|---|" + "---|" * len(LABELS)]
    for label, row in zip(LABELS, confusion.counts, strict=True):
        lines.append(f"| {label} | " + " | ".join(str(count) for count in row) + " |")
    return lines


def _comparison_table(results: EvaluationSet) -> list[str]:
    lines = [
        "| | rows | decided | decided accuracy (95% CI) | p vs 50% | p vs majority | Brier up | Brier down"
        " | log loss up | log loss down | ECE up | ECE down |",
        "|---|" + "---|" * 11,
    ]
    for who, r in results.judged.items():
        d, up, down = r.decided, r.heads.up, r.heads.down
        ci = f"{_pct(d.accuracy)} ({_pct(d.wilson_low)} to {_pct(d.wilson_high)})"
        cells = [
            str(r.n),
            str(d.n),
            ci,
            _num(d.p_value_vs_chance, 3),
            _num(d.p_value_vs_majority, 3),
            _num(up.brier),
            _num(down.brier),
            _num(up.log_loss),
            _num(down.log_loss),
            _num(up.ece),
            _num(down.ece),
        ]
        lines.append(f"| {who} | " + " | ".join(cells) + " |")
    return lines


def _hours_table(rows: Sequence[HourRow]) -> list[str]:
    lines = ["| hour (UTC) | predictions | decided | decided accuracy |", "|---|---|---|---|"]
    lines += [f"| {r.hour:02d} | {r.n} | {r.decided} | {_pct(r.accuracy)} |" for r in rows]
    return lines


def render_report(results: EvaluationSet, source: Path, plots: Sequence[Path], run_dir: Path) -> str:
    model = results.model
    parts = [
        "# Evaluation",
        "",
        f"Predictions and facts from `{source}`. A prediction made at candle t is judged by the move of "
        "candle t+1; FLAT is an abstention; a decided prediction against a zero move is a miss. "
        "p-values are one-sided exact binomial tails of the decided hits.",
        "",
        "## Join",
        "",
        *(f"- {key.replace('_', ' ')}: {value}" for key, value in results.join.to_json().items()),
        "",
        "## Model and baselines on the same candles",
        "",
        *_comparison_table(results),
        "",
        "Persistence repeats the move that led into t; majority always says the more frequent direction "
        "of the evaluated facts (chosen in-sample, which flatters it).",
        "",
        "## Confusion matrix (model)",
        "",
        *_confusion_table(model.confusion),
        "",
    ]
    undefined = {**model.decided.undefined, **model.heads.up.undefined}
    if undefined:
        parts += ["Not defined on this data: " + "; ".join(f"{k} ({v})" for k, v in undefined.items()), ""]
    if model.by_hour is not None:
        parts += ["## By hour of day", "", *_hours_table(model.by_hour), ""]
    if plots:
        parts += ["## Plots", "", *(f"![{p.stem}]({p.relative_to(run_dir)})" for p in plots), ""]
    return "\n".join(parts)
