"""Timing helpers: synchronised wall-clock medians with their spread, and the provenance of a measurement."""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from secondorder.run_record import device_name, git_state


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median, min and max seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    synchronise(device)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronise(device)
        samples.append(time.perf_counter() - start)
    return {"median_s": statistics.median(samples), "min_s": min(samples), "max_s": max(samples),
            "repeats": repeats}


def environment(device: torch.device) -> dict[str, Any]:
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **git_state(ignore=("results",)),  # the suite's earlier tables, rewritten by this very run, do not count
        "torch": torch.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "device": device_name(device),
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "tf32": bool(torch.backends.cuda.matmul.allow_tf32) if device.type == "cuda" else None,
    }


def device_slug(device: torch.device) -> str:
    name = device_name(device).split("(")[0].strip() if device.type == "cpu" else device_name(device)
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "device"


def provenance_line(env: dict[str, Any]) -> str:
    """One Markdown line: device, versions, commit and date of a benchmark table."""
    commit = (env.get("git_commit") or "unknown")[:10] + (" (dirty)" if env.get("git_dirty") else "")
    return (f"Device: {env['device']}; torch {env['torch']}; CUDA {env['cuda']}; Python {env.get('python')}; "
            f"threads {env['threads']}; commit {commit}; {env['date']}.")


def write_table(out: Path, device: torch.device, name: str, frame: pd.DataFrame, env: dict[str, Any],
                markdown: str) -> Path:
    """``<out>/<device>/<name>.{csv,json,md}``; returns the folder."""
    folder = out / device_slug(device)
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / f"{name}.csv", index=False)
    (folder / f"{name}.json").write_text(json.dumps(env, indent=2) + "\n")
    (folder / f"{name}.md").write_text(markdown)
    return folder


def add_device_and_models(parser: argparse.ArgumentParser, models: list[str], choices: tuple[str, ...]) -> None:
    """The options every per-model benchmark shares: ``--device`` (CUDA when present) and ``--models``."""
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=models, choices=choices)
