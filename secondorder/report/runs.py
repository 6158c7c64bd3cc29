"""Finding and reading run directories (only ``summary.json`` and ``metrics.csv``)."""

from __future__ import annotations

import json
import shutil
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


def copy_run_records(runs: list[Run], folder: Path, names: dict[str, str] | None = None) -> None:
    """Each run's config.yaml, summary.json and metrics.csv beside a report: its provenance travels with it.

    ``names`` maps a run's path (as a string) to the folder name to use; by default the run folder's name.
    """
    for run in runs:
        target = folder / (names or {}).get(str(run.path), run.path.name)
        if target.exists() and names is None:  # two runs with the same folder name: keep both
            target = folder / "_".join(run.path.parts[-2:])
        target.mkdir(parents=True, exist_ok=True)
        for name in ("config.yaml", "summary.json", "metrics.csv"):
            if (run.path / name).exists():
                shutil.copyfile(run.path / name, target / name)


def group_runs(runs: list[Run], key: str) -> dict[str, list[Run]]:
    """Runs grouped by a summary field (e.g. ``optimizer``); ``none`` keeps one group per run."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        label = run.label if key == "none" else str(run.summary.get(key, "?"))
        groups.setdefault(label, []).append(run)
    return groups
