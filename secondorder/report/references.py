"""The papers' reported numbers (``references.yaml``: one file, each entry with its seed and line numbers)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

REFERENCES = Path(__file__).with_name("references.yaml")


@cache
def references() -> dict[str, Any]:
    return yaml.safe_load(REFERENCES.read_text())
