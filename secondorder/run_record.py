"""The run-directory contract: what a run leaves on disk, and its provenance.

A run directory holds

* ``config.yaml`` — the composed, resolved configuration;
* ``metrics.csv`` — one row per logged iteration: ``iteration, wall_time_s, examples_seen, epochs,
  grad_evals, forward_passes, curvature_products, inversions, loss, train_error, test_error,
  train_loss, test_loss`` followed by the method's own statistics (damping, step sizes, …). ``loss`` is the
  mini-batch objective averaged over the iterations since the previous row; the ``train_*``/``test_*``
  columns are filled on evaluation rows (full train and test sets) and empty otherwise. ``wall_time_s``
  counts training time only: evaluation and checkpointing are excluded;
* ``summary.json`` — status (``running`` / ``completed`` / ``diverged`` / ``interrupted``), final and best
  values, costs, data provenance and the software/hardware provenance from :func:`provenance`;
* ``checkpoint.pt`` — the last checkpoint (written atomically; see :mod:`secondorder.checkpoint`).

The reporting module reads only these files.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

import secondorder

BASE_COLUMNS = (
    "iteration", "wall_time_s", "examples_seen", "epochs",
    "grad_evals", "forward_passes", "curvature_products", "inversions",
    "loss", "train_error", "test_error", "train_loss", "test_loss",
)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_state(path: Path | None = None, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """Commit and dirty flag of the source tree this package runs from (``None`` outside a git checkout);
    changes under the repository-relative folders in ``ignore`` do not count (a benchmark's own output)."""
    where = path or Path(secondorder.__file__).resolve().parent
    excluded = [":(top)", *(f":(top,exclude){folder}" for folder in ignore)] if ignore else []
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *excluded],
            cwd=where, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        return {"git_commit": commit, "git_dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} logical cores)"


def provenance(device: torch.device) -> dict[str, Any]:
    """Software and hardware that produced a run."""
    return {
        **git_state(),
        "secondorder_version": secondorder.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "device": str(device),
        "device_name": device_name(device),
        "torch_threads": torch.get_num_threads(),
        "hostname": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically (a crash never leaves a half-written summary)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def clean_number(value: float | None) -> float | None:
    """JSON has no NaN/Inf: map them to None."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value


class MetricsLog:
    """Appends rows to ``metrics.csv``; on resume, drops rows logged after the checkpoint."""

    def __init__(self, path: Path, stat_names: tuple[str, ...], resume_from: int | None = None) -> None:
        self.path = path
        self.columns = (*BASE_COLUMNS, *stat_names)
        if resume_from is not None and path.exists():
            self._truncate_after(resume_from)
        else:
            with path.open("w", newline="") as handle:
                csv.writer(handle).writerow(self.columns)

    def _truncate_after(self, iteration: int) -> None:
        with self.path.open(newline="") as handle:
            rows = list(csv.reader(handle))
        header, body = rows[0], rows[1:]
        kept = [row for row in body if int(row[0]) <= iteration]
        tmp = self.path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(kept)
        os.replace(tmp, self.path)

    def append(self, row: dict[str, Any]) -> None:
        values = [_format(row.get(column)) for column in self.columns]
        with self.path.open("a", newline="") as handle:
            csv.writer(handle).writerow(values)


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # round-trips exactly
    return str(value)
