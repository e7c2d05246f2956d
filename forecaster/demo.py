"""`make demo`: train, go live against the local Bybit emulator, judge the session; offline, minutes.

1. `mode=train` on the first `--train-days` of the candle file (the shipped sample by default);
2. `mode=live` with those weights against `forecaster.emulator` on 127.0.0.1, which replays the
   same file from the end of the training days on (never seen in training) with a few faults on,
   so that reconnects, backfills and duplicates show in the log;
3. `mode=eval` of the session's records against what the candles did next, then a short verdict.

All three use `experiment=demo` (conf/experiment/demo.yaml) and write under outputs/demo/DATE/TIME;
extra arguments are Hydra overrides passed to all three (e.g. `timeframe=5m`, `tracking=off`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from forecaster.candles import DAY_MS, read_csv, utc_text
from forecaster.data import SAMPLE_CSV
from forecaster.emulator.launch import EmulatorDidNotStart, launch_emulator
from forecaster.errors import EXIT_USER_ERROR, UserError
from forecaster.evaluation.report import accuracy_interval
from forecaster.live.session_state import SessionState
from forecaster.modes.base import METRICS_FILE

# Faults the emulator injects during the demo: each connection is cut after 800 pushes (about 200
# candles), every 97th candle's confirm comes twice, every 151st candle never comes (backfilled).
FAULTS = ("--drop-after", "800", "--duplicate-every", "97", "--skip-every", "151")
UI_URL = "http://127.0.0.1:5000"  # where `make ui` serves the default store


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m forecaster.demo",
        description=(__doc__ or "").split("\n")[0],
        epilog="Any other argument is a Hydra override for all three steps, e.g. timeframe=5m.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data", type=Path, default=SAMPLE_CSV, help="1m candle CSV(.gz)")
    parser.add_argument("--train-days", type=int, default=3, help="days from the file's start to train on")
    parser.add_argument("--candles", type=int, default=600, help="live candles to predict")
    parser.add_argument("--speed", type=float, default=20, help="emulator candles per second")
    return parser


def _step(title: str, run_dir: Path, overrides: list[str]) -> None:
    """`python -m forecaster OVERRIDES` into run_dir, shown first; the demo stops where a step fails."""
    overrides = [*overrides, f"hydra.run.dir={run_dir}"]
    print(f"\ndemo: {title}\n  $ python -m forecaster {' '.join(overrides)}", flush=True)
    code = subprocess.call([sys.executable, "-m", "forecaster", *overrides])
    if code != 0:
        sys.exit(code)


def verdict_lines(metrics: dict, live_dir: Path) -> list[str]:
    """The verdict of mode=eval's metrics.json, and where to look at the session in MLflow."""
    decided = metrics["model"]["decided"]
    paired = metrics["paired"]["model_vs_persistence"]
    lines = [
        "",
        f"demo verdict ({metrics['model']['n']} live candles the model had never seen):",
        f"  decided calls: {decided['n']} (the rest FLAT)",
    ]
    if decided.get("nonzero_n"):
        shown = accuracy_interval(
            decided["nonzero_accuracy"], decided["nonzero_wilson_low"], decided["nonzero_wilson_high"]
        )
        lines.append(f"  accuracy on non-zero moves: {shown} of {decided['nonzero_n']}")
    lines.append(
        f"  against persistence on the {paired['n']} candles both decide: model right alone "
        f"{paired['only_first']}, persistence right alone {paired['only_other']}, "
        f"one-sided McNemar p={paired['p_value']:.3g}"
    )
    lines.append(f"  {metrics['verdict']}")
    state = SessionState.load(live_dir)
    if state.run_id is None:
        lines.append("MLflow: no run (tracking=off)")
    else:
        from forecaster.tracking import mlflow_client

        experiment = mlflow_client(str(state.store)).get_run(state.run_id).info.experiment_id
        lines.append(f"MLflow: `make ui`, then {UI_URL}/#/experiments/{experiment}/runs/{state.run_id}")
    return lines


def main() -> None:
    args, overrides = _parser().parse_known_args()
    try:
        first = int(read_csv(args.data).start_ms[0])
    except UserError as exc:
        sys.stderr.write(f"demo: {exc}\n")
        sys.exit(EXIT_USER_ERROR)
    split = first - first % DAY_MS + args.train_days * DAY_MS
    day = utc_text(split).split()[0]  # the first day after training, as data.end and --now take it
    root = Path("outputs/demo") / datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
    common = ["experiment=demo", *overrides]
    _step(
        f"1/3 train on {utc_text(first)} .. {utc_text(split)} UTC of {args.data.name}",
        root / "train",
        ["mode=train", "source=replay", f"source.path={args.data}", f"data.end={day}", *common],
    )
    try:
        faults = ("--now", day, "--speed", str(args.speed), *FAULTS)
        with launch_emulator("--data", str(args.data), *faults) as emulator:
            _step(
                f"2/3 live from {utc_text(split)} UTC, {args.candles} candles from the emulator at "
                f"{args.speed:g} candles/s, with faults on ({' '.join(FAULTS)})",
                root / "live",
                [
                    "mode=live",
                    f"source.rest_url={emulator.rest_url}",
                    f"source.ws_url={emulator.ws_url}",
                    f"live.max_candles={args.candles}",
                    f"model.path={root / 'train' / 'model'}",
                    *common,
                ],
            )
    except EmulatorDidNotStart as exc:
        sys.stderr.write(f"demo: {exc}\n")
        sys.exit(EXIT_USER_ERROR)
    _step(
        "3/3 judge the live session against what each next candle did",
        root / "eval",
        ["mode=eval", f"eval.records={root / 'live'}", *common],
    )
    metrics = json.loads((root / "eval" / METRICS_FILE).read_text())
    print("\n".join(verdict_lines(metrics, root / "live")), flush=True)


if __name__ == "__main__":
    main()
