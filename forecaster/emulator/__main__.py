"""A local Bybit v5 (spot, public market data) server that replays real candles, with fault injection.

Prints one line, `emulator rest_url=... ws_url=... now=... speed=...`, once it listens, then
serves until SIGINT or SIGTERM (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

from forecaster.candles import parse_utc_ms, read_csv
from forecaster.data import SAMPLE_CSV
from forecaster.emulator.faults import Faults
from forecaster.emulator.server import Emulator
from forecaster.errors import UserError

USER_ERROR_EXIT = 2  # as the main entry point does for a UserError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m forecaster.emulator", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument(
        "--data", type=Path, default=SAMPLE_CSV, help="1m candle CSV(.gz) (default: the sample)"
    )
    parser.add_argument("--port", type=int, default=0, help="0 = any free port (printed at start)")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    parser.add_argument(
        "--now", type=parse_utc_ms, help="start time, ms or ISO (default: one day into the data)"
    )
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--updates-per-candle", type=int, default=3, help="unconfirmed pushes per candle")
    group = parser.add_argument_group("faults (0 = off)")
    for f in fields(Faults):
        default = getattr(Faults(), f.name)
        flag = f"--{f.name.replace('_', '-')}"
        group.add_argument(flag, type=type(default), default=default, help=f.metadata["help"])
    return parser


async def _serve(args: argparse.Namespace) -> None:
    faults = Faults(**{f.name: getattr(args, f.name) for f in fields(Faults)})
    emulator = Emulator(
        read_csv(args.data),
        symbol=args.symbol,
        speed=args.speed,
        now_ms=args.now,
        faults=faults,
        updates_per_candle=args.updates_per_candle,
        port=args.port,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with emulator:
        now = datetime.fromtimestamp(emulator.clock.now_ms() / 1000, UTC).isoformat()
        print(
            f"emulator rest_url={emulator.rest_url} ws_url={emulator.ws_url} now={now} speed={args.speed}",
            flush=True,
        )
        await stop.wait()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = _parser()
    args = parser.parse_args()
    if not args.speed > 0:
        parser.error(f"--speed must be > 0, got {args.speed}")
    try:
        asyncio.run(_serve(args))
    except UserError as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT)


if __name__ == "__main__":
    main()
