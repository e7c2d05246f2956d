"""First contact with a host that cannot answer: one line naming the URL and the cause, no retries.

Real failures on this machine only: a local port nobody listens on (refused at once), a name under
`.invalid` (RFC 6761: its lookup fails at once and reaches no host), and a local HTTP server that
answers an HTML page, as a proxy or captive portal does.
"""

from __future__ import annotations

import http.server
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from forecaster.checks import Status
from forecaster.errors import UserError
from forecaster.reachability import probe
from forecaster.sources.bybit.rest import BybitRest, BybitUnreachable
from forecaster.sources.bybit.source import BybitSource
from forecaster.tracking import MlflowTracking, NoTracking

POLL_S = 0.02  # how often the portal's thread looks for shutdown: the default 0.5 s would slow each test
PAGE = b"<html><body>Sign in to the hotel wifi</body></html>"
TIMEOUT_S = 5.0  # never reached: every failure here is immediate


class _Portal(http.server.BaseHTTPRequestHandler):
    """Answers every GET with an HTML page and HTTP 200, as a captive portal does."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def portal() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Portal)
    thread = threading.Thread(target=server.serve_forever, args=(POLL_S,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closed_url() -> str:
    with socket.socket() as sock:  # bound, then closed: nobody listens there, a connect is refused
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_probe_names_the_cause_and_the_key(closed_url: str) -> None:
    refused = probe(closed_url, TIMEOUT_S, "tracking.uri", "the MLflow server")
    port = closed_url.rpartition(":")[2]
    assert refused == (
        f"cannot reach {closed_url}: connection refused by 127.0.0.1:{port} "
        "(is the MLflow server running? check tracking.uri)"
    )
    dns = probe("http://nonexistent.invalid:5000", TIMEOUT_S, "tracking.uri", "the MLflow server")
    assert dns is not None and "DNS lookup failed for nonexistent.invalid" in dns and "tracking.uri" in dns
    with portal() as url:
        assert probe(url, TIMEOUT_S, "tracking.uri", "the MLflow server") is None  # any answer will do


def test_an_unreachable_tracking_server_is_one_user_error_and_a_local_store_is_not_probed(
    closed_url: str, tmp_path
) -> None:
    from forecaster.config import PathsConfig

    paths = PathsConfig(mlruns=str(tmp_path / "mlruns"))
    with pytest.raises(UserError, match=r"^MLflow: cannot reach .*connection refused.*tracking=off$"):
        MlflowTracking(uri=closed_url).check_reachable(paths)
    failed = MlflowTracking(uri=closed_url).check(paths)  # what mode=dryrun lists
    assert failed.status == Status.FAIL and failed.detail.startswith(f"MLflow: cannot reach {closed_url}: ")
    MlflowTracking(uri=None).check_reachable(paths)  # sqlite under paths.mlruns: nothing to reach
    NoTracking().check_reachable(paths)


def _source(url: str) -> BybitSource:
    return BybitSource(rest_url=url, request_timeout_s=TIMEOUT_S, backoff_base_s=10.0)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("closed", r"^cannot reach {url}: connection refused by .* \(is the emulator running\? check source"),
        ("dns", r"^cannot reach {url}: DNS lookup failed for nonexistent\.invalid .*source\.rest_url"),
        ("portal", r"^{url}/v5/market/time answered an HTML page with HTTP 200, not JSON \(a proxy or"),
    ],
    ids=["refused", "dns", "html"],
)  # fmt: skip
async def test_bybit_rest_fails_at_first_contact_without_retrying(
    where: str, expected: str, closed_url: str
) -> None:
    """backoff_base_s=10: a single retry would show as a test taking 5 s or more."""
    with portal() as portal_url:
        url = {"closed": closed_url, "dns": "https://nonexistent.invalid", "portal": portal_url}[where]
        async with BybitRest(_source(url)) as rest:
            with pytest.raises(BybitUnreachable, match=expected.replace("{url}", re.escape(url))) as info:
                await rest.server_time_ms()
            assert rest.stats.retries == 0
    assert isinstance(info.value, UserError) and "\n" not in str(info.value)
