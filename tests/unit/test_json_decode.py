"""forecaster.json_decode.loads gives json.loads's value, or its error, for every text."""

from __future__ import annotations

import json

import pytest

from forecaster.json_decode import loads

TEXTS = ['{"a":[1,"2",3.5e400,null]}', ' {"a":1}', '{"a":1} ', '{"a":1}x', "{", "[]", '"x"', "", '{"a":NaN}']


@pytest.mark.parametrize("text", TEXTS)
def test_same_as_json_loads(text: str) -> None:
    try:
        expected = json.loads(text)
    except ValueError as exc:
        with pytest.raises(type(exc), match=str(exc).replace("(", r"\(").replace(")", r"\)")):
            loads(text)
    else:
        assert loads(text) == expected
