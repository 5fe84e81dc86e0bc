#!/usr/bin/env python3
"""Build the plugin ZIP for "Install from ZIP" / the QGIS plugin repository.

The archive's root folder is ``landslide_plugin/`` holding metadata.txt, resources (icons, styles,
models), LICENSE, the code and ``.flake8`` (the repository's upload scanner runs flake8 with the
configuration it finds there); symlinks in the source tree are stored as real files.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "landslide_plugin"
EXCLUDE_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
EXCLUDE_SUFFIXES = {".pyc", ".pyo", ".orig", ".rej"}
EXCLUDE_NAMES = {"screenshot.png", "demo_overlay.png"}  # README material, not needed at run time


def version() -> str:
    match = re.search(r"^version=(.+)$", (ROOT / "metadata.txt").read_text(), re.M)
    if not match:
        sys.exit("metadata.txt has no version= line")
    return match.group(1).strip()


def plugin_files():
    for folder, dirs, files in os.walk(PACKAGE, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d not in EXCLUDE_DIRS and not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            if path.suffix in EXCLUDE_SUFFIXES or name in EXCLUDE_NAMES or name.startswith("."):
                continue
            yield path, Path("landslide_plugin") / path.relative_to(PACKAGE)
    yield ROOT / "LICENSE", Path("landslide_plugin/LICENSE")
    yield ROOT / "README.md", Path("landslide_plugin/README.md")
    yield ROOT / ".flake8", Path("landslide_plugin/.flake8")


def build(output: Path) -> Path:
    output.mkdir(parents=True, exist_ok=True)
    target = output / f"landslide_plugin-{version()}.zip"
    tmp = target.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for source, name in plugin_files():
            archive.write(source, name.as_posix())
    os.replace(tmp, target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=ROOT / "dist")
    print(build(parser.parse_args().output))


if __name__ == "__main__":
    main()
