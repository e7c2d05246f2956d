"""python -m forecaster.benchmarks [--only NAME ...] [--quick] [--output bench.json]"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import platform
import sys
import time
from pathlib import Path

import forecaster.benchmarks as package


def areas() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m forecaster.benchmarks", description=__doc__)
    parser.add_argument("--only", nargs="*", choices=areas(), help="benchmark areas to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--output", type=Path, default=Path("bench.json"), help="where to write the JSON")
    args = parser.parse_args()
    report: dict[str, object] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "quick": args.quick,
    }
    for name in args.only or areas():
        started = time.perf_counter()
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        report[name] = importlib.import_module(f"forecaster.benchmarks.{name}").run(args.quick)
        print(f"bench: {name} done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    text = json.dumps(report, indent=2)
    args.output.write_text(text + "\n")
    print(text)
    print(f"bench: written to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
