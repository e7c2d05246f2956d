"""`pip install .` installs every package and every config folder, without setuptools' "Package
would be ignored" warnings (a folder Python can import that `packages` does not list)."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_package_and_conf_folder_is_declared() -> None:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = {"forecaster": REPO / "forecaster", **{k: REPO / v for k, v in setuptools["package-dir"].items()}}
    on_disk = set()
    for name, root in roots.items():
        for folder in [root, *root.rglob("*")]:
            if folder.is_dir() and folder.name != "__pycache__":
                on_disk.add(".".join([name, *folder.relative_to(root).parts]))
    assert on_disk == set(setuptools["packages"])
    assert "*.yaml" in setuptools["package-data"]["*"]
