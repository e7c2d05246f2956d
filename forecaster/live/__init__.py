"""Live sessions, one way: feed -> per-predictor loop -> events -> sinks (records, console, tracker)."""
