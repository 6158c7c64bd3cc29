"""On-disk cache for generated datasets (atomic writes, keyed by the generator's parameters)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch


def cache_key(params: dict[str, object]) -> str:
    """A short stable hash of generator parameters (sorted JSON)."""
    blob = json.dumps(params, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cached_tensors(
    path: Path, make: Callable[[], dict[str, torch.Tensor]], *, use_cache: bool = True
) -> dict[str, torch.Tensor]:
    """Load ``path`` if it exists, else call ``make`` and save its result there atomically."""
    if use_cache and path.exists():
        return torch.load(path, weights_only=True)
    tensors = make()
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(tensors, tmp)
        os.replace(tmp, path)
    return tensors
