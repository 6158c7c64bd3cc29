"""Report hook of ``make reproduce-kfra``: the first-order baselines as Botev et al. (2017, §5.1) plot them.

The paper tunes each first-order method over a grid (footnote 11: learning rate 2⁻⁶ … 2⁻¹³ × halving period
T ∈ {100, 50, 25, 12.5, 6.25} % of the updates) and draws, beside KFRA and K-FAC, Adam at its default learning rate
10⁻³, Adam's best setting, and the mean curves of its top-10 and top-20 settings. The ranking criterion is not
stated; ours is the final training error (a diverged or unfinished run ranks last). The text's "35 experiments"
against the 8 × 5 = 40 of the grid is read as a typo: all 40 are ranked.

Per problem this writes ``{problem}_selection_vs_{iteration,time}.png`` (the second-order methods, Adam at 10⁻³,
best, top-10 and top-20 means; every grid family — SGD, momentum, Nesterov, Adam — gets its own best / top-k) and
``first_order_grid.csv`` / a table in ``summary.md``: each family's best (rate, period) and its top-k means.
"""

from __future__ import annotations

import math

import pandas as pd

from secondorder.experiments import kfra_verdicts
from secondorder.experiments.hooks import Context, Hooks
from secondorder.experiments.runner import Cell
from secondorder.report.plots import plot_groups
from secondorder.report.runs import Run
from secondorder.report.tables import to_markdown

TOP = (10, 20)  # §5.1: "the average performance resulting from using the top 10 and top 20 settings"
GRID_KEY = "k"  # a grid run's label: its learning rate 2^-k (conf/reproduce/kfra.yaml), optionally "optimizer"
# (the family; default adam) and "T" (the halving period as a fraction of the updates; default 1: no halving)


def final_train_error(run: Run) -> float:
    """The run's last training error; ∞ for a run that did not complete (it ranks last)."""
    value = run.summary.get("final", {}).get("train_error")
    if run.summary.get("status") != "completed" or value is None or not math.isfinite(float(value)):
        return math.inf
    return float(value)


def ranked_grid(cells: list[Cell], found: dict[str, list[Run]]) -> dict[str, list[tuple[Cell, Run]]]:
    """Grid runs per optimiser family, best (lowest final training error) first."""
    families: dict[str, list[tuple[Cell, Run]]] = {}
    for cell in cells:
        if GRID_KEY in cell.labels:
            for run in found[cell.name]:
                families.setdefault(str(cell.labels.get("optimizer", "adam")), []).append((cell, run))
    return {name: sorted(runs, key=lambda pair: final_train_error(pair[1])) for name, runs in families.items()}


def selection_rows(problem: str, families: dict[str, list[tuple[Cell, Run]]]) -> list[dict[str, object]]:
    rows = []
    for name, ranked in families.items():
        best_cell, best_run = ranked[0]
        row: dict[str, object] = {"problem": problem, "optimizer": name, "settings": len(ranked),
                                  "best_lr": f"2^-{best_cell.labels['k']}",
                                  "best_period": best_cell.labels.get("T", 1),
                                  "best_final_train": final_train_error(best_run)}
        for k in TOP:
            errors = [final_train_error(run) for _, run in ranked[:k]]
            row[f"top{k}_mean_final_train"] = sum(errors) / len(errors) if len(ranked) >= k else math.nan
        rows.append(row)
    return rows


def selection_groups(cells: list[Cell], found: dict[str, list[Run]]) -> dict[str, list[Run]]:
    """The curves of the paper's figure: second-order methods and Adam at 10⁻³ as they ran, then per grid family
    its best setting and the top-10 / top-20 settings (mean curve, min–max band)."""
    groups = {str(c.labels["method"]): found[c.name] for c in cells
              if found[c.name] and GRID_KEY not in c.labels}
    for name, ranked in ranked_grid(cells, found).items():
        runs = [run for _, run in ranked]
        groups[f"{name} best"] = runs[:1]
        for k in TOP:
            if len(runs) >= k:
                groups[f"{name} top-{k}"] = runs[:k]
    return groups


SETTLE_AFTER = 100  # the damping band is checked from this iteration on (issue 18)
TAU_BAND = (0.0, 150.0)  # τ stays at or below τ₀: the cell's `damping0` (conf/reproduce/kfra.yaml), else 150 ...
GAMMA_BAND = (0.0, 1.0)  # ... and γ within K-FAC's bound (√(γ + η) ≤ 1 with η = 1e-5: γ ≤ 1)


def damping_rows(cells: list[Cell], found: dict[str, list[Run]]) -> list[dict[str, object]]:
    """Per run that logs τ (``lambda``) and γ: their ranges from iteration :data:`SETTLE_AFTER` on, how often each
    moved up and down, and whether both stayed in the band (:data:`TAU_BAND`, :data:`GAMMA_BAND`)."""
    rows = []
    for cell in cells:
        for run in found[cell.name]:
            metrics = run.metrics
            if "lambda" not in metrics or "gamma" not in metrics:
                continue
            late = metrics[metrics.iteration >= SETTLE_AFTER].dropna(subset=["lambda", "gamma"])
            if late.empty:
                continue
            row: dict[str, object] = {"problem": cell.labels["problem"], "method": cell.labels["method"],
                                      "iterations": int(metrics.iteration.max())}
            for name, column in (("tau", "lambda"), ("gamma", "gamma")):
                values, steps = late[column], late[column].diff().dropna()
                row.update({f"{name}_min": float(values.min()), f"{name}_max": float(values.max()),
                            f"{name}_last": float(values.iloc[-1]), f"{name}_up": int((steps > 0).sum()),
                            f"{name}_down": int((steps < 0).sum())})
            row["tau0"] = float(cell.labels.get("damping0", TAU_BAND[1]))
            row["in_band"] = bool(TAU_BAND[0] <= row["tau_min"] and row["tau_max"] <= row["tau0"]
                                  and GAMMA_BAND[0] <= row["gamma_min"] and row["gamma_max"] <= GAMMA_BAND[1])
            rows.append(row)
    return rows


def damping_section(context: Context, cells: list[Cell], found: dict[str, list[Run]]) -> list[str]:
    rows = damping_rows(cells, found)
    if not rows:
        return []
    frame = pd.DataFrame(rows)
    frame.to_csv(context.out / "damping.csv", index=False)
    inside = sum(bool(r["in_band"]) for r in rows)
    return ["## Damping (App. C.3): τ and γ after the first 100 iterations", "",
            f"The band: 0 < τ ≤ τ₀ (column `tau0`: the cell's starting τ) and 0 ≤ γ ≤ {GAMMA_BAND[1]:g} "
            "(√(γ + η) ≤ 1, K-FAC's bound); "
            f"{inside} of {len(rows)} runs stay in it. `up` / `down`: how many logged values rose / fell (τ by "
            "Levenberg–Marquardt every 5 iterations, γ by the greedy search every 20). The unbounded γ of the "
            "earlier default ran away upwards (150 → 3 256 by iteration 60).", "", to_markdown(frame), ""]


def report(context: Context, cells: list[Cell], found: dict[str, list[Run]]) -> list[str]:
    damping = damping_section(context, cells, found)
    rows = []
    for problem in dict.fromkeys(c.labels["problem"] for c in cells):
        mine = [c for c in cells if c.labels["problem"] == problem]
        families = ranked_grid(mine, found)
        if not families:
            continue
        rows += selection_rows(problem, families)
        groups = selection_groups(mine, found)
        for x, suffix in (("iteration", "iteration"), ("wall_time_s", "time")):
            plot_groups(groups, x, context.out / f"{problem}_selection_vs_{suffix}.png",
                        title=f"{context.spec.title}: {problem}, first-order best / top-k (§5.1)")
    if not rows:
        return damping
    frame = pd.DataFrame(rows)
    frame.to_csv(context.out / "first_order_grid.csv", index=False)
    return [*damping, "## First-order grid (§5.1, footnote 11)", "",
            "Each family's best (learning rate, halving period as a fraction of the updates) by final training "
            "error, and the mean final training error of its top 10 and top 20 settings; curves in "
            "`<problem>_selection_vs_{iteration,time}.png`.", "", to_markdown(frame), ""]


HOOKS = Hooks(report=report, verdicts=kfra_verdicts.verdicts)
