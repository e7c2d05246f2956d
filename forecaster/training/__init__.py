"""Training: the supervised dataset, chronological splits, learning-rate schedules and the Optax loop.

Pure and I/O-free (no files, no MLflow): forecaster/modes/train.py wires it to data, tracking and
saving. Light: JAX and Optax load only with `loop`.
"""
