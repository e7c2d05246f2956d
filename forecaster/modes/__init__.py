"""One module per mode, each one class (conf/mode/<name>.yaml names it) whose `run` returns a RunResult."""
