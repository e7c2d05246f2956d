"""Order flow (issue 17): Bybit's public trades and order book, per-candle flow bars, and features."""
