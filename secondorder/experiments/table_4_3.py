"""``make reproduce-table-4.3 [PROFILE=quick|full]``: thesis Table 4.3 end to end, and Figure 4.5.

Rows CURVES, MNIST, MNIST* (ℓ2 1e-4), FACES, FACES* (ℓ2 1e-2) × columns PT+NCG, RAND+HF, PT+HF — each cell
``conf/experiment/table_4_3/<row>_<column>.yaml`` — run to ``runs/table-4.3/<profile>/<cell>`` (resumable:
completed cells are skipped, interrupted ones continue), then ``results/table-4.3/<profile>/``:

* ``table.md`` — the thesis's train / test numbers beside ours in every cell, ours labelled with profile,
  data, hardware and commit; ``table.csv`` behind it; ``runs/`` with every cell's config, summary and metrics;
* ``figure-4.5.png`` — train and test error vs wall-clock time on CURVES for the three methods, pre-training
  time included (L1790).

Profiles:

* ``full`` — the thesis's data and budgets (the experiment files); needs the real MNIST and FACES files and a GPU.
* ``quick`` — finishes on a 2-core CPU in well under 30 minutes: offline data (generated CURVES 4 000 / 2 000,
  ``mnist_5k``, ``faces_lfw`` with 40 variants per image), 2 RBM epochs per layer, and a training budget of
  ``--seconds`` (60) per cell, pre-training included. Labelled as reduced everywhere.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from secondorder.experiments.runner import Cell, run_cells
from secondorder.report.plots import plot_groups
from secondorder.report.references import references
from secondorder.report.runs import Run, copy_run_records, find_runs

ROWS = ("curves", "mnist", "mnist_l2", "faces", "faces_l2")
COLUMNS = ("pt_ncg", "rand_hf", "pt_hf")


def quick_overrides(row: str, column: str, seconds: int) -> list[str]:
    data = {
        "curves": ["dataset.n_train=4000", "dataset.n_test=2000"],
        "mnist": ["dataset=mnist_5k"],
        "faces": ["dataset=faces_lfw", "dataset.variants_per_image=40"],
    }[row.removesuffix("_l2")]
    budget = ["trainer.max_steps=null", "trainer.max_epochs=null", f"trainer.max_time_s={seconds}",
              "trainer.progress=false"]
    budget += ["trainer.eval_every=1"] if column.endswith("hf") else ["trainer.eval_every=10", "trainer.log_every=2"]
    pretrain = ["pretrain.epochs=2"] if column.startswith("pt") else []
    return [*data, *budget, *pretrain]


def cells(profile: str, seconds: int, runs_root: Path) -> list[Cell]:
    out = []
    for row in ROWS:
        for column in COLUMNS:
            overrides = [f"experiment=table_4_3/{row}_{column}"]
            if profile == "quick":
                overrides += quick_overrides(row, column, seconds)
            out.append(Cell(f"{row}_{column}", overrides, runs_root / f"{row}_{column}",
                            {"row": row, "column": column}))
    return out


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.{digits}g}"


def _final(run: Run | None, key: str) -> float | None:
    if run is None:
        return None
    best = run.summary.get("best", {}).get(key, {}).get("value")
    return best if best is not None else run.summary.get("final", {}).get(key)


def build_table(runs: dict[str, Run | None], profile: str) -> tuple[str, pd.DataFrame]:
    ref = references()["table_4_3"]
    records, lines = [], []
    header = "| | " + " | ".join(ref["columns"][c] for c in COLUMNS) + " |"
    lines += [header, "|---|" + "---|" * len(COLUMNS)]
    for row in ROWS:
        cells_text = []
        for column in COLUMNS:
            thesis = ref["rows"][row][column]
            run = runs.get(f"{row}_{column}")
            ours = (_final(run, "train_error"), _final(run, "test_error"))
            status = run.summary.get("status") if run else "missing"
            records.append({"row": row, "column": column, "thesis_train": thesis[0], "thesis_test": thesis[1],
                            "ours_train": ours[0], "ours_test": ours[1], "status": status,
                            "iterations": run.summary.get("iteration") if run else None,
                            "wall_time_s": run.summary.get("wall_time_s") if run else None,
                            "data": run.summary.get("data", {}).get("label") if run else None})
            cells_text.append(f"thesis {_fmt(thesis[0])}, {_fmt(thesis[1])} · ours {_fmt(ours[0])}, {_fmt(ours[1])}"
                              + ("" if status == "completed" else f" ({status})"))
        lines.append(f"| {ref['rows'][row]['label']} | " + " | ".join(cells_text) + " |")
    frame = pd.DataFrame(records)
    any_run = next((r for r in runs.values() if r is not None), None)
    prov = any_run.summary.get("provenance", {}) if any_run else {}
    data_labels = sorted({r["data"] for r in records if r["data"]})
    intro = [
        f"# Thesis Table 4.3 — profile `{profile}`",
        "",
        f"Each cell: train, test error ({ref['metric']}); thesis numbers from {ref['source']}; ours are the best "
        "evaluated values of each run.",
        "",
        f"**Ours: profile `{profile}`** — "
        + ("REDUCED BUDGET (a fixed training time per cell, pre-training included) on OFFLINE STAND-IN DATA; not "
           "comparable to the thesis's numbers. " if profile == "quick" else "the thesis's data and budgets. ")
        + f"Data: {'; '.join(data_labels)}. Hardware: {prov.get('device_name', '?')}; torch {prov.get('torch', '?')}; "
        f"commit {(prov.get('git_commit') or '?')[:10]}{' (dirty)' if prov.get('git_dirty') else ''}.",
        "",
        f"Thesis note: {ref['note']}",
        "",
    ]
    return "\n".join(intro + lines) + "\n", frame


def write_outputs(cell_list: list[Cell], profile: str, out: Path) -> Path:
    runs: dict[str, Run | None] = {}
    for cell in cell_list:
        found = find_runs([cell.run_dir]) if (cell.run_dir / "summary.json").exists() else []
        runs[cell.name] = found[0] if found else None
    table, frame = build_table(runs, profile)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table)
    frame.to_csv(out / "table.csv", index=False)
    present = {name: run for name, run in runs.items() if run is not None}
    copy_run_records(list(present.values()), out / "runs", {str(r.path): name for name, r in present.items()})
    curves = {references()["table_4_3"]["columns"][c]: [runs[f"curves_{c}"]] for c in COLUMNS
              if runs.get(f"curves_{c}") is not None}
    if curves:
        plot_groups(curves, "wall_time_s", out / "figure-4.5.png", log_y=True,
                    title=f"Thesis Fig. 4.5 — CURVES, error vs time, pre-training included (profile {profile})")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reproduce-table-4.3", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=["quick", "full"], default="quick")
    parser.add_argument("--seconds", type=int, default=60, help="quick profile: training seconds per cell")
    parser.add_argument("--runs", type=Path, default=Path("runs/table-4.3"))
    parser.add_argument("--out", type=Path, default=Path("results/table-4.3"))
    parser.add_argument("--cells", nargs="*", help="only these cells (e.g. curves_rand_hf)")
    args = parser.parse_args(argv)
    cell_list = cells(args.profile, args.seconds, args.runs / args.profile)
    selected = [c for c in cell_list if not args.cells or c.name in args.cells]
    outcome = run_cells(selected)
    out = write_outputs(cell_list, args.profile, args.out / args.profile)
    print(f"wrote {out}/table.md, table.csv, figure-4.5.png")
    failed = [name for name, status in outcome.items() if status != "completed"]
    if failed:
        print(f"not completed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
