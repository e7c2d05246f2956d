"""How good predictions are: predictions joined with their facts, judged as typed sections.

join (predictions meet facts), statistics (pure numeric helpers), sections (the frozen results:
metrics.json via `to_json`, MLflow names via `scalars`), coverage (the FLAT threshold curve),
evaluate (sections from arrays; train's scores; eval's model and baselines on the same candles),
report and plots (text and PNG from the sections; plots alone imports matplotlib). For sweeps:
outcomes (a training run's per-candle results), multiple_testing (stationary bootstrap, Reality
Check, SPA, Holm), leaderboard (every job on the same candles) and leaderboard_report (its text).
"""
