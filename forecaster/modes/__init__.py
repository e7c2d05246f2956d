"""One module per mode; each exposes `run(config, run_dir) -> exit code`."""
