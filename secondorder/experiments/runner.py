"""Running experiment cells as ``train`` subprocesses: resumable, skipping completed runs.

A cell (one problem × method) runs ``seeds`` times. With one seed the run is the cell's folder and the config's
own seed; with ``n > 1`` seeds, seed ``s`` runs with ``seed=s`` in ``<cell>/seed<s>`` (s = 0 … n − 1). A run
whose ``summary.json`` says ``completed`` or ``diverged`` is a result and is skipped; any other run (never
started, interrupted, failed) is started with ``trainer.resume=auto``, which continues from its checkpoint. A
completed run whose budget (``trainer.max_steps`` / ``max_time_s`` / ``max_epochs`` in the cell's overrides) has
since been raised above the one it ran with is *extended*: resumed from its final checkpoint to the new budget,
unless it stopped at its target error. With ``jobs > 1`` that many runs go at once, each told to use
cores / jobs threads (``OMP_NUM_THREADS``, unless set): for small launch-bound models (the pathological-task RNN)
two single-thread runs do ~1.7× the work of one two-thread run on two cores — a profile that compares wall-clock
times should keep one job.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from threading import Lock
from typing import Any

from secondorder.composition import path_override
from secondorder.errors import UserError
from secondorder.folder_lock import live_holder

FINISHED = ("completed", "diverged")  # both are results; a diverged run would diverge again
BUDGETS = ("max_steps", "max_time_s", "max_epochs")


def raised_budget(overrides: list[str], summary: dict[str, Any]) -> str | None:
    """The first ``trainer.<budget>=<value>`` override above the budget the completed run had (None: none is)."""
    if summary.get("status") != "completed" or summary.get("target_reached"):
        return None
    had = summary.get("budget", {})
    for override in overrides:
        key, _, value = override.partition("=")
        name = key.removeprefix("trainer.")
        if key.startswith("trainer.") and name in BUDGETS and had.get(name) is not None:
            try:
                wanted = float(value)
            except ValueError:  # null: no limit of this kind
                continue
            if wanted > float(had[name]):
                return f"{key} {had[name]} → {value}"
    return None


def run_status(run_dir: Path) -> str | None:
    """The ``status`` of a run's ``summary.json`` (None when the run never wrote one)."""
    summary = run_dir / "summary.json"
    if not summary.exists():
        return None
    return json.loads(summary.read_text()).get("status")


@dataclass(frozen=True)
class SeedRun:
    """One ``train`` run of a cell: its key (``<cell>`` or ``<cell>/seed<s>``), overrides and folder."""

    key: str
    overrides: list[str]
    run_dir: Path
    seed: int | None

    def status(self) -> str | None:
        return run_status(self.run_dir)


@dataclass
class Cell:
    """One problem × method of an experiment: its name, its ``train`` overrides, where it runs, its labels."""

    name: str
    overrides: list[str]
    run_dir: Path
    labels: dict[str, Any] = field(default_factory=dict)
    seeds: int = 1

    def seed_runs(self) -> list[SeedRun]:
        if self.seeds == 1:
            return [SeedRun(self.name, list(self.overrides), self.run_dir, None)]
        return [SeedRun(f"{self.name}/seed{s}", [*self.overrides, f"seed={s}"], self.run_dir / f"seed{s}", s)
                for s in range(self.seeds)]


def select(cells: list[Cell], patterns: list[str] | None) -> list[Cell]:
    """The cells whose names match any of the shell-style ``patterns`` (all cells when none are given)."""
    if not patterns:
        return cells
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(c.name, p) for c in cells)]
    if unmatched:
        examples = ", ".join(c.name for c in cells[:3])
        raise UserError(f"--cells {unmatched[0]!r} matches no cell; cells are named like {examples} "
                        "(shell patterns such as 'curves__*' work)")
    return [c for c in cells if any(fnmatch.fnmatchcase(c.name, p) for p in patterns)]


def train_executable() -> list[str]:
    """The ``train`` console script of this interpreter's environment (falls back to ``python -m``)."""
    script = Path(sys.executable).with_name("train")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from secondorder.cli import train; train()"]


def _thread_environment(jobs: int) -> dict[str, str]:
    """The environment of a ``train`` subprocess: with several jobs, cores / jobs threads each."""
    env = dict(os.environ)
    if jobs > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return env


def _run_one(run: SeedRun, raised: str | None, jobs: int, log: Callable[[str], object]) -> str:
    holder = live_holder(run.run_dir)
    if holder is not None:  # another runner (or a SLURM job) trains it now: leave it to that process
        log(f"[busy] {run.key}: being trained by pid {holder.get('pid')} on {holder.get('host')} since "
            f"{holder.get('since')}; left to it")
        return "busy"
    log(f"[run ] {run.key} → {run.run_dir}" + (f" (extended: {raised})" if raised else ""))
    start = time.time()
    command = [*train_executable(), *run.overrides, path_override("run_dir", run.run_dir), "trainer.resume=auto"]
    result = subprocess.run(command, capture_output=True, text=True, env=_thread_environment(jobs))
    status = run.status() or "failed"
    if raised and raised_budget(run.overrides, json.loads((run.run_dir / "summary.json").read_text())):
        status = "failed"  # the extension did not run (e.g. the config changed beyond trainer.*)
    message = result.stderr.strip().splitlines()[-1] if result.returncode and result.stderr.strip() else ""
    log(f"       {run.key}: {status} in {time.time() - start:.0f} s {message}".rstrip())
    return status


def run_cells(cells: list[Cell], log: Callable[[str], object] = print, jobs: int = 1) -> dict[str, str]:
    """Run every seed of each cell unless it already completed or diverged; an interrupted run resumes
    (``trainer.resume=auto``), a completed one whose budget was raised is extended; ``jobs`` runs at once.
    Returns each run's final status by key, in the cells' order."""
    outcome: dict[str, str] = {}
    pending = []
    for run in (r for cell in cells for r in cell.seed_runs()):
        raised = raised_budget(run.overrides, json.loads((run.run_dir / "summary.json").read_text())) \
            if run.status() == "completed" else None
        if run.status() in FINISHED and raised is None:
            log(f"[skip] {run.key}: {run.status()} run in {run.run_dir}")
            outcome[run.key] = run.status()
        else:
            outcome[run.key] = "pending"
            pending.append((run, raised))
    lock = Lock()

    def log_line(message: str) -> None:  # one whole line at a time from the worker threads
        with lock:
            log(message)
            sys.stdout.flush()  # a log redirected to a file shows each run as it starts and ends

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {run.key: pool.submit(_run_one, run, raised, jobs, log_line) for run, raised in pending}
        for key, future in futures.items():
            outcome[key] = future.result()
    return outcome


def exit_code(outcome: dict[str, str], log: Callable[[str], object] = print) -> int:
    """0 when every run completed or diverged (a diverged run is a result, reported in the tables), else 1."""
    diverged = [n for n, s in outcome.items() if s == "diverged"]
    if diverged:
        log(f"diverged (reported in the tables): {', '.join(diverged)}")
    busy = [n for n, s in outcome.items() if s == "busy"]
    if busy:
        log(f"still being trained by another process (run this command again when it ends): {', '.join(busy)}")
    failed = [n for n, s in outcome.items() if s not in FINISHED]
    if failed:
        log(f"not completed: {', '.join(failed)}")
    return 1 if failed else 0
