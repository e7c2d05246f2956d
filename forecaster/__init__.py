"""forecaster: predicts the direction of the next BTCUSDT candle on Bybit Spot, and measures it honestly."""

__version__ = "0.1.0"
