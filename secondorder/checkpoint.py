"""Checkpoints: everything needed to continue a run bit-for-bit (on the same hardware and thread count).

Saved: model weights, optimiser state, sampler state (permutation, position, generator state), the global
torch RNG states, the trainer's counters (iteration, accumulated costs, training wall time, best values) and
the config. Written to a temporary file and renamed, so a kill during the write leaves the previous checkpoint
intact.

A checkpoint holds tensors and plain values only (dicts, lists, tuples, numbers, strings, ``None``; a
``torch.Generator`` as its ``get_state()`` tensor), so it loads with ``torch.load(weights_only=True)``: loading
runs no code from the file. Every ``state_dict`` in the library keeps to this. ``format`` marks the layout;
a checkpoint from before it (pickled objects, or no marker) is refused with a one-line error.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from secondorder.errors import ConfigError

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 2  # 2: tensors and plain values only (weights_only=True); 1 (unmarked): pickled objects


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
    torch.save({**payload, "format": CHECKPOINT_FORMAT}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The checkpoint in ``run_dir`` (``None`` if there is none), loaded with ``weights_only=True``."""
    path = run_dir / CHECKPOINT_NAME
    if not path.exists():
        return None
    outdated = ConfigError(f"{path} predates the weights-only checkpoint format and cannot be resumed; restart "
                           "the run (delete the run directory or choose another run_dir)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise outdated from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise outdated
    return state
