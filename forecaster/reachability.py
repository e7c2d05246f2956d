"""Why a host that never answered could not be reached, in one line naming the URL, the cause and the key.

A failure to reach a host that has not answered once since start (DNS, refused, TLS, silence, a
page that is not JSON) is a wrong setting or no network: retrying cannot fix it, so callers fail
at once with this line. A host that has answered before is in an outage and is retried instead.
Works on any exception chain (aiohttp, urllib, requests): the OS-level cause is found by walking
`__cause__`, `__context__` and urllib's `reason`. Standard library only, so it costs no import.
"""

from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

SNIPPET_CHARS = 80  # how much of a non-JSON body a message quotes


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack: list[BaseException] = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for inner in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(inner, BaseException):
                stack.append(inner)


def _host_port(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    default = {"https": "443", "wss": "443"}.get(parts.scheme, "80")
    return parts.hostname or url, str(parts.port or default)


def unreachable(url: str, error: BaseException, setting: str, server: str, timeout_s: float) -> str:
    """The one line for `error` on a first contact with `url`: its cause and what to check.

    `setting` is the config key holding the URL, `server` what should listen there ("the
    emulator or Bybit", "the MLflow server"), `timeout_s` the limit a silence ran into.
    """
    host, port = _host_port(url)
    causes = list(_chain(error))

    def first(kind: type[BaseException] | tuple[type[BaseException], ...]) -> BaseException | None:
        return next((e for e in causes if isinstance(e, kind)), None)

    if first(socket.gaierror):
        return f"cannot reach {url}: DNS lookup failed for {host} (no network, or a typo in {setting}?)"
    if first(ConnectionRefusedError):
        return (
            f"cannot reach {url}: connection refused by {host}:{port} (is {server} running? check {setting})"
        )
    if (cert := first(ssl.SSLCertVerificationError)) is not None:
        reason = getattr(cert, "verify_message", None) or cert
        return (
            f"cannot reach {url}: the TLS certificate of {host} is not trusted ({reason}); "
            f"a proxy intercepting TLS, or a wrong host in {setting}?"
        )
    if first(ssl.SSLError):
        return (
            f"cannot reach {url}: the TLS handshake with {host}:{port} failed "
            f"(https:// on a plain HTTP port? check {setting})"
        )
    if first(TimeoutError):
        return f"no answer from {url} within {timeout_s:g} s (a firewall, or a wrong host in {setting}?)"
    if first((ConnectionResetError, ConnectionAbortedError)):
        return f"{url} closed the connection without answering (not {server}? check {setting})"
    reason = next((e.strerror for e in causes if isinstance(e, OSError) and e.strerror), None)
    return f"cannot reach {url}: {reason or error} (check {setting} and the network)"


def json_object(raw: bytes) -> dict[str, Any] | None:
    """An answer's body as a JSON object; None for anything else (a page, a list, not text at all)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def not_json(url: str, status: int, content_type: str, raw: bytes, setting: str) -> str:
    """The one line for an answer that is not a JSON object: most often a proxy's or captive portal's page."""
    body = raw.decode("utf-8", errors="replace")
    if "html" in content_type.lower() or body.lstrip().startswith("<"):
        what = "an HTML page"
    else:
        what = f"a non-JSON body ({body.strip()[:SNIPPET_CHARS]!r})"
    return f"{url} answered {what} with HTTP {status}, not JSON (a proxy or captive portal? check {setting})"


def probe(url: str, timeout_s: float, setting: str, server: str) -> str | None:
    """One GET to `url`: None if anything at all answers (any HTTP status), else the line saying why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):
            return None
    except urllib.error.HTTPError:
        return None  # an HTTP error status is an answer: the host is there
    except (OSError, ValueError) as exc:  # URLError is an OSError; ValueError: a malformed URL
        # a certificate this probe does not trust is still an answer: the client may trust its own CA
        if any(isinstance(e, ssl.SSLCertVerificationError) for e in _chain(exc)):
            return None
        return unreachable(url, exc, setting, server, timeout_s)
