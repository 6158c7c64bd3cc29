"""Checkpoints: everything needed to continue a run bit-for-bit (on the same hardware and thread count).

Saved: model weights, optimiser state, sampler state (permutation, position, generator), the global torch
RNG states, the trainer's counters (iteration, accumulated costs, training wall time, best values) and the
config. Written to a temporary file and renamed, so a kill during the write leaves the previous checkpoint
intact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_NAME = "checkpoint.pt"


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, payload: dict[str, Any]) -> Path:
    path = run_dir / CHECKPOINT_NAME
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / CHECKPOINT_NAME
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)
