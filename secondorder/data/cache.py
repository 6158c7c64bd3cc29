"""On-disk cache for generated datasets (atomic writes, keyed by the generator's parameters).

A cache file that cannot be read (damaged by a full disk, a copy cut short) is derived data: it is reported and
generated again, never an error."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch

log = logging.getLogger(__name__)


def cache_key(params: dict[str, object]) -> str:
    """A short stable hash of generator parameters (sorted JSON)."""
    blob = json.dumps(params, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cached_tensors(
    path: Path, make: Callable[[], dict[str, torch.Tensor]], *, use_cache: bool = True
) -> dict[str, torch.Tensor]:
    """Load ``path`` if it exists, else call ``make`` and save its result there atomically."""
    if use_cache and path.exists():
        try:
            return torch.load(path, weights_only=True)
        except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
            log.warning("the data cache %s is unreadable (%s); generating it again",
                        path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    log.info("generating %s%s", path.stem, " (cached for next time)" if use_cache else "")
    tensors = make()
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(tensors, tmp)
        os.replace(tmp, path)
    return tensors
