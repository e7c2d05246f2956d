"""`json.loads` without its per-call wrapper, for the WebSocket pushes (issue 17's parse rates).

`json.loads` runs two whitespace regexes and several checks around the C scanner: about a third of
the cost of decoding a one-trade push. A push is one compact object, so the scanner is called on it
directly; anything else (leading or trailing whitespace, extra data, bad JSON, bytes) goes to
`json.loads` itself, so the value, or the error, is always the one `json.loads` gives.
"""

from __future__ import annotations

import json
from json.scanner import make_scanner
from typing import Any

# the C scanner json.loads uses (JSONDecoder.__init__ makes its scan_once so; typeshed types it otherwise)
_scan = make_scanner(json.JSONDecoder())  # pyright: ignore[reportArgumentType]


def loads(text: str) -> Any:
    if text[:1] == "{":
        try:
            value, end = _scan(text, 0)
        except (ValueError, StopIteration):  # JSONDecodeError is a ValueError
            return json.loads(text)
        if end == len(text):
            return value
    return json.loads(text)
