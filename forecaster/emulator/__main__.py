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
from typing import NoReturn

from forecaster.candles import parse_utc_ms, read_csv
from forecaster.data import SAMPLE_CSV
from forecaster.emulator.clock import REAL_TIME
from forecaster.emulator.faults import Faults
from forecaster.emulator.flow import DEFAULT_TRADES_PER_CANDLE, check_per_candle
from forecaster.emulator.server import Emulator
from forecaster.errors import EXIT_USER_ERROR, UserError

MAX_PORT = 65535


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (what is wrong, where to look), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: {message} (see --help)\n")


def port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"port must be 0..{MAX_PORT}, got {value}")
    return value


def speed(text: str) -> float:
    value = float(text)
    if not value > 0:  # a clocked server needs time to pass; source=replay is the way to go flat out
        raise argparse.ArgumentTypeError(f"speed must be > 0 candles per second, got {text}")
    return value


def trades_per_candle(text: str) -> int:
    try:
        return check_per_candle(int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m forecaster.emulator",
        description=(__doc__ or "").split("\n")[0],
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=SAMPLE_CSV,
        help="1m candle CSV(.gz) to serve (default: the shipped sample)",
    )
    parser.add_argument(
        "--port",
        type=port,
        default=0,
        help="port on 127.0.0.1; 0 = any free one, printed at start (default: %(default)s)",
    )
    parser.add_argument(
        "--speed",
        type=speed,
        default=REAL_TIME,
        help="1m candles per real second, as source.speed of conf/source/replay.yaml "
        "(default: %(default).4g, one a minute as on the exchange; 10 serves a day in 2.4 minutes)",
    )
    parser.add_argument(
        "--now",
        type=parse_utc_ms,
        help="simulated start time, epoch ms or ISO UTC (default: one day into the data)",
    )
    parser.add_argument(
        "--symbol", default="BTCUSDT", help="the symbol it answers for (default: %(default)s)"
    )
    parser.add_argument(
        "--updates-per-candle",
        type=int,
        default=3,
        help="unconfirmed WS pushes of each candle before its confirm (default: %(default)s)",
    )
    parser.add_argument(
        "--trades-per-candle",
        type=trades_per_candle,
        default=DEFAULT_TRADES_PER_CANDLE,
        help="about this many trades per 1m candle on publicTrade (real BTCUSDT has hundreds; "
        "more cost more CPU) (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the trades and book, as forecaster.emulator.flow.trades_for takes it "
        "(default: %(default)s)",
    )
    group = parser.add_argument_group("faults (0 = off)")
    for f in fields(Faults):
        default = getattr(Faults(), f.name)
        flag = f"--{f.name.replace('_', '-')}"
        group.add_argument(
            flag, type=type(default), default=default, help=f"{f.metadata['help']} (default: %(default)s)"
        )
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
        seed=args.seed,
        trades_per_candle=args.trades_per_candle,
        port=args.port,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with emulator:
        now = datetime.fromtimestamp(emulator.clock.now_ms() / 1000, UTC).isoformat()
        print(
            f"emulator rest_url={emulator.rest_url} ws_url={emulator.ws_url} now={now} "
            f"speed={args.speed:g}/s",
            flush=True,
        )
        await stop.wait()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = _parser()
    args = parser.parse_args()
    try:
        asyncio.run(_serve(args))
    except UserError as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


if __name__ == "__main__":
    main()
