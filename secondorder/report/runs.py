"""Finding and reading run directories (only ``summary.json`` and ``metrics.csv``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from secondorder.errors import UserError


@dataclass
class Run:
    path: Path
    summary: dict[str, Any]
    metrics: pd.DataFrame

    @property
    def label(self) -> str:
        """A short legend entry: optimiser, plus the run directory's name."""
        return f"{self.summary.get('optimizer', '?')} ({self.path.name})"

    @property
    def evaluations(self) -> pd.DataFrame:
        """Rows where the full train/test errors were measured."""
        return self.metrics.dropna(subset=["train_error"])


def find_runs(paths: list[Path]) -> list[Run]:
    """Every run directory (one holding ``summary.json``) at or below the given paths, sorted by path."""
    found: list[Run] = []
    for root in paths:
        if not root.exists():
            raise UserError(f"{root} does not exist; give run directories or folders that contain them")
        candidates = [root] if (root / "summary.json").exists() else sorted(
            p.parent for p in root.rglob("summary.json")
        )
        for run_dir in candidates:
            try:
                summary = json.loads((run_dir / "summary.json").read_text())
                metrics = pd.read_csv(run_dir / "metrics.csv")
            except (OSError, ValueError) as exc:
                raise UserError(f"{run_dir} is not a readable run directory ({exc})") from None
            found.append(Run(run_dir, summary, metrics))
    if not found:
        raise UserError(f"no runs under {', '.join(map(str, paths))} (looked for summary.json)")
    return found
