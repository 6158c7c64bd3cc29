"""Hyperparameter tuning before a comparison: the spec's ``tuning`` section.

For each listed method (on the listed problems; all where none are listed) in the profiles it names, a ``sweep``
of the named search (``conf/search/<search>.yaml``: biased random search over e.g. the learning rate, George 2017
§4.1) runs its trials on the tuning budget in ``<runs>/tuning/<cell>/`` (resumable from its history); the cell is
then run at the best trial's values, labelled ``<method>_tuned``. Used by George's Figs 6.1/6.2 (every
first-order method's rate, as the thesis) and K-FAC for RNNs (each approximation's step constants, so that the
ranking of the options is not an artefact of one shared setting).
"""

from __future__ import annotations

from secondorder import sweep
from secondorder.errors import UserError
from secondorder.experiments.expansion import merge, render
from secondorder.experiments.hooks import Context
from secondorder.experiments.runner import Cell

__all__ = ["tune"]


def tune(context: Context, cells: list[Cell], trials: int | None = None) -> list[Cell]:
    """A search per cell of each listed method entry (a grid entry: each of its cells) on the listed problems (the
    spec's ``tuning``: search space, budget per trial and trials, per profile); returns the cells with those at
    their best values, labelled ``<label>_tuned``. Other profiles, problems and methods pass through. Each sweep
    resumes from its history."""
    tuning = context.spec.tuning
    if tuning is None or context.profile.name not in tuning.profiles:
        return cells
    budget, profile_trials = tuning.for_profile(context.profile.name)
    trials = profile_trials if trials is None else trials
    if trials <= 0:
        return cells
    out = []
    for cell in cells:
        method = cell.labels["method"]
        entry = cell.labels.get("entry", method)
        if entry not in tuning.methods or (tuning.problems and cell.labels["problem"] not in tuning.problems):
            out.append(cell)
            continue
        folder = context.runs_root / "tuning" / cell.name
        sweep.main([f"search={tuning.search_for(entry)}", *merge([*cell.overrides, *budget]),
                    "--trials", str(trials), "--dir", str(folder)])
        finished = [t for t in sweep.read_history(folder / "history.jsonl") if t.criterion is not None]
        if not finished:
            raise UserError(f"tuning {cell.name}: no trial finished; see {folder}")
        best = min(finished, key=lambda t: t.criterion)
        labels = {**cell.labels, "method": f"{method}_tuned"}
        name = render(context.spec.cell, labels)
        overrides = merge([*cell.overrides, *(f"{k}={v}" for k, v in best.params.items())])
        out.append(Cell(name, overrides, context.runs_root / name, labels, cell.seeds))
    return out
