"""The KFRA experiment's first-order selection (Botev et al. 2017, §5.1): best and top-k of the grid."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from secondorder.experiments.kfra import TOP, ranked_grid, report, selection_groups, selection_rows
from secondorder.experiments.report import collect
from secondorder.experiments.runner import Cell
from secondorder.experiments.spec import load_spec
from tests.helpers import fake_run


def grid_cells(root: Path) -> list[Cell]:
    """Adam's 8 × 5 grid with final training error 1 + k + T (k = 6 … 13), one diverged setting, plus K-FAC and
    Adam at 10⁻³."""
    cells = []
    for k in range(6, 14):
        for T in (1, 0.5, 0.25, 0.125, 0.0625):
            name = f"curves__adam_lr2^-{k}_T{T}"
            status = "diverged" if (k, T) == (6, 0.0625) else "completed"
            fake_run(root / name, train=k + T, test=k + T + 1, status=status)  # final = best + 1
            cells.append(Cell(name, [], root / name, {"problem": "curves", "method": f"adam_lr2^-{k}_T{T}",
                                                        "optimizer": "adam", "k": k, "T": T}))
    for method, error in (("kfac", 0.5), ("adam_default", 30.0)):
        fake_run(root / f"curves__{method}", train=error, test=error)
        cells.append(Cell(f"curves__{method}", [], root / f"curves__{method}", {"problem": "curves",
                                                                                "method": method}))
    return cells


def test_grid_runs_rank_by_final_training_error_and_diverged_runs_rank_last(tmp_path: Path) -> None:
    cells = grid_cells(tmp_path)
    found = collect(cells)
    ranked = ranked_grid(cells, found)["adam"]
    assert len(ranked) == 40
    assert [(cell.labels["k"], cell.labels["T"]) for cell, _ in ranked[:2]] == [(6, 0.125), (6, 0.25)]
    assert (ranked[-1][0].labels["k"], ranked[-1][0].labels["T"]) == (6, 0.0625)  # the lowest error, but diverged
    row = selection_rows("curves", ranked_grid(cells, found))[0]
    assert (row["best_lr"], row["best_period"], row["best_final_train"]) == ("2^-6", 0.125, 1 + 6.125)
    top10 = sorted(1 + k + T for k in range(6, 14) for T in (1, 0.5, 0.25, 0.125, 0.0625) if (k, T) != (6, 0.0625))
    assert math.isclose(row["top10_mean_final_train"], sum(top10[:10]) / 10)
    assert math.isclose(row["top20_mean_final_train"], sum(top10[:20]) / 20)
    groups = selection_groups(cells, found)
    assert {name: len(runs) for name, runs in groups.items()} == {"kfac": 1, "adam_default": 1, "adam best": 1,
                                                                 **{f"adam top-{k}": k for k in TOP}}


def test_the_kfra_report_writes_the_selection_table_and_plots(tmp_path: Path) -> None:
    from secondorder.experiments.hooks import Context

    spec = load_spec("kfra")
    context = Context(spec, spec.profile("full"), tmp_path / "runs", tmp_path / "out", tmp_path)
    context.out.mkdir()
    cells = grid_cells(tmp_path / "runs")
    lines = report(context, cells, collect(cells))
    assert any("First-order grid" in line for line in lines)
    table = pd.read_csv(context.out / "first_order_grid.csv")
    assert table.loc[0, "best_lr"] == "2^-6" and table.loc[0, "settings"] == 40
    for suffix in ("iteration", "time"):
        assert (context.out / f"curves_selection_vs_{suffix}.png").stat().st_size > 0
    assert report(context, [c for c in cells if "lr2" not in c.name], collect(cells)) == []  # quick: no grid


def test_damping_band_after_iteration_100(tmp_path: Path) -> None:
    """Issue 18: τ and γ from iteration 100 on, their moves up and down, and the band check — a runaway γ (the
    old unbounded default: ×2.79 every 20 iterations) is out of the band."""
    from secondorder.experiments.kfra import damping_rows

    def kfra_run(name: str, gammas: list[float]) -> Cell:
        folder = tmp_path / name
        fake_run(folder, train=1.0, test=1.0)
        iterations = [20 * i for i in range(len(gammas))]
        taus = [150 * 0.77 ** i for i in range(len(gammas))]
        taus[-2] = taus[-3] * 1.3  # one LM increase
        pd.DataFrame({"iteration": iterations, "wall_time_s": iterations, "train_error": 1.0, "lambda": taus,
                      "gamma": gammas}).to_csv(folder / "metrics.csv", index=False)
        return Cell(name, [], folder, {"problem": "curves", "method": name})

    healthy = kfra_run("kfra", [150, 53.8, 19.3, 1.0, 0.36, 0.13, 0.36, 0.13, 0.05])
    runaway = kfra_run("kfra_unbounded", [150 * 2.79 ** i for i in range(9)])
    small_start = kfra_run("kfra_tau1", [150, 53.8, 19.3, 1.0, 0.36, 0.13, 0.36, 0.13, 0.05])
    small_start.labels["damping0"] = 1.0  # τ (which starts at 150 here) must stay below this cell's τ₀ = 1
    cells = [healthy, runaway, small_start]
    rows = {r["method"]: r for r in damping_rows(cells, collect(cells))}
    assert not rows["kfra_tau1"]["in_band"] and rows["kfra_tau1"]["tau0"] == 1.0
    row = rows["kfra"]
    assert row["in_band"] and (row["gamma_min"], row["gamma_max"]) == (0.05, 0.36)  # iterations 100 … 160
    assert (row["gamma_up"], row["gamma_down"]) == (1, 2) and (row["tau_up"], row["tau_down"]) == (1, 2)
    assert not rows["kfra_unbounded"]["in_band"] and rows["kfra_unbounded"]["gamma_down"] == 0
