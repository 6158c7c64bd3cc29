"""Running experiment cells as ``train`` subprocesses: resumable, skipping completed runs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Cell:
    """One run of an experiment: its name, its ``train`` overrides and where it runs."""

    name: str
    overrides: list[str]
    run_dir: Path
    labels: dict[str, str] = field(default_factory=dict)

    def status(self) -> str | None:
        summary = self.run_dir / "summary.json"
        if not summary.exists():
            return None
        return json.loads(summary.read_text()).get("status")


def train_executable() -> list[str]:
    """The ``train`` console script of this interpreter's environment (falls back to ``python -m``)."""
    script = Path(sys.executable).with_name("train")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from secondorder.cli import train; train()"]


def run_cells(cells: list[Cell], log=print) -> dict[str, str]:
    """Run each cell unless it already completed or diverged; an interrupted cell resumes (``trainer.resume=auto``)."""
    outcome = {}
    for cell in cells:
        if cell.status() in ("completed", "diverged"):  # both are results; a diverged run would diverge again
            log(f"[skip] {cell.name}: {cell.status()} run in {cell.run_dir}")
            outcome[cell.name] = cell.status()
            continue
        log(f"[run ] {cell.name} → {cell.run_dir}")
        start = time.time()
        command = [*train_executable(), *cell.overrides, f"run_dir={cell.run_dir}", "trainer.resume=auto"]
        result = subprocess.run(command, capture_output=True, text=True)
        status = cell.status() or "failed"
        outcome[cell.name] = status
        message = result.stderr.strip().splitlines()[-1] if result.returncode and result.stderr.strip() else ""
        log(f"       {status} in {time.time() - start:.0f} s {message}")
    return outcome


def exit_code(outcome: dict[str, str], log=print) -> int:
    """0 when every cell completed or diverged (a diverged run is a result, reported in the tables), else 1."""
    diverged = [n for n, s in outcome.items() if s == "diverged"]
    if diverged:
        log(f"diverged (reported in the tables): {', '.join(diverged)}")
    failed = [n for n, s in outcome.items() if s not in ("completed", "diverged")]
    if failed:
        log(f"not completed: {', '.join(failed)}")
    return 1 if failed else 0
