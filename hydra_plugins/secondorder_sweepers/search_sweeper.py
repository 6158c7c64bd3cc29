"""A Hydra sweeper running grid, random or biased random search (George 2017, Alg. 1) through any launcher.

The search loop: while fewer than ``n_trials`` trials are finished, propose the next ``batch_size`` trials with
:func:`secondorder.search.propose` conditioned on the history so far (trial k's proposal depends only on the seed,
k and the history, so a resumed search proposes what an uninterrupted one would), launch them as one batch with the
configured ``hydra/launcher`` (job number = trial index, so trial k always runs in the same job directory), read
each job's criterion from ``summary.json`` in its run directory, and append the batch to ``history.jsonl``.

Outcomes (:mod:`secondorder.search_history`): ``completed`` with the criterion; ``diverged`` (the run says so, or
its criterion is missing or not finite) and ``failed`` (no usable summary; the job's error is kept) enter the
biased search at the worst criterion seen (:func:`secondorder.search.effective_criteria`). An ``interrupted`` run
(SIGTERM, preemption) is not recorded: the search stops and a re-run resumes that trial (with
``trainer.resume=auto`` from its checkpoint). While no trial has succeeded, a batch in which every job failed is not
recorded either: the search stops with that error, since a broken override fails every trial alike.

Robustness: the criterion is checked against the summary's fields before any trial runs; the folder is locked for
the sweep's life (:class:`~secondorder.folder_lock.FolderLock`); the first run pins the search's definition in
``search.json`` and a different search in the same folder is refused; a torn last history line is repaired.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from secondorder.errors import ConfigError, UserError
from secondorder.folder_lock import FolderLock
from secondorder.search import Dimension, Trial, propose
from secondorder.search_history import (
    append_history,
    best_trial,
    check_criterion,
    criterion_of,
    pin_definition,
    read_history,
    repair_history,
    summary_table,
)

log = logging.getLogger(__name__)
METHODS = ("grid", "random", "biased")


def dimension_from_params(key: str, spec: Any) -> Dimension:
    """``hydra.sweeper.params.<key>: {low, high, log, integer}`` as a :class:`~secondorder.search.Dimension`."""
    if not isinstance(spec, dict) or "low" not in spec or "high" not in spec:
        raise ConfigError(f"hydra.sweeper.params.{key}: give {{low: …, high: …}} (and optionally log, integer)")
    unknown = set(spec) - {"low", "high", "log", "integer"}
    if unknown:
        raise ConfigError(f"hydra.sweeper.params.{key}: unknown field(s) {sorted(unknown)}; "
                          "use low, high, log, integer")
    try:
        return Dimension(key, float(spec["low"]), float(spec["high"]), bool(spec.get("log", False)),
                         bool(spec.get("integer", False)))
    except (TypeError, ValueError):
        raise ConfigError(f"hydra.sweeper.params.{key}: low and high must be numbers") from None


def dimension_from_interval(override: Override) -> Dimension:
    """``key=interval(low,high)``, tagged ``log`` and/or ``int`` (``tag(log, interval(1e-5, 1e-1))``)."""
    sweep = override.value()
    key = override.get_key_element()
    if not isinstance(sweep, IntervalSweep):
        raise ConfigError(f"{override.input_line}: the search sweepers take intervals, not lists; write "
                          f"{key}=interval(low,high) (tag(log, interval(…)) for a log scale) or hydra.sweeper.params")
    unknown = set(sweep.tags) - {"log", "int"}
    if unknown:
        raise ConfigError(f"{override.input_line}: unknown tag(s) {sorted(unknown)}; use log and/or int")
    integer = "int" in sweep.tags or (isinstance(sweep.start, int) and isinstance(sweep.end, int))
    return Dimension(key, float(sweep.start), float(sweep.end), "log" in sweep.tags, integer)


def override_of(dimension: Dimension, value: float) -> str:
    """The Hydra override that sets one searched value (``repr`` keeps every digit of a float)."""
    return f"{dimension.key}={int(value)}" if dimension.integer else f"{dimension.key}={value!r}"


def outcome(trial: Trial, result: JobReturn, criterion: str) -> Trial:
    """Fill in a launched trial from its job: status, criterion, run directory and any error."""
    run_dir = Path(str(result.hydra_cfg.hydra.runtime.output_dir)) if result.hydra_cfg is not None else None
    summary_path = run_dir / "summary.json" if run_dir is not None else None
    summary = json.loads(summary_path.read_text()) if summary_path is not None and summary_path.exists() else {}
    trial.run_dir = str(run_dir) if run_dir is not None else None
    trial.status = summary.get("status", "failed")
    if trial.status == "completed":
        trial.criterion = criterion_of(summary, criterion)
        if trial.criterion is None:
            trial.status = "diverged"
    if trial.status not in ("completed", "diverged", "interrupted"):
        trial.status = "failed"
        trial.extra["error"] = job_error(result) or f"no finished summary.json in {run_dir}"
    return trial


def job_error(result: JobReturn) -> str | None:
    """The first line of a failed job's exception."""
    if result.status != JobStatus.FAILED:
        return None
    exc = result._return_value  # the public ``return_value`` re-raises it and logs a second error line
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class SearchSweeper(Sweeper):
    """``hydra/sweeper=biased_random|random_search|grid_search``: see the module docstring."""

    def __init__(self, method: str, n_trials: int, seed: int, batch_size: int, criterion: str, grid_points: int,
                 history: str | None = None, params: DictConfig | dict[str, Any] | None = None) -> None:
        self.method, self.n_trials, self.seed, self.batch_size = method, n_trials, seed, batch_size
        self.criterion, self.grid_points, self.history = criterion, grid_points, history
        self.params = OmegaConf.to_container(params, resolve=True) if isinstance(params, DictConfig) else params
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    def split_arguments(self, arguments: Sequence[str]) -> tuple[list[Dimension], list[str]]:
        """The search space (``params`` plus command-line intervals) and the overrides every job gets."""
        assert self.hydra_context is not None
        if self.method not in METHODS:
            raise ConfigError(f"hydra.sweeper.method={self.method}: must be grid, random or biased")
        if self.n_trials < 0 or self.batch_size < 1 or self.grid_points < 1:
            raise ConfigError("hydra.sweeper: n_trials must be ≥ 0, batch_size and grid_points ≥ 1")
        space = [dimension_from_params(key, spec) for key, spec in (self.params or {}).items()]
        fixed = []
        for override in OverridesParser.create(self.hydra_context.config_loader).parse_overrides(list(arguments)):
            if override.is_sweep_override():
                space.append(dimension_from_interval(override))
            else:
                fixed.append(override)
        keys = [d.key for d in space]
        if not keys:
            raise ConfigError("nothing to search: set hydra.sweeper.params (e.g. +search=adam_lr) or give "
                              "key=interval(low,high) on the command line")
        repeated = {k for k in keys if keys.count(k) > 1} | {o.get_key_element() for o in fixed} & set(keys)
        if repeated:
            raise ConfigError(f"{', '.join(sorted(repeated))}: searched and also set elsewhere; give each key once")
        return space, [f"{o.get_key_element()}={o.get_value_element_as_str()}" for o in fixed]

    def total_trials(self, space: Sequence[Dimension]) -> int:
        return min(self.n_trials, self.grid_points ** len(space)) if self.method == "grid" else self.n_trials

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        assert self.config is not None and self.launcher is not None
        space, fixed = self.split_arguments(arguments)
        check_criterion(self.criterion)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        history_path = Path(self.history) if self.history else sweep_dir / "history.jsonl"
        try:
            sweep_dir.mkdir(parents=True, exist_ok=True)
            history_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the sweep folder {exc.filename} ({exc.strerror}); choose another "
                              "hydra.sweep.dir (--dir)") from None
        with FolderLock(history_path.parent, "search"):
            return self._sweep_locked(space, fixed, sweep_dir, history_path)

    def definition(self, space: Sequence[Dimension], fixed: Sequence[str]) -> dict[str, Any]:
        """What makes two runs in one folder the same search (the number of trials and the batch size may
        change)."""
        return {"method": self.method, "seed": self.seed, "criterion": self.criterion,
                "grid_points": self.grid_points if self.method == "grid" else None,
                "space": sorted([d.key, d.low, d.high, d.log, d.integer] for d in space),
                "overrides": sorted(fixed)}

    def _sweep_locked(self, space: Sequence[Dimension], fixed: list[str], sweep_dir: Path,
                      history_path: Path) -> list[Sequence[JobReturn]]:
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        repair_history(history_path)
        history = read_history(history_path)
        keys = sorted(d.key for d in space)
        if any(sorted(t.params) != keys for t in history):
            raise ConfigError(f"{history_path} records another search space than {keys}; "
                              "choose a new hydra.sweep.dir (or hydra.sweeper.history)")
        pin_definition(history_path.parent / "search.json", self.definition(space, fixed))
        total = self.total_trials(space)
        if history:
            log.info("resuming %s: %d of %d trials finished", history_path, min(len(history), total), total)
        returns = []
        while len(history) < total:
            start = len(history)
            trials = [Trial(k, propose(self.method, space, history, k, self.seed, self.grid_points))
                      for k in range(start, min(total, start + self.batch_size))]
            batch = [[*fixed, *(override_of(d, t.params[d.key]) for d in space)] for t in trials]
            self.validate_batch_is_legal(batch)
            results = self.launcher.launch(batch, initial_job_idx=start)
            returns.append(results)
            done = [outcome(t, r, self.criterion) for t, r in zip(trials, results, strict=True)]
            history += self.record(done, history, history_path)
        self.write_summary(history, space, fixed, history_path.parent / "summary.md")
        return returns

    def record(self, done: list[Trial], history: list[Trial], history_path: Path) -> list[Trial]:
        """Append a launched batch to the history, up to its first interrupted trial; stop when every trial so far
        failed (a broken override or environment, not a region of the search space)."""
        if all(t.status == "failed" for t in done) and all(t.status == "failed" for t in history):
            raise UserError(f"every trial so far failed ({done[0].extra['error']}); fix the overrides and re-run "
                            f"(nothing of this batch was recorded in {history_path})")
        interrupted = [t.index for t in done if t.status == "interrupted"]
        kept = [t for t in done if not interrupted or t.index < interrupted[0]]
        append_history(history_path, kept)
        for t in kept:
            score = f"{self.criterion} = {t.criterion:.6g}" if t.criterion is not None else t.status
            log.info("trial %d %s → %s%s", t.index, t.params, score, f" ({t.extra['error']})" if t.extra else "")
        if interrupted:
            raise UserError(f"trial {interrupted[0]} was interrupted; re-run the same command (with "
                            f"trainer.resume=auto) to resume it — finished trials stay in {history_path}")
        return kept

    def write_summary(self, history: list[Trial], space: Sequence[Dimension], fixed: Sequence[str],
                      path: Path) -> None:
        best = best_trial(history)
        table = summary_table(history, [d.key for d in space], self.criterion)
        path.write_text(f"# {self.method} search, seed {self.seed}\n\nOverrides: `{' '.join(fixed)}`\n\n{table}\n")
        if best is not None:
            log.info("best: trial %d %s → %s = %.6g (%s)", best.index, best.params, self.criterion, best.criterion,
                     best.run_dir)
        log.info("wrote %s", path)
