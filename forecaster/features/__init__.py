"""Feature sets: a window of candles -> one feature row per candle (see base.FeatureSet)."""
