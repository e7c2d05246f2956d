"""The trades and order book the emulator derives from its candles: pure functions of a candle and a seed.

Anyone can recompute offline exactly what the emulator pushes (faults aside): `trades_for` gives a
1m candle's trades, `book_after` the book the emulator shows once a trade has printed. Prices are
whole ticks and sizes whole base-precision units, so the decimal strings of the messages add up
exactly: a candle's trade sizes sum to its volume (rounded to SIZE_DECIMALS).
"""

from __future__ import annotations

import numpy as np

from forecaster.candles import MINUTE_MS, Candle
from forecaster.flow.types import BookView, Trade

PRICE_DECIMALS = 2  # Bybit BTCUSDT spot tick: 0.01 USDT
SIZE_DECIMALS = 6  # Bybit BTCUSDT spot base precision: 0.000001 BTC
PRICE_SCALE = 10**PRICE_DECIMALS
SIZE_SCALE = 10**SIZE_DECIMALS
DEFAULT_TRADES_PER_CANDLE = 40  # real BTCUSDT has hundreds; few keep the emulator cheap at speed 10
MAX_TRADES_PER_CANDLE = 100_000  # a sanity bound for the setting
TRADE_ID_STRIDE = 1_000_000  # trade ids and seq per minute: room for the bound and the extremes
TRADE_ID_OFFSET = 2_290_000_000_000_000_000  # ids look like Bybit's 19-digit ones
PATH_NOISE = 0.15  # of the candle's range: how far trades stray from the open-extremes-close path
SIZE_SIGMA = 1.0  # log-normal spread of trade sizes: many small, a few large
BOOK_GRID_TICKS = 100  # levels behind the touch sit on a 1 USDT grid
BOOK_MIN_UNITS = 100  # smallest level size, SIZE_SCALE units (0.0001 BTC)
BOOK_SIZE_RANGE = 2_000_000  # level sizes spread over [min, min + range) units (up to ~2 BTC)


def trades_for(candle: Candle, seed: int, per_candle: int = DEFAULT_TRADES_PER_CANDLE) -> list[Trade]:
    """The trades of one 1m candle: the first at the open, the last at the close, high and low
    touched, all inside [low, high], sizes summing to the volume, fill times inside the candle,
    ids and seq increasing. About per_candle of them (a few more to touch every extreme, fewer
    when the volume has fewer units than that); none for a candle without volume."""
    check_per_candle(per_candle)
    units = round(candle.volume * SIZE_SCALE)
    if units <= 0:
        return []
    rng = np.random.default_rng([seed, candle.start_ms])
    low, high = round(candle.low * PRICE_SCALE), round(candle.high * PRICE_SCALE)
    first, last = (min(max(round(x * PRICE_SCALE), low), high) for x in (candle.open, candle.close))
    extremes = [x for x in (high, low) if x not in (first, last)]
    rng.shuffle(extremes)
    anchors = [first, *extremes, last]
    n = min(max(per_candle, len(anchors)), units)
    if n < len(anchors):  # a dust candle: keep the open and the close
        anchors = [first, last][-n:]
    prices = _path(rng, anchors, n, low, high)
    sizes = _split(rng, units, n)
    times = candle.start_ms + np.sort(rng.integers(0, MINUTE_MS, n))
    buys = _taker_sides(rng, prices)
    first_seq = candle.start_ms // MINUTE_MS * TRADE_ID_STRIDE
    return [
        Trade(
            ts_ms=int(times[k]),
            price=int(prices[k]) / PRICE_SCALE,
            size=int(sizes[k]) / SIZE_SCALE,
            buy=bool(buys[k]),
            trade_id=str(TRADE_ID_OFFSET + first_seq + k),
            seq=first_seq + k,
        )
        for k in range(n)
    ]


def check_per_candle(per_candle: int) -> int:
    if not 1 <= per_candle <= MAX_TRADES_PER_CANDLE:
        raise ValueError(f"trades per candle must be in [1, {MAX_TRADES_PER_CANDLE}], got {per_candle}")
    return per_candle


def _path(rng: np.random.Generator, anchors: list[int], n: int, low: int, high: int) -> np.ndarray:
    """n prices (ticks): the anchors in order at the ends and random interior places, noise between."""
    if n == 1:
        return np.array(anchors[-1:], dtype=np.int64)
    places = [0, *np.sort(rng.choice(np.arange(1, n - 1), len(anchors) - 2, replace=False)), n - 1]
    path = np.interp(np.arange(n), places, anchors) + rng.normal(0, PATH_NOISE * (high - low), n)
    prices = np.clip(np.rint(path), low, high).astype(np.int64)
    prices[places] = anchors
    return prices


def _split(rng: np.random.Generator, units: int, n: int) -> np.ndarray:
    """n positive whole sizes summing to units exactly (largest remainders get the leftover)."""
    weights = rng.lognormal(0, SIZE_SIGMA, n)
    shares = weights / weights.sum() * (units - n)
    sizes = np.floor(shares).astype(np.int64)
    leftover = units - n - int(sizes.sum())
    sizes[np.argsort(sizes - shares, kind="stable")[:leftover]] += 1
    return sizes + 1


def _taker_sides(rng: np.random.Generator, prices: np.ndarray) -> np.ndarray:
    """The tick rule (an uptick is a taker buy), a coin where the price does not move; both sides
    appear whenever there are two trades or more."""
    move = np.diff(prices, prepend=prices[0])
    buys = np.where(move == 0, rng.random(len(prices)) < 0.5, move > 0)
    if len(buys) > 1 and (buys.all() or not buys.any()):
        buys[-1] = not buys[0]
    return buys


def book_after(trade: Trade, seed: int, depth: int) -> BookView:
    """The book the emulator shows once `trade` has printed (until the next trade)."""
    bids, asks = book_levels(trade, seed, depth)
    as_view = [np.column_stack((p / PRICE_SCALE, s / SIZE_SCALE)) for p, s in (bids, asks)]
    return BookView(bids=as_view[0], asks=as_view[1], update_id=0, ts_ms=trade.ts_ms)


def book_levels(
    trade: Trade, seed: int, depth: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((bid prices, bid sizes), (ask prices, ask sizes)) in ticks and units, best first: the
    touch (`touch_levels`), then depth - 1 levels of the grid behind it (`grid_levels`)."""
    minute = trade.ts_ms // MINUTE_MS
    sides = []
    for side, (price, size) in enumerate(touch_levels(trade, seed)):
        prices, sizes = grid_levels(side, grid_anchor(side, price), minute, seed, depth - 1)
        sides.append((np.concatenate(([price], prices)), np.concatenate(([size], sizes))))
    return sides[0], sides[1]


def touch_levels(trade: Trade, seed: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """((bid, size), (ask, size)) in ticks and units. The trade took the touch on its side: a taker
    buy at p leaves the ask at p and the bid a tick below, a sell the other way round, so bids stay
    below asks. The touch sizes change with every trade."""
    price = round(trade.price * PRICE_SCALE)
    bid, ask = (price - 1, price) if trade.buy else (price, price + 1)
    salt = np.array([trade.seq], dtype=np.int64)
    sizes = [
        int(_size(seed, side, np.array([p], dtype=np.int64), salt)[0]) for side, p in enumerate((bid, ask))
    ]
    return (bid, sizes[0]), (ask, sizes[1])


def grid_anchor(side: int, touch: int) -> int:
    """The best grid level strictly behind the touch (side 0: bids, below; 1: asks, above)."""
    return (
        (touch - 1) // BOOK_GRID_TICKS * BOOK_GRID_TICKS
        if side == 0
        else -(-(touch + 1) // BOOK_GRID_TICKS) * BOOK_GRID_TICKS
    )


def grid_levels(side: int, anchor: int, minute: int, seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(prices, sizes) of n grid levels from anchor outwards; their sizes change once a minute."""
    steps = np.arange(n, dtype=np.int64) * BOOK_GRID_TICKS
    prices = anchor - steps if side == 0 else anchor + steps
    return prices, grid_sizes(side, prices, minute, seed)


def grid_sizes(side: int, prices: np.ndarray, minute: int, seed: int) -> np.ndarray:
    return _size(seed, side, prices, np.full(len(prices), minute, dtype=np.int64))


def _size(seed: int, side: int, prices: np.ndarray, salts: np.ndarray) -> np.ndarray:
    return (BOOK_MIN_UNITS + _hash(seed, side, prices, salts) % np.uint64(BOOK_SIZE_RANGE)).astype(np.int64)


def _hash(seed: int, side: int, prices: np.ndarray, salts: np.ndarray) -> np.ndarray:
    """A splitmix64 mix of (seed, side, price, salt): stable sizes without a generator per level."""
    x = prices.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    x ^= salts.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
    x ^= np.uint64((seed * 2 + side) % 2**64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def price_text(price: float) -> str:
    return f"{price:.{PRICE_DECIMALS}f}"


def size_text(size: float) -> str:
    return f"{size:.{SIZE_DECIMALS}f}"
