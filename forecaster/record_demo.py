"""`make record-demo`: an hour of order flow recorded from the local Bybit emulator, offline.

`mode=record` against `forecaster.emulator` on 127.0.0.1 with its flow faults on (duplicate trade
ids, crossed and gapped books, book restarts with u = 1), into outputs/record-demo/flow_store; then
a summary of what the store holds. Extra arguments are Hydra overrides for mode=record.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from forecaster.emulator.launch import EmulatorDidNotStart, launch_emulator
from forecaster.errors import EXIT_USER_ERROR
from forecaster.flow.store import read_store

# duplicate trade messages, crossed and gapped books, book restarts: every resync shows in the log
FAULTS = (
    "--trade-duplicate-every", "5", "--book-cross-every", "50", "--book-gap-every", "70",
    "--book-restart-every", "20",
)  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m forecaster.record_demo",
        description=(__doc__ or "").split("\n")[0],
        epilog="Any other argument is a Hydra override for mode=record, e.g. mode.raw_trades=true.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--minutes", type=int, default=60, help="1m candles to record")
    parser.add_argument("--speed", type=float, default=2.0, help="emulated 1m candles per second")
    parser.add_argument("--store", type=Path, default=Path("outputs/record-demo/flow_store"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args, overrides = _parser().parse_known_args(argv)
    try:
        with launch_emulator("--speed", str(args.speed), *FAULTS) as emulator:
            command = [
                sys.executable, "-m", "forecaster", "mode=record", f"source.rest_url={emulator.rest_url}",
                f"source.ws_url={emulator.ws_url}", f"paths.flow_store={args.store}",
                f"live.max_candles={args.minutes}", "hydra.run.dir=outputs/record-demo/run", *overrides,
            ]  # fmt: skip
            recorded = subprocess.run(command, check=False)
    except EmulatorDidNotStart as exc:
        print(f"record-demo: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    if recorded.returncode != 0:
        return recorded.returncode
    candles = read_store(args.store)
    assert candles.flow is not None
    complete = int(candles.flow[:, -1].sum())
    print(
        f"record-demo: {args.store} holds {len(candles)} minutes, {complete} with complete flow "
        "(the first minute of each session and those with the book out of sync at the close are not); "
        f"train on days of them with: python -m forecaster mode=train source=flow_store "
        f"paths.flow_store={args.store} 'features=[rich,flow]'"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
