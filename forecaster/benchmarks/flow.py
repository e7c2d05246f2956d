"""Order flow: flow bars per candle (forecaster/benchmarks/flow_bars.py) and the flow store."""

from __future__ import annotations

from forecaster.benchmarks.flow_bars import bar_figures


def run(quick: bool) -> dict[str, object]:
    return {**bar_figures(quick)}
