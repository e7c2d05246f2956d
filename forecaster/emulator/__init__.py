"""A local Bybit v5 (spot, public market data) server that replays real candles, with fault injection.

Tests and demos run the real REST and WebSocket clients against it on 127.0.0.1 instead of the
internet. It serves REST `GET /v5/market/kline` and `/v5/market/time`, and the WebSocket
`/v5/public/spot` with `kline.<interval>.<symbol>` topics, in the shapes documented in
../shared/bybit/PROTOCOL.md. One simulated clock (`clock`, running at `speed` 1m candles per
real second as source.speed does, settable) decides for both which candles are closed, so REST
and WS always agree. `faults.Faults` is a plain mutable object: flip its fields while the server
(`server.Emulator`) runs to break things the way the real service does. `launch.launch_emulator`
runs it as its own process.

    python -m forecaster.emulator --data ../shared/data/<file>.csv.gz --speed 1 [--drop-after 50 ...]
"""
