"""`make demo`: a live session against the local Bybit emulator, offline, in under a minute.

Starts `forecaster.emulator` on a free port of 127.0.0.1 over the shipped sample at high speed,
runs `python -m forecaster mode=live` against it for a few hundred candles (extra arguments are
passed on as overrides), then stops the emulator and says where the records and MLflow run are.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

from forecaster.data import SAMPLE_CSV

URLS = re.compile(r"rest_url=(\S+) ws_url=(\S+)")
EMULATOR_START_TIMEOUT_S = 30


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m forecaster.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--candles", type=int, default=300, help="live candles to predict (default 300)")
    parser.add_argument("--speed", type=float, default=600, help="emulator speed: 600 = 10 candles/s")
    parser.add_argument("--data", default=str(SAMPLE_CSV), help="1m candle CSV(.gz) (default: the sample)")
    args, overrides = parser.parse_known_args()
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "forecaster.emulator",
            "--data",
            args.data,
            "--port",
            "0",
            "--speed",
            str(args.speed),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = emulator.stdout.readline() if emulator.stdout else ""
        found = URLS.search(line)
        if not found:
            sys.exit(f"demo: the emulator did not start (it printed {line!r})")
        rest_url, ws_url = found.groups()
        print(f"demo: Bybit emulator on {rest_url} (x{args.speed:g}); live mode for {args.candles} candles")
        live = [
            sys.executable,
            "-m",
            "forecaster",
            "mode=live",
            f"source.rest_url={rest_url}",
            f"source.ws_url={ws_url}",
            f"live.max_candles={args.candles}",
            *overrides,
        ]
        code = subprocess.call(live)
    finally:
        emulator.terminate()
        emulator.wait(EMULATOR_START_TIMEOUT_S)
    if code == 0:
        print("demo: done. Records (candles/predictions/facts.jsonl) are in the run dir above; `make ui`")
    sys.exit(code)


if __name__ == "__main__":
    main()
