"""eval's results as text: a few console lines and a Markdown report (report.md in the run dir)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from forecaster.evaluation.sections import (
    VS_PERSISTENCE,
    Confusion,
    Evaluation,
    EvaluationSet,
    HourRow,
    Paired,
)
from forecaster.evaluation.statistics import LABELS, wilson_interval

SIGNIFICANCE = 0.05  # the one-sided level at which the verdict calls a paired difference real


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def accuracy_interval(hits_share: float | None, low: float | None, high: float | None) -> str:
    """'51.2% [49.1%, 53.3%]': an accuracy is never shown without its interval."""
    return f"{_pct(hits_share)} [{_pct(low)}, {_pct(high)}]" if hits_share is not None else "-"


def _decided_line(name: str, result: Evaluation, min_decided: int) -> str:
    """No headline accuracy without n and its interval; none at all below `min_decided` calls."""
    decided, flat_share = result.decided, result.overall.flat_share
    coverage = _pct(None if flat_share is None else 1 - flat_share)
    line = f"{name:<16} decided {decided.n:>7} of {result.n:<7} ({coverage})"
    if decided.n < min_decided:
        return line + f"  too few decided calls to judge (eval.min_decided={min_decided})"
    line += f"  accuracy {accuracy_interval(decided.accuracy, decided.wilson_low, decided.wilson_high)}"
    nonzero = accuracy_interval(
        decided.nonzero_accuracy, decided.nonzero_wilson_low, decided.nonzero_wilson_high
    )
    line += f"  on non-zero moves {nonzero} of {decided.nonzero_n}"
    size = result.economics
    if size is not None and size.mean_bps is not None:
        line += f"  move {size.mean_bps:+.2f} bps [{_num(size.low_bps, 2)}, {_num(size.high_bps, 2)}]"
    return line


def paired_line(name: str, test: Paired) -> str:
    """One paired test as a sentence; `name` is "<first>_vs_<other>", e.g. model_vs_persistence."""
    first, _, other = name.partition("_vs_")
    if test.p_value is None:
        return f"{first} vs {other}: no candle that both decide"
    return (
        f"{first} vs {other} on the {test.n} candles both decide: {_pct(test.accuracy)} vs "
        f"{_pct(test.other_accuracy)}; only {first} right {test.only_first}, only {other} right "
        f"{test.only_other}; one-sided exact McNemar p={test.p_value:.3g}"
    )


def verdict(results: EvaluationSet, min_decided: int, cost_bps: float) -> str:
    """One plain sentence: does the model beat persistence on these candles, and would it survive costs."""
    model = results.model
    bar = results.paired.get(VS_PERSISTENCE)
    if model.decided.n < min_decided or bar is None or bar.p_value is None:
        return f"too few decided calls to judge ({model.decided.n} < eval.min_decided={min_decided})"
    if bar.p_value >= SIGNIFICANCE:
        return f"no better than persistence on these candles (paired p={bar.p_value:.3g})"
    size = model.economics
    after = None if size is None else size.after_cost_bps
    costs = (
        f"and its calls move {size.mean_bps:+.2f} bps on average, {-after:.2f} bps short of a "
        f"{cost_bps:g} bps round trip: not tradable"
        if size is not None and size.mean_bps is not None and after is not None and after < 0
        else "and its calls cover the round-trip cost on average"
    )
    return f"better than persistence on these candles (paired p={bar.p_value:.3g}), {costs}"


def summary_lines(results: EvaluationSet, min_decided: int, cost_bps: float) -> list[str]:
    join = results.join
    lines = [
        f"joined {join.matched} predictions with their facts ({join.unmatched} without a fact yet, "
        f"{join.duplicate_predictions} duplicate and {join.out_of_order} out-of-order lines)",
    ]
    lines += [_decided_line(who, result, min_decided) for who, result in results.judged.items()]
    lines += [paired_line(name, test) for name, test in results.paired.items()]
    calibration = calibration_line(results.model)
    if calibration is not None:
        lines.append(calibration)
    lines.append(f"verdict: {verdict(results, min_decided, cost_bps)}")
    return lines


def _confusion_table(confusion: Confusion) -> list[str]:
    lines = ["| predicted \\ fact | " + " | ".join(LABELS) + " |", "|---|" + "---|" * len(LABELS)]
    for label, row in zip(LABELS, confusion.counts, strict=True):
        lines.append(f"| {label} | " + " | ".join(str(count) for count in row) + " |")
    return lines


def _comparison_table(results: EvaluationSet) -> list[str]:
    lines = [
        "| | rows | decided | decided accuracy (95% CI) | on non-zero moves (95% CI) | p vs 50%"
        " | p vs majority | Brier up | Brier down | log loss up | log loss down | ECE up | ECE down |",
        "|---|" + "---|" * 12,
    ]
    for who, r in results.judged.items():
        d, up, down = r.decided, r.heads.up, r.heads.down
        ci = f"{_pct(d.accuracy)} ({_pct(d.wilson_low)} to {_pct(d.wilson_high)})"
        nonzero = (
            f"{_pct(d.nonzero_accuracy)} ({_pct(d.nonzero_wilson_low)} to {_pct(d.nonzero_wilson_high)})"
        )
        cells = [
            str(r.n),
            str(d.n),
            ci,
            nonzero,
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


def _economics_table(results: EvaluationSet) -> list[str]:
    lines = [
        "| | decided | mean move in the called direction, bps (95% CI) | after cost, bps |",
        "|---|---|---|---|",
    ]
    for who, r in results.judged.items():
        e = r.economics
        if e is not None:
            ci = f"{_num(e.mean_bps, 2)} ({_num(e.low_bps, 2)} to {_num(e.high_bps, 2)})"
            lines.append(f"| {who} | {e.n} | {ci} | {_num(e.after_cost_bps, 2)} |")
    return lines


def _share_table(results: EvaluationSet) -> list[str]:
    lines = [
        "| most confident share | margin at least | decided | accuracy (95% CI) |",
        "|---|---|---|---|",
    ]
    for point in results.model.coverage.by_share:
        if point.accuracy is None:
            continue
        low, high = wilson_interval(point.hits, point.decided)
        lines.append(
            f"| {_pct(point.coverage)} | {point.min_margin:.4f} | {point.decided} | "
            f"{_pct(point.accuracy)} ({_pct(low)} to {_pct(high)}) |"
        )
    return lines


def _hours_table(rows: Sequence[HourRow]) -> list[str]:
    lines = ["| hour (UTC) | predictions | decided | decided accuracy |", "|---|---|---|---|"]
    lines += [f"| {r.hour:02d} | {r.n} | {r.decided} | {_pct(r.accuracy)} |" for r in rows]
    return lines


def _calibration_table(model: Evaluation) -> list[str]:
    """Each head's calibration figures before and after the model's calibration, on these candles."""
    before = model.uncalibrated
    if before is None:
        return [
            "Not calibrated: no calibration in the model card (train.calibration=none, or older records)."
        ]
    lines = [
        "| head | ECE before | ECE after | log loss before | log loss after | Brier before | Brier after |",
        "|---|" + "---|" * 6,
    ]
    for name, after in model.heads.named().items():
        raw = before.named()[name]
        cells = [_num(getattr(h, figure)) for figure in ("ece", "log_loss", "brier") for h in (raw, after)]
        lines.append(f"| p_{name} | " + " | ".join(cells) + " |")
    return lines


def calibration_line(model: Evaluation) -> str | None:
    """ECE of both heads before and after calibration, for the console; None for an uncalibrated model."""
    before = model.uncalibrated
    if before is None:
        return None
    heads = ", ".join(
        f"{name} {_num(before.named()[name].ece)} -> {_num(after.ece)}"
        for name, after in model.heads.named().items()
    )
    return f"calibration (fitted on the model's validation rows): ECE {heads} on these candles"


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
        "## Paired tests (the candles both decide)",
        "",
        *(f"- {paired_line(name, test)}" for name, test in results.paired.items()),
        "",
        "## Economic size of the calls (evaluation only; nothing trades)",
        "",
        *_economics_table(results),
        "",
        "## Calibration (model; fitted on its validation rows at training)",
        "",
        *_calibration_table(model),
        "",
        "## Coverage by confidence (model; decide only the most confident share, by |p_up - p_down|)",
        "",
        *_share_table(results),
        "",
        "The margins are this data's own quantiles, so the table describes; `flat=coverage` takes its "
        "margin from the model's validation rows instead.",
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
