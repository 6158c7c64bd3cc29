"""Plain helpers shared by several test modules (no oracles: those are in ``tests/oracles.py``; fixtures are in
``tests/conftest.py``): the console scripts as a subprocess, a composed Hydra config, a fake finished run."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from secondorder.composition import CONF_DIR

BIN = Path(sys.executable).parent


def script(name: str) -> str:
    """The installed console script ``name`` (``train``, ``sweep``, ``report``) of this interpreter's environment."""
    path = BIN / name
    return str(path) if path.exists() else shutil.which(name) or name


def run_cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Runs a command as a user would, capturing its exit code, stdout and stderr."""
    return subprocess.run([*args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def composed(*overrides: str) -> DictConfig:
    """The run configuration that ``train`` would compose from ``conf/`` with these overrides (not validated)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=False)


def fake_run(folder: Path, train: float, test: float, status: str = "completed") -> None:
    """A run directory as ``train`` leaves it (summary.json, metrics.csv, config.yaml) with best errors ``train`` and
    ``test`` after 7 iterations, for report and experiment-driver tests that need no training."""
    folder.mkdir(parents=True)
    summary = {"status": status, "iteration": 7, "wall_time_s": 3.5, "optimizer": "hf", "dataset": "curves",
               "final": {"train_error": train + 1, "test_error": test + 1},
               "best": {"train_error": {"value": train}, "test_error": {"value": test}},
               "data": {"label": "CURVES re-creation", "stand_in": True},
               "provenance": {"git_commit": "abcdef1234567", "device_name": "cpu (test)", "torch": "x"}}
    (folder / "summary.json").write_text(json.dumps(summary))
    pd.DataFrame({"iteration": [0, 7], "wall_time_s": [0.0, 3.5], "grad_evals": [0, 7],
                  "train_error": [200.0, train], "test_error": [201.0, test]}).to_csv(folder / "metrics.csv",
                                                                                    index=False)
    (folder / "config.yaml").write_text("seed: 0\n")


@contextlib.contextmanager
def lock_held_by_a_live_process(folder: Path, **extra: str) -> Iterator[int]:
    """``folder/.lock`` owned by a live process on this host (a ``sleep``), for as long as the block runs; yields its
    pid. The process is killed afterwards, so the lock is then stale."""
    holder = subprocess.Popen(["sleep", "60"])
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".lock").write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "since": "now",
                                                  **extra}))
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()
