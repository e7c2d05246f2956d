"""forecaster.json_decode.loads gives json.loads's value, or its error, for every text."""

from __future__ import annotations

import json

import pytest

from forecaster.json_decode import loads

TEXTS = [
    '{"a":[1,"2",3.5e400,null]}', ' {"a":1}', '{"a":1} ', '{"a":1}x', "{", "[]", '"x"', "", '{"a":NaN}',
    '{"a":"\\ud800"}', '{"a":1,"a":2}', '{"p":"96410.1","v":1e-7}',
]  # fmt: skip


@pytest.mark.parametrize("text", TEXTS)
def test_same_as_json_loads(text: str) -> None:
    try:
        expected = json.loads(text)
    except ValueError as exc:
        with pytest.raises(type(exc), match=str(exc).replace("(", r"\(").replace(")", r"\)")):
            loads(text)
    else:
        assert loads(text) == expected


def test_integers_beyond_64_bits_become_floats() -> None:
    """orjson's one departure (Bybit sends its ids as strings and its counters fit in 64 bits)."""
    assert loads('{"a":123456789012345678901234567890}') == {"a": 1.2345678901234568e29}
    assert loads('{"u":18446744073709551615}') == {"u": 18446744073709551615}
