"""eval's results as text: a few console lines and a Markdown report (report.md in the run dir)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from forecaster.metrics import LABELS

JOIN = "join"


def _who(results: Mapping[str, Any]) -> list[str]:
    """The judged predictors in order: the model, the baselines, then any compared model."""
    return [name for name in results if name != JOIN]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _decided_line(name: str, result: Mapping[str, Any]) -> str:
    decided = result["decided"]
    accuracy = decided.get("accuracy")
    interval = (
        f" [{_pct(decided.get('wilson_low'))}, {_pct(decided.get('wilson_high'))}]"
        if accuracy is not None
        else ""
    )
    coverage = _pct(1 - result["overall"]["flat_share"])
    brier = f"{_num(result['heads']['up'].get('brier'))}/{_num(result['heads']['down'].get('brier'))}"
    return (
        f"{name:<16} decided {decided['n']:>7} of {result['n']:<7} ({coverage})"
        f"  accuracy {_pct(accuracy)}{interval}"
        f"  p(vs 50%)={_num(decided.get('p_value_vs_chance'), 3)}  Brier up/down {brier}"
    )


def summary_lines(results: Mapping[str, Any]) -> list[str]:
    join = results[JOIN]
    lines = [
        f"joined {join['matched']} predictions with their facts ({join['unmatched']} without a fact yet, "
        f"{join['duplicate_predictions']} duplicate and {join['out_of_order']} out-of-order lines)",
    ]
    lines += [_decided_line(who, results[who]) for who in _who(results)]
    return lines


def _confusion_table(confusion: Mapping[str, Mapping[str, int]]) -> list[str]:
    lines = ["| predicted \\ fact | " + " | ".join(LABELS) + " |", "|---|" + "---|" * len(LABELS)]
    for label in LABELS:
        row = confusion[f"pred_{label}"]
        lines.append(f"| {label} | " + " | ".join(str(row[f"fact_{fact}"]) for fact in LABELS) + " |")
    return lines


def _comparison_table(results: Mapping[str, Any]) -> list[str]:
    lines = [
        "| | rows | decided | decided accuracy (95% CI) | p vs 50% | p vs majority | Brier up | Brier down"
        " | log loss up | log loss down | ECE up | ECE down |",
        "|---|" + "---|" * 11,
    ]
    for who in _who(results):
        r = results[who]
        d, up, down = r["decided"], r["heads"]["up"], r["heads"]["down"]
        ci = f"{_pct(d.get('accuracy'))} ({_pct(d.get('wilson_low'))} to {_pct(d.get('wilson_high'))})"
        cells = [
            str(r["n"]),
            str(d["n"]),
            ci,
            _num(d.get("p_value_vs_chance"), 3),
            _num(d.get("p_value_vs_majority"), 3),
            _num(up.get("brier")),
            _num(down.get("brier")),
            _num(up.get("log_loss")),
            _num(down.get("log_loss")),
            _num(up.get("ece")),
            _num(down.get("ece")),
        ]
        lines.append(f"| {who} | " + " | ".join(cells) + " |")
    return lines


def _hours_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["| hour (UTC) | predictions | decided | decided accuracy |", "|---|---|---|---|"]
    lines += [f"| {r['hour']:02d} | {r['n']} | {r['decided']} | {_pct(r['accuracy'])} |" for r in rows]
    return lines


def render_report(results: Mapping[str, Any], source: Path, plots: Sequence[Path], run_dir: Path) -> str:
    model = results["model"]
    join = results[JOIN]
    parts = [
        "# Evaluation",
        "",
        f"Predictions and facts from `{source}`. A prediction made at candle t is judged by the move of "
        "candle t+1; FLAT is an abstention; a decided prediction against a zero move is a miss. "
        "p-values are one-sided exact binomial tails of the decided hits.",
        "",
        "## Join",
        "",
        *(f"- {key.replace('_', ' ')}: {value}" for key, value in join.items()),
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
        *_confusion_table(model["confusion"]),
        "",
    ]
    undefined = {**model["decided"].get("undefined", {}), **model["heads"]["up"].get("undefined", {})}
    if undefined:
        parts += ["Not defined on this data: " + "; ".join(f"{k} ({v})" for k, v in undefined.items()), ""]
    if "by_hour" in model:
        parts += ["## By hour of day", "", *_hours_table(model["by_hour"]), ""]
    if plots:
        parts += ["## Plots", "", *(f"![{p.stem}]({p.relative_to(run_dir)})" for p in plots), ""]
    return "\n".join(parts)
