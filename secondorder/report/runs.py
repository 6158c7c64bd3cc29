"""Finding and reading run directories (only ``summary.json`` and ``metrics.csv``)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
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


COPIES_MARKER = ".report-copies"  # in a folder of run records copied beside a report


def _is_copy(run_dir: Path, root: Path) -> bool:
    """Whether ``run_dir`` lies in a folder of copies strictly below ``root`` (a report's ``runs/``): found while
    scanning, such copies would count twice; named directly, they are read."""
    return any((parent / COPIES_MARKER).exists() for parent in run_dir.parents if root in parent.parents)


def find_runs(paths: list[Path], skip_broken: bool = False, exclude: Path | None = None,
              warn: Callable[[str], object] | None = None) -> list[Run]:
    """Every run directory (one holding ``summary.json``) at or below the given paths, sorted by path.

    Copies that a report keeps beside itself are skipped when found by scanning, as is everything under
    ``exclude`` (the report's own output folder). With ``skip_broken`` an unreadable run is reported through
    ``warn`` and left out; otherwise it is an error."""
    found: list[Run] = []
    for root in paths:
        if not root.exists():
            raise UserError(f"{root} does not exist; give run directories or folders that contain them")
        candidates = [root] if (root / "summary.json").exists() else sorted(
            p.parent for p in root.rglob("summary.json")
            if not _is_copy(p.parent, root)
            and not (exclude is not None and exclude.resolve() in p.resolve().parents)
        )
        for run_dir in candidates:
            try:
                summary = json.loads((run_dir / "summary.json").read_text())
                metrics = pd.read_csv(run_dir / "metrics.csv")
                if not isinstance(summary, dict) or "iteration" not in metrics:
                    raise ValueError("summary.json or metrics.csv lacks its fields")
            except (OSError, ValueError) as exc:
                message = f"{run_dir} is not a readable run directory ({str(exc).splitlines()[0]})"
                if not skip_broken:
                    raise UserError(message) from None
                if warn is not None:
                    warn(f"skipped {message}")
                continue
            found.append(Run(run_dir, summary, metrics))
    if not found:
        raise UserError(f"no runs under {', '.join(map(str, paths))} (looked for summary.json)")
    return found


def copy_run_records(runs: list[Run], folder: Path, names: dict[str, str] | None = None) -> None:
    """Each run's config.yaml, summary.json and metrics.csv beside a report: its provenance travels with it.

    ``names`` maps a run's path (as a string) to the folder name to use; by default the run folder's name.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / COPIES_MARKER).write_text("copies of run records kept beside a report; `report` skips them when "
                                        "scanning a folder above\n")
    plain = [run.path.name for run in runs]
    for run in runs:
        target = folder / (names or {}).get(str(run.path), run.path.name)
        if names is None and plain.count(run.path.name) > 1:  # two runs with the same folder name: keep both
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
