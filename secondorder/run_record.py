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
import io
import json
import logging
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
from secondorder.errors import ConfigError

log = logging.getLogger(__name__)

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


class DamagedLog(ConfigError):
    """``metrics.csv`` does not hold what its checkpoint says was written."""


class MetricsLog:
    """Appends rows to ``metrics.csv``, each with one ``write`` (a kill leaves at most one partial last line).

    ``record()`` — the number of rows written and the last of them — goes into every checkpoint. Resuming from a
    checkpoint keeps exactly that many rows, after checking that they are intact and that the last one is the one
    the checkpoint recorded; the rows after it (logged after the checkpoint, or a line torn by a kill) are dropped,
    since the resumed run writes them again. A log that holds fewer rows, or other ones, is refused
    (:class:`DamagedLog`) — never silently shortened.
    """

    def __init__(self, path: Path, stat_names: tuple[str, ...], resume: dict[str, Any] | None = None) -> None:
        self.path = path
        self.columns = (*BASE_COLUMNS, *stat_names)
        self.rows, self.last_row = 0, list(self.columns)
        if resume is None:
            tmp = path.with_suffix(".csv.tmp")
            tmp.write_text(_csv_line(self.columns))
            os.replace(tmp, path)
        else:
            self._keep(resume)

    def record(self) -> dict[str, Any]:
        """What a checkpoint stores of the log: its row count and last row."""
        return {"rows": self.rows, "last_row": list(self.last_row)}

    def _keep(self, resume: dict[str, Any]) -> None:
        """Cut the log back to the checkpoint's rows (``resume``: :meth:`record`, or ``{"iteration": i}`` for a
        checkpoint from before the record existed: the rows up to iteration i)."""
        refuse = ("; the run log was damaged after its checkpoint was written: restore metrics.csv, or start "
                  "afresh with trainer.resume=restart")
        if not self.path.exists():
            raise DamagedLog(f"{self.path} is missing although the run has a checkpoint{refuse}")
        lines = self.path.read_text().split("\n")
        complete = lines[:-1]  # the text after the last newline is a torn write (or empty)
        if not complete:
            raise DamagedLog(f"{self.path} is empty although the run has a checkpoint{refuse}")
        header = next(csv.reader([complete[0]]))
        if tuple(header) != self.columns:
            raise DamagedLog(f"{self.path} has other columns than this run writes{refuse}")
        wanted = resume.get("rows")
        kept: list[list[str]] = []
        for number, line in enumerate(complete[1:], start=2):
            if wanted is not None and len(kept) == wanted:
                break
            row = next(csv.reader([line]), [])
            if len(row) != len(header) or not row[0].isdigit():
                if wanted is None:
                    break
                raise DamagedLog(f"{self.path}:{number} is not a metrics row{refuse}")
            if wanted is None and int(row[0]) > resume["iteration"]:
                break
            kept.append(row)
        if wanted is not None and (len(kept) < wanted or (kept and kept[-1] != resume["last_row"])):
            found = f"{len(kept)} intact rows" + (f" up to iteration {kept[-1][0]}" if kept else "")
            raise DamagedLog(f"{self.path} holds {found}, not the {wanted} its checkpoint recorded{refuse}")
        dropped = sum(1 for line in lines[1:] if line.strip()) - len(kept)
        if dropped > 0:
            log.info("metrics.csv: dropped %d line(s) written after the checkpoint", dropped)
        tmp = self.path.with_suffix(".csv.tmp")
        tmp.write_text("".join(_csv_line(row) for row in (header, *kept)))
        os.replace(tmp, self.path)
        self.rows = len(kept)
        self.last_row = kept[-1] if kept else list(header)

    def append(self, row: dict[str, Any]) -> None:
        values = [_format(row.get(column)) for column in self.columns]
        data = _csv_line(values).encode()
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(descriptor, data)
        finally:
            os.close(descriptor)
        self.rows += 1
        self.last_row = values


def _csv_line(values: Any) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # round-trips exactly
    return str(value)
