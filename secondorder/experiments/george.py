"""``make reproduce-george``: George (2017) — the hyperparameter-search comparison of §4.1 (Table, Figure 4.1)
and the method comparisons of §6.6 (Figures 6.1 / 6.2) on the MNIST autoencoder with the squared-error loss.

Part A (thesis §4.1, the table under Figure 4.1): grid vs random vs biased random search, each a search of
``experiments`` SGD runs of ``steps`` updates tuning the learning rate (log scale) and the initial-weight scale;
repeated ``searches`` times; reported as the mean and standard deviation over repetitions of the best final training
loss found (the thesis: 100 × 100 × 100, giving 27.23 ± 0.42, 27.02 ± 0.28, 26.61 ± 0.13). Figure 4.1: the points
each procedure evaluated, coloured by their loss — :mod:`.search_protocol`, each experiment an in-process trainer
run.

Part B (Figs 6.1 / 6.2): SGD, centred SGD, ACP, ACP with fixed α and K-FAC on the same problem, error vs time —
the cells of ``conf/reproduce/george.yaml``, run and reported by the generic runner; this module is its hooks.
In the thesis each method is tuned by biased random search: in the profiles the spec's ``tuning`` names (full),
:func:`tune` first runs a ``sweep`` of ``tuning.trials`` trials (``conf/search/george_lr.yaml``, learning rate)
per listed method on the tuning budget and then runs each at its best rate, labelled ``<method>_tuned``; K-FAC
adapts its own damping and step and is not tuned [choice]. The quick profile runs them at their config defaults,
labelled untuned. The CIFAR-10 benchmark (§4.3) is in the full profile only.
"""

from __future__ import annotations

from secondorder import sweep
from secondorder.errors import UserError
from secondorder.experiments.expansion import merge, render
from secondorder.experiments.hooks import Context, Hooks
from secondorder.experiments.runner import Cell
from secondorder.experiments.search_protocol import search_table

__all__ = ["HOOKS", "search_table", "tune"]


def tune(context: Context, cells: list[Cell], trials: int | None = None) -> list[Cell]:
    """Biased random search over each listed method's learning rate on every problem (the spec's ``tuning``:
    search space, budget per trial, trials); returns the cells with those methods at their best rates, labelled
    ``<method>_tuned``. Other profiles and methods pass through. Each sweep resumes from its history."""
    tuning = context.spec.tuning
    if tuning is None or context.profile.name not in tuning.profiles:
        return cells
    trials = tuning.trials if trials is None else trials
    if trials <= 0:
        return cells
    out = []
    for cell in cells:
        method = cell.labels["method"]
        if method not in tuning.methods:
            out.append(cell)
            continue
        folder = context.runs_root / "tuning" / cell.name
        sweep.main([f"search={tuning.search}", *merge([*cell.overrides, *tuning.budget]), "--trials", str(trials),
                    "--dir", str(folder)])
        finished = [t for t in sweep.read_history(folder / "history.jsonl") if t.criterion is not None]
        if not finished:
            raise UserError(f"tuning {cell.name}: no trial finished; see {folder}")
        best = min(finished, key=lambda t: t.criterion)
        labels = {**cell.labels, "method": f"{method}_tuned"}
        name = render(context.spec.cell, labels)
        overrides = merge([*cell.overrides, *(f"{k}={v}" for k, v in best.params.items())])
        out.append(Cell(name, overrides, context.runs_root / name, labels, cell.seeds))
    return out


def prepare(context: Context, cells: list[Cell]) -> list[Cell]:
    """§4.1's search table and Figure 4.1 (``search.md``, ``figure-4.1.png``), then :func:`tune`."""
    (context.out / "search.md").write_text(search_table(context.profile.name, context.out, context.data_dir))
    print((context.out / "search.md").read_text())
    return tune(context, cells)


HOOKS = Hooks(prepare=prepare)
