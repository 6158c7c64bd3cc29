"""Per-experiment hooks: the little an experiment needs beyond the generic runner and report.

A spec names its hooks (``hooks: table_4_3``) from the registry in :mod:`secondorder.experiments.reproduce`.
``prepare`` runs before the cells (George's §4.1 search table and learning-rate tuning); ``report`` writes what a
run does not record (thesis Table 4.3 beside ours, HF-RNN's solved / minibatches table) and returns Markdown for
the experiment's ``summary.md``; ``verdicts`` judges each of the paper's claims on the runs
(:mod:`secondorder.experiments.verdicts`). Hooks hold no ``train`` overrides: those live in the spec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from secondorder.experiments.runner import Cell
from secondorder.experiments.spec import Profile, Spec
from secondorder.experiments.verdicts import Verdict
from secondorder.report.runs import Run


@dataclass(frozen=True)
class Context:
    """One invocation: the spec, the profile, where runs go (``runs/<name>/<profile>``) and the report folder."""

    spec: Spec
    profile: Profile
    runs_root: Path
    out: Path
    data_dir: Path


Prepare = Callable[[Context, list[Cell]], list[Cell]]
Report = Callable[[Context, list[Cell], dict[str, list[Run]]], list[str]]
Judge = Callable[[Context, list[Cell], dict[str, list[Run]]], list[Verdict]]


@dataclass(frozen=True)
class Hooks:
    prepare: Prepare | None = None
    report: Report | None = None
    verdicts: Judge | None = None
