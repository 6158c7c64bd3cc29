"""The papers' reported numbers (``references.yaml``: one file, each entry citing its paper and table or section)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

REFERENCES = Path(__file__).with_name("references.yaml")


@cache
def references() -> dict[str, Any]:
    return yaml.safe_load(REFERENCES.read_text())
