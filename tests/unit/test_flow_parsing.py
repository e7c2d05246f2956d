"""Trades and the order book from Bybit's pushes: the fixtures, dedupe, and every book rule and check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from forecaster.flow.book import Applied, BookMessageError, OrderBook, parse_book
from forecaster.flow.trades import TradeDedupe, parse_trades
from forecaster.flow.types import Trade

TOPIC = "orderbook.50.BTCUSDT"


def fixture_text(fixtures_dir: Path, name: str) -> str:
    return (fixtures_dir / name).read_text()


def book_push(kind: str, u: int, bids: list[list[str]], asks: list[list[str]], cts: int = 0) -> dict:
    data = {"s": "BTCUSDT", "b": bids, "a": asks, "u": u, "seq": u}
    return {"topic": TOPIC, "ts": cts + 2, "type": kind, "data": data, "cts": cts}


def synced_book(u: int = 10) -> OrderBook:
    book = OrderBook(50)
    snapshot = book_push("snapshot", u, [["100.0", "1"], ["99.5", "2"]], [["100.5", "3"], ["101.0", "4"]])
    assert book.apply(snapshot) is Applied.SNAPSHOT
    return book


def test_trade_fixture(fixtures_dir: Path) -> None:
    trades, errors = parse_trades(fixture_text(fixtures_dir, "trade_push.json"))
    assert errors == []
    assert trades[0] == Trade(1768480452115, 96410.5, 0.004213, True, "2290000000106581934", 82550417112)
    assert [t.buy for t in trades] == [True, True, False]
    assert [t.ts_ms for t in trades] == [1768480452115, 1768480452115, 1768480452117]


def test_malformed_trades_are_reported_and_skipped_never_raised() -> None:
    good = {"i": "7", "T": 1, "p": "10.5", "v": "0.1", "S": "Sell", "seq": 3}
    bad_items = [
        {**good, "S": "Up"},
        {**good, "p": "abc"},
        {**good, "v": "0"},
        {**good, "p": "nan"},
        {**good, "i": 7},
        {k: v for k, v in good.items() if k != "T"},
        "not an object",
    ]
    trades, errors = parse_trades(json.dumps({"topic": "publicTrade.X", "data": [good, *bad_items]}))
    assert trades == [Trade(1, 10.5, 0.1, False, "7", 3)]
    assert len(errors) == len(bad_items)
    for junk in ("{", "[]", '{"topic": "publicTrade.X"}', '{"data": 5}'):
        trades, errors = parse_trades(junk)
        assert trades == [] and errors, junk


def test_dedupe_across_a_reconnect_and_bounded() -> None:
    def trade(i: int) -> Trade:
        return Trade(i, 1.0, 1.0, True, str(i), i)

    dedupe = TradeDedupe(window=3)
    assert dedupe.new([trade(1), trade(2), trade(2)]) == [trade(1), trade(2)]
    # a new connection re-sends the last trades it had: only the new one passes
    assert dedupe.new([trade(2), trade(3)]) == [trade(3)]
    assert dedupe.duplicates == 2
    dedupe.new([trade(4)])  # the window holds 2, 3, 4 now: 1 is forgotten
    assert dedupe.new([trade(1)]) == [trade(1)]
    # a push of many trades: checked as a batch when all are new, one by one otherwise
    big = TradeDedupe(window=20)
    assert big.new([trade(i) for i in range(10)]) == [trade(i) for i in range(10)]
    pushed = [trade(i) for i in (9, *range(10, 18), 17)]
    assert big.new(pushed) == [trade(i) for i in range(10, 18)] and big.duplicates == 2
    assert big.new([trade(i) for i in range(18, 30)]) == [trade(i) for i in range(18, 30)]
    assert big.new([trade(0)]) == [trade(0)], "the window keeps the last 20 ids only"


def test_book_fixtures(fixtures_dir: Path) -> None:
    book = OrderBook(50)
    assert book.apply(parse_book(fixture_text(fixtures_dir, "orderbook50_snapshot.json"))) is Applied.SNAPSHOT
    assert book.apply(parse_book(fixture_text(fixtures_dir, "orderbook50_delta.json"))) is Applied.DELTA
    view = book.view()
    # 96410.1 deleted, 96409.9 inserted, ask 96410.5 updated
    assert view.bids.tolist() == [[96410.0, 1.05], [96409.9, 0.31], [96409.5, 0.2]]
    assert view.asks.tolist() == [[96410.5, 0.02], [96410.6, 0.64], [96411.2, 2.31]]
    assert (view.update_id, view.ts_ms, view.crossed) == (4418212, 1768480452138, False)
    top = OrderBook(1)
    assert top.apply(parse_book(fixture_text(fixtures_dir, "orderbook1_snapshot.json"))) is Applied.SNAPSHOT
    assert top.view().bids.tolist() == [[96410.0, 1.05]] and top.view().asks.tolist() == [[96410.5, 0.02]]


def test_delete_insert_update_and_best_levels() -> None:
    book = synced_book()
    delta = book_push("delta", 11, [["100.0", "0"], ["99.8", "5"], ["99.5", "2.5"]], [["100.5", "0"]])
    assert book.apply(delta) is Applied.DELTA
    view = book.view()
    assert view.bids.tolist() == [[99.8, 5.0], [99.5, 2.5]]
    assert view.asks.tolist() == [[101.0, 4.0]]
    assert book.apply(book_push("delta", 12, [["99.0", "0"]], [])) is Applied.DELTA  # unknown level deleted
    assert book.view() is book.view()  # cached until the next change
    assert book.apply(book_push("delta", 13, [["100.9", "1"]], [["100.95", "1"]])) is Applied.DELTA
    assert book.view().bids[0].tolist() == [100.9, 1.0] and book.view().asks[0].tolist() == [100.95, 1.0]


def test_view_keeps_at_most_depth_levels() -> None:
    book = OrderBook(1)
    book.apply(book_push("snapshot", 1, [["99", "1"], ["98", "1"]], [["101", "1"], ["102", "1"]]))
    assert book.view().bids.shape == (1, 2) and book.view().asks.tolist() == [[101.0, 1.0]]
    empty = OrderBook(50)
    empty.apply(book_push("snapshot", 1, [], []))
    assert empty.view().bids.shape == (0, 2) and not empty.view().crossed


def test_gap_needs_a_resync_and_deltas_wait_for_a_snapshot() -> None:
    book = synced_book(u=10)
    before = book.view()
    assert book.apply(book_push("delta", 12, [["99.9", "1"]], [])) is Applied.GAP
    assert not book.synced and book.view() is before  # not patched
    assert book.apply(book_push("delta", 13, [["99.9", "1"]], [])) is Applied.IGNORED
    assert book.apply(book_push("delta", 10, [["99.9", "1"]], [])) is Applied.IGNORED
    synced = synced_book(u=10)
    assert synced.apply(book_push("delta", 10, [], [])) is Applied.GAP  # a repeated u is a gap too


def test_snapshot_resets_even_with_u_1_after_a_restart() -> None:
    book = synced_book(u=4418211)
    assert book.apply(book_push("snapshot", 1, [["50", "1"]], [["51", "2"]])) is Applied.SNAPSHOT
    assert book.synced and book.view().bids.tolist() == [[50.0, 1.0]] and book.view().update_id == 1
    assert book.apply(book_push("delta", 2, [["50.5", "1"]], [])) is Applied.DELTA
    # depth 1 re-pushes an unchanged snapshot with the same u: fine
    assert book.apply(book_push("snapshot", 2, [["50.5", "1"]], [["51", "2"]])) is Applied.SNAPSHOT


def test_crossed_book_needs_a_resync() -> None:
    book = synced_book()
    assert book.apply(book_push("delta", 11, [["100.5", "1"]], [])) is Applied.CROSSED
    assert not book.synced and book.view().crossed  # what was received, shown as it is
    assert book.apply(book_push("delta", 12, [], [["100.5", "0"]])) is Applied.IGNORED
    crossed_snapshot = book_push("snapshot", 20, [["101", "1"]], [["100", "1"]])
    assert OrderBook(50).apply(crossed_snapshot) is Applied.CROSSED


@pytest.mark.parametrize(
    "message",
    [
        {"type": "delta"},
        book_push("delta", 11, [["abc", "1"]], []),
        book_push("delta", 11, [["-1", "1"]], []),
        book_push("delta", 11, [["100", "-1"]], []),
        book_push("delta", 11, [["100"]], []),
        {**book_push("delta", 11, [], []), "type": "other"},
        {**book_push("snapshot", 11, [], []), "data": {"u": "11", "b": [], "a": []}},
    ],
    ids=["no_data", "bad_price", "negative_price", "negative_size", "short_level", "bad_type", "u_not_int"],
)
def test_malformed_book_messages_raise_one_error_type(message: dict) -> None:
    book = synced_book()
    with pytest.raises(BookMessageError):
        book.apply(message)


def test_malformed_snapshot_leaves_the_book_as_it_was() -> None:
    book = synced_book()
    before = book.view()
    with pytest.raises(BookMessageError):
        book.apply(book_push("snapshot", 30, [["100", "x"]], []))
    assert book.synced and book.view() is before
    for junk in ("{", "[1]"):
        with pytest.raises(BookMessageError):
            parse_book(junk)
    assert np.array_equal(before.bids, book.view().bids)


def test_a_broken_delta_puts_the_book_out_of_sync() -> None:
    """Its first levels may be in already: the book cannot be trusted until the next snapshot."""
    book = synced_book()
    with pytest.raises(BookMessageError):
        book.apply(book_push("delta", 11, [["99.9", "1"], ["oops", "1"]], []))
    assert not book.synced and [99.9, 1.0] in book.view().bids.tolist()
    assert book.apply(book_push("delta", 12, [], [])) is Applied.IGNORED
