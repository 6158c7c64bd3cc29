"""Checkpoints: everything needed to continue a run bit-for-bit (on the same hardware and thread count).

Saved: model weights, optimiser state, sampler state (permutation, position, generator state), the global
torch RNG states, the trainer's counters (iteration, accumulated costs, training wall time, best values), the
config and the length of ``metrics.csv`` at that point (so that resume can check the log against it).

Written to a temporary file and renamed, so a kill during the write leaves the previous checkpoint intact; the
one before is kept as ``checkpoint.prev.pt`` (a hard link, so the rotation copies nothing), and at every instant
``checkpoint.pt`` is a complete file. A damaged ``checkpoint.pt`` (truncated, overwritten, empty) is refused with
a one-line :class:`DamagedCheckpoint` that names the way out: ``trainer.resume=previous`` (from
``checkpoint.prev.pt``) or ``trainer.resume=restart`` (start afresh, the old files moved aside).

A checkpoint holds tensors and plain values only (dicts, lists, tuples, numbers, strings, ``None``; a
``torch.Generator`` as its ``get_state()`` tensor), so it loads with ``torch.load(weights_only=True)``: loading
runs no code from the file. Every ``state_dict`` in the library keeps to this. ``format`` marks the layout;
a checkpoint from before it (pickled objects, or no marker) is refused with a one-line error.
"""

from __future__ import annotations

import os
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch

from secondorder.errors import ConfigError

CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_NAME = "checkpoint.prev.pt"
CHECKPOINT_FORMAT = 2  # 2: tensors and plain values only (weights_only=True); 1 (unmarked): pickled objects


class DamagedCheckpoint(ConfigError):
    """A checkpoint file that cannot be read (truncated, overwritten, empty)."""


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _link_or_copy(source: Path, target: Path) -> None:
    """Make ``target`` a complete copy of ``source`` atomically (hard link where the file system allows)."""
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def save_checkpoint(run_dir: Path, payload: dict[str, Any]) -> Path:
    """Write ``checkpoint.pt``, keeping the one it replaces as ``checkpoint.prev.pt``."""
    path = run_dir / CHECKPOINT_NAME
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with tmp.open("wb") as handle:
        torch.save({**payload, "format": CHECKPOINT_FORMAT}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    if path.exists():
        _link_or_copy(path, run_dir / PREVIOUS_NAME)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path``, loaded with ``weights_only=True``; :class:`DamagedCheckpoint` when it cannot be
    read, :class:`ConfigError` when it is readable but of the old pickled format."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if zipfile.is_zipfile(path):  # a well-formed archive whose pickle holds objects: the old format
            raise ConfigError(f"{path} predates the weights-only checkpoint format and cannot be resumed; restart "
                              "the run (trainer.resume=restart, or choose another run_dir)") from None
        raise DamagedCheckpoint(f"{path} is not a checkpoint (its bytes are not a torch archive)") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        reason = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        raise DamagedCheckpoint(f"{path} is damaged ({reason or 'empty file'})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path} predates the weights-only checkpoint format and cannot be resumed; restart "
                          "the run (trainer.resume=restart, or choose another run_dir)")
    return state


def load_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The checkpoint in ``run_dir`` (``None`` if there is none). A damaged one raises :class:`DamagedCheckpoint`
    whose message says how to continue: from the previous checkpoint if it is readable, or afresh."""
    path = run_dir / CHECKPOINT_NAME
    if not path.exists():
        return None
    try:
        return read_checkpoint(path)
    except DamagedCheckpoint as exc:
        previous = previous_checkpoint(run_dir)
        way_out = (f"resume from the previous checkpoint (iteration {previous['iteration']}) with "
                   "trainer.resume=previous, or start afresh" if previous is not None else "start afresh")
        raise DamagedCheckpoint(f"{exc}; {way_out} with trainer.resume=restart (the old files are moved to "
                                f"{run_dir}/discarded-<time>/)") from None


def previous_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The readable ``checkpoint.prev.pt`` in ``run_dir``, or ``None``."""
    path = run_dir / PREVIOUS_NAME
    if not path.exists():
        return None
    try:
        return read_checkpoint(path)
    except ConfigError:
        return None


def restore_previous(run_dir: Path, stamp: str) -> dict[str, Any] | None:
    """Make ``checkpoint.prev.pt`` the current checkpoint (``trainer.resume=previous``) and return it; the replaced
    ``checkpoint.pt`` is kept as ``checkpoint.replaced-<stamp>.pt``. ``None`` (nothing changed) when there is no
    readable previous checkpoint."""
    previous = previous_checkpoint(run_dir)
    if previous is None:
        return None
    current = run_dir / CHECKPOINT_NAME
    if current.exists():
        os.replace(current, run_dir / f"checkpoint.replaced-{stamp}.pt")
    _link_or_copy(run_dir / PREVIOUS_NAME, current)
    return previous


def checkpoint_files(run_dir: Path) -> list[Path]:
    """The checkpoint files of a run directory (current, previous, temporaries left by a kill)."""
    return sorted(run_dir.glob("checkpoint*.pt*"))
