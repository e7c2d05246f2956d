"""Training: the supervised dataset, chronological splits, learning-rate schedules, the Optax loop
and how a fold is scored (`scores`).

Pure and I/O-free (no files, no MLflow): forecaster/modes/train.py wires it to data, tracking and
saving. Light: JAX and Optax load only with `loop`.
"""
