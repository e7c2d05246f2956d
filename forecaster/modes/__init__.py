"""One module per mode; each exposes `run(config, run_dir) -> exit code`."""

# What train and eval write into their run dir; a search sweeper reads its objective from it.
METRICS_FILE = "metrics.json"
