"""Regenerate the configuration reference in README.md from the settings table in the code."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME"):
    os.environ.pop(var, None)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "app"))

from brain.shared import config  # noqa: E402

readme = Path(__file__).resolve().parent.parent / "README.md"
text = readme.read_text()
pattern = re.compile(r"(<!-- settings:start.*?-->\n).*?(<!-- settings:end -->)", re.S)
readme.write_text(pattern.sub(lambda m: m.group(1) + config.reference_markdown() + "\n" + m.group(2), text))
print("README.md configuration reference updated")
