"""The record of a hyperparameter search: what each finished trial scored, kept so that a search resumes.

* ``history.jsonl`` — one JSON line per finished trial: ``index``, ``params`` (Hydra key → value), ``criterion``
  (``null`` unless completed with a finite value), ``status`` (``completed`` / ``diverged`` / ``failed``),
  ``run_dir`` and, for a failed trial, ``error``. Trials are appended a batch at a time, so the indices of a
  history are always 0, 1, …, n − 1 and a resumed search proposes trial n next (:func:`secondorder.search.propose`
  is a function of the seed, the index and the history only).
* The criterion of a trial is a path into its run's ``summary.json`` (``best.train_error``, ``final.test_error``);
  a ``best.*`` entry is a record whose ``value`` is taken.
* ``search.json`` — the search's definition (method, seed, space, criterion, the overrides every trial gets), written
  by the first run; a later run in the same folder must define the same search (it may raise the number of trials).
* ``summary.md`` — the trials ranked by criterion.

The history is append-only: each batch is one ``write``, so a kill leaves at most one torn last line, which the next
run removes (:func:`repair_history`); any other unreadable line is refused in one line.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from secondorder.errors import ConfigError
from secondorder.search import Trial

log = logging.getLogger(__name__)

#: what a criterion may name in a run's summary.json (lower is better); ``best.*`` records carry a ``value``
EVAL_COLUMNS = tuple(f"{split}_{what}{avg}" for split in ("train", "test", "valid") for what in ("error", "loss")
                     for avg in ("", "_avg"))
CRITERIA = (
    *(f"best.{key}" for key in ("train_error", "test_error")),
    *(f"final.{key}" for key in EVAL_COLUMNS),
    *(f"costs.{key}" for key in ("grad_evals", "forward_passes", "curvature_products", "inversions")),
    "iteration", "examples_seen", "epochs", "wall_time_s",
)


def check_criterion(path: str) -> None:
    """Refuse a criterion that names nothing a run's summary holds (a misspelling would score every trial as
    diverged)."""
    if path.removesuffix(".value") not in CRITERIA:
        raise ConfigError(f"hydra.sweeper.criterion={path!r} is not in a run's summary.json; use best.train_error, "
                          "best.test_error, final.<train|test|valid>_<error|loss>[_avg], costs.<count>, iteration, "
                          "epochs or wall_time_s")


def criterion_of(summary: dict[str, Any], path: str) -> float | None:
    """The finite number at ``path`` (dot-separated) in a run summary, or ``None``."""
    value: Any = summary
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, dict):
        value = value.get("value")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _torn_tail(text: str) -> str:
    """The text after the last newline when it is not a complete JSON line (a kill during an append), else ""."""
    tail = text[text.rfind("\n") + 1:]
    try:
        json.loads(tail)
    except ValueError:
        return tail
    return ""


def read_history(path: Path) -> list[Trial]:
    """The finished trials recorded at ``path`` (none if it does not exist), by index; a torn last line is
    skipped (:func:`repair_history` removes it)."""
    if not path.exists():
        return []
    text = path.read_text()
    text = text[: len(text) - len(_torn_tail(text))]
    trials = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            extra = {k: v for k, v in d.items() if k not in ("index", "params", "criterion", "status", "run_dir")}
            trials.append(Trial(d["index"], d["params"], d["criterion"], d["status"], d["run_dir"], extra))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}:{number} is not a search-history line ({exc}); remove that line (or move the "
                              "file away to start the search afresh)") from None
    trials.sort(key=lambda t: t.index)
    if [t.index for t in trials] != list(range(len(trials))):
        raise ConfigError(f"{path}: trial indices are not 0 … {len(trials) - 1}; it is not one search's history")
    return trials


def repair_history(path: Path) -> None:
    """Remove a torn last line (what a kill during an append leaves), or end a complete one with its newline."""
    if not path.exists():
        return
    text = path.read_text()
    if not text or text.endswith("\n"):
        return
    torn = _torn_tail(text)
    kept = text[: len(text) - len(torn)] if torn else text + "\n"
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text(kept)
    os.replace(tmp, path)
    if torn:
        log.warning("%s: removed a torn last line (%d characters) left by an interrupted append", path, len(torn))


def append_history(path: Path, trials: Sequence[Trial]) -> None:
    """Append finished trials to the history at ``path`` (created with its folder if missing), in one write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps({"index": t.index, "params": t.params, "criterion": t.criterion, "status": t.status,
                               "run_dir": t.run_dir, **t.extra}) + "\n" for t in trials).encode()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, data)
    finally:
        os.close(descriptor)


def pin_definition(path: Path, definition: dict[str, Any]) -> None:
    """Write the search's definition to ``path`` on the first run; refuse a different one later."""
    if path.exists():
        try:
            pinned = json.loads(path.read_text())
        except ValueError:
            raise ConfigError(f"{path} is damaged; restore it or start the search in a new folder") from None
        changed = sorted(k for k in set(pinned) | set(definition) if pinned.get(k) != definition.get(k))
        if changed:
            raise ConfigError(f"{path.parent} holds another search (it differs in {', '.join(changed)}); choose a new "
                              "sweep folder (--dir / hydra.sweep.dir), or re-run with the folder's own settings")
        return
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(definition, indent=2) + "\n")
    os.replace(tmp, path)


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
