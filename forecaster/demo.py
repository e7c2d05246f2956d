"""`make demo`: a live session against the local Bybit emulator, offline, in under a minute.

Starts `forecaster.emulator` on a free port of 127.0.0.1 over the shipped sample at high speed,
runs `python -m forecaster mode=live` against it for a few hundred candles (extra arguments are
passed on as overrides), then stops the emulator and says where the records and MLflow run are.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from forecaster.data import SAMPLE_CSV
from forecaster.emulator.launch import EmulatorDidNotStart, launch_emulator


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m forecaster.demo", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--candles", type=int, default=300, help="live candles to predict (default 300)")
    parser.add_argument("--speed", type=float, default=10, help="emulator speed, 1m candles per second")
    parser.add_argument("--data", default=str(SAMPLE_CSV), help="1m candle CSV(.gz) (default: the sample)")
    args, overrides = parser.parse_known_args()
    try:
        with launch_emulator("--data", args.data, "--speed", str(args.speed)) as emulator:
            print(
                f"demo: Bybit emulator on {emulator.rest_url} (x{args.speed:g}); "
                f"live mode for {args.candles} candles"
            )
            live = [sys.executable, "-m", "forecaster", "mode=live", f"source.rest_url={emulator.rest_url}"]
            live += [f"source.ws_url={emulator.ws_url}", f"live.max_candles={args.candles}", *overrides]
            code = subprocess.call(live)
    except EmulatorDidNotStart as exc:
        sys.exit(f"demo: {exc}")
    if code == 0:
        print("demo: done. Records (candles/predictions/facts.jsonl) are in the run dir above; `make ui`")
    sys.exit(code)


if __name__ == "__main__":
    main()
