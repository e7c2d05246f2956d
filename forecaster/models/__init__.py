"""Probability models: the pluggable options (twohead, ensemble, logreg, persistence), the network, its
inference, normalisation and checkpoints. Light: JAX loads only with network, inference or checkpoint."""
