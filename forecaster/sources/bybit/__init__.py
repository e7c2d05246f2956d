"""Bybit v5 public market data: protocol constants, retry policy, day cache, REST history, WebSocket stream.

Nothing is imported here, so `protocol` can be used (by dryrun, the emulator) without aiohttp.
"""
