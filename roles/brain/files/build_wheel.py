#!/usr/bin/env python3
"""Build the brain wheel on the Ansible controller, byte-for-byte reproducibly.

Why: the role copies the wheel to the host and reinstalls only when the copy changed. A wheel
normally embeds build timestamps, so every run would look like a new release and restart
brain-api; SOURCE_DATE_EPOCH pins them. Building from a clean copy of app/ keeps stale
build/ and __pycache__ leftovers of a developer's tree out of the package.

Usage: build_wheel.py SOURCE_DIR OUT_DIR   (prints the wheel's path)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

EPOCH = "315532800"  # 1980-01-01, the earliest time a zip entry can hold


def build(source: Path, out: Path) -> Path:
    """Copy the package sources to a scratch dir and build one wheel from them into ``out``."""
    if not (source / "pyproject.toml").is_file():
        raise SystemExit(f"{source} has no pyproject.toml: set brain_source_dir to the repository root")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "src"
        tree.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (source / name).is_file():
                shutil.copy2(source / name, tree / name)
        shutil.copytree(source / "app", tree / "app",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build"))
        before = set(out.glob("*.whl"))
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(tree)],
            env=dict(os.environ, SOURCE_DATE_EPOCH=EPOCH, PYTHONWARNINGS="ignore"),
            capture_output=True, text=True, timeout=600, check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"building the brain wheel failed:\n{proc.stdout}\n{proc.stderr}")
    wheels = sorted(out.glob("brain-*.whl"), key=lambda p: p.stat().st_mtime)
    if not wheels:
        raise SystemExit(f"pip reported success but left no brain wheel in {out} (had {before})")
    return wheels[-1]


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    print(build(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()))
