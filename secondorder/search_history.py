"""The record of a hyperparameter search: what each finished trial scored, kept so that a search resumes.

* ``history.jsonl`` — one JSON line per finished trial: ``index``, ``params`` (Hydra key → value), ``criterion``
  (``null`` unless completed with a finite value), ``status`` (``completed`` / ``diverged`` / ``failed``),
  ``run_dir`` and, for a failed trial, ``error``. Trials are appended a batch at a time, so the indices of a
  history are always 0, 1, …, n − 1 and a resumed search proposes trial n next (:func:`secondorder.search.propose`
  is a function of the seed, the index and the history only).
* The criterion of a trial is a path into its run's ``summary.json`` (``best.train_error``, ``final.test_error``);
  a ``best.*`` entry is a record whose ``value`` is taken.
* ``summary.md`` — the trials ranked by criterion.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from secondorder.errors import ConfigError
from secondorder.search import Trial


def criterion_of(summary: dict[str, Any], path: str) -> float | None:
    """The finite number at ``path`` (dot-separated) in a run summary, or ``None``."""
    value: Any = summary
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, dict):
        value = value.get("value")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def read_history(path: Path) -> list[Trial]:
    """The finished trials recorded at ``path`` (none if it does not exist), by index."""
    if not path.exists():
        return []
    trials = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            extra = {k: v for k, v in d.items() if k not in ("index", "params", "criterion", "status", "run_dir")}
            trials.append(Trial(d["index"], d["params"], d["criterion"], d["status"], d["run_dir"], extra))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}:{number} is not a search-history line ({exc}); move the file away") from None
    trials.sort(key=lambda t: t.index)
    if [t.index for t in trials] != list(range(len(trials))):
        raise ConfigError(f"{path}: trial indices are not 0 … {len(trials) - 1}; it is not one search's history")
    return trials


def append_history(path: Path, trials: Sequence[Trial]) -> None:
    """Append finished trials to the history at ``path`` (created with its folder if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        for t in trials:
            handle.write(json.dumps({"index": t.index, "params": t.params, "criterion": t.criterion,
                                     "status": t.status, "run_dir": t.run_dir, **t.extra}) + "\n")


def best_trial(trials: Sequence[Trial]) -> Trial | None:
    """The trial with the lowest criterion (``None`` when no trial completed)."""
    return min((t for t in trials if t.criterion is not None), key=lambda t: t.criterion, default=None)


def summary_table(trials: Sequence[Trial], keys: Sequence[str], criterion: str) -> str:
    """A Markdown table of the trials, best criterion first, unfinished ones last."""
    ranked = sorted(trials, key=lambda t: (t.criterion is None, t.criterion if t.criterion is not None else 0))
    header = "| trial | " + " | ".join(keys) + f" | {criterion} | status |"
    lines = [header, "|" + "---|" * (len(keys) + 3)]
    for t in ranked:
        values = " | ".join(f"{t.params[k]:.4g}" for k in keys)
        crit = f"{t.criterion:.6g}" if t.criterion is not None else "—"
        lines.append(f"| {t.index} | {values} | {crit} | {t.status} |")
    return "\n".join(lines)
