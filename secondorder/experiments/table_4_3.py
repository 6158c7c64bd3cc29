"""Report hook of ``make reproduce-table-4.3`` (spec ``conf/reproduce/table-4.3.yaml``): thesis Table 4.3 beside
ours, and Figure 4.5.

Writes, beside the generic report, ``table.md`` — the thesis's train / test numbers beside ours in every cell
(rows CURVES, MNIST, MNIST*, FACES, FACES* × columns PT+NCG, RAND+HF, PT+HF; ours labelled with profile, data,
hardware and commit), ``table.csv`` behind it and ``figure-4.5.png`` — train and test error vs wall-clock time on
CURVES for the three methods, pre-training time included (thesis Figure 4.5).

Ours, in each cell, are the training and test errors of *one* evaluation of each run — the one with the lowest test
error. The thesis stopped each run "at apparent convergence or at the onset of overfitting" (§4.12) and reports the
train and test errors of that point; the lowest-test evaluation is that point (the last one for a run that has not
overfitted). Best training and best test errors taken from different evaluations would pair numbers no run ever
had at once. With several seeds, the median of each (min–max in ``table.csv``). Numbers print as the thesis prints
them: two decimals below 10, one below 100, none above (0.10, 2.31, 55.4, 139); below 0.1, two significant digits.
"""

from __future__ import annotations

import math
import statistics

import pandas as pd

from secondorder.experiments.hooks import Context, Hooks
from secondorder.experiments.runner import Cell
from secondorder.experiments.table_4_3_verdicts import verdicts
from secondorder.report.plots import plot_groups
from secondorder.report.references import references
from secondorder.report.runs import Run


def _fmt(value: float | None) -> str:
    """As thesis Table 4.3 prints errors: 0.10, 2.31, 55.4, 139 (and 0.064 below 0.1)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if abs(value) < 0.1:
        return f"{value:#.2g}"
    return f"{value:.{2 if abs(value) < 10 else 1 if abs(value) < 100 else 0}f}"


def reported_evaluation(run: Run) -> dict[str, float | None]:
    """Train and test error, and iteration, of the run's evaluation with the lowest test error (the thesis's stopping
    point, §4.12); the summary's final errors when the run logged no evaluation."""
    evaluations = run.evaluations.dropna(subset=["test_error"]) if "test_error" in run.metrics else run.metrics[:0]
    if evaluations.empty:
        final = run.summary.get("final", {})
        return {"train_error": final.get("train_error"), "test_error": final.get("test_error"),
                "iteration": run.summary.get("iteration")}
    row = evaluations.loc[evaluations.test_error.idxmin()]
    return {"train_error": float(row.train_error), "test_error": float(row.test_error),
            "iteration": int(row.iteration)}


def spread(runs: list[Run], key: str) -> tuple[float | None, float | None, float | None]:
    """Median, min and max over the runs (seeds) of ``key`` at each run's reported evaluation."""
    values = [v for v in (reported_evaluation(r)[key] for r in runs) if v is not None]
    if not values:
        return None, None, None
    return statistics.median(values), min(values), max(values)


def status_of(runs: list[Run]) -> str:
    statuses = sorted({str(r.summary.get("status")) for r in runs})
    return "missing" if not runs else ",".join(statuses)


def build_table(runs: dict[tuple[str, str], list[Run]], profile: str, reduced: bool) -> tuple[str, pd.DataFrame]:
    """``table.md`` text and ``table.csv`` frame from the runs of each (row, column)."""
    ref = references()["table_4_3"]
    columns = list(ref["columns"])
    records, lines = [], ["| | " + " | ".join(ref["columns"][c] for c in columns) + " |",
                          "|---|" + "---|" * len(columns)]
    for row in ref["rows"]:
        cells_text = []
        for column in columns:
            thesis = ref["rows"][row][column]
            found = runs.get((row, column), [])
            train, test = spread(found, "train_error"), spread(found, "test_error")
            status = status_of(found)
            first = found[0].summary if found else {}
            records.append({"row": row, "column": column, "thesis_train": thesis[0], "thesis_test": thesis[1],
                            "ours_train": train[0], "ours_test": test[0], "status": status,
                            "iterations": first.get("iteration"), "wall_time_s": first.get("wall_time_s"),
                            "reported_iteration": reported_evaluation(found[0])["iteration"] if found else None,
                            "data": first.get("data", {}).get("label"), "seeds": len(found),
                            "ours_train_min": train[1], "ours_train_max": train[2],
                            "ours_test_min": test[1], "ours_test_max": test[2]})
            seeds = f" (median of {len(found)})" if len(found) > 1 else ""
            cells_text.append(f"thesis {_fmt(thesis[0])}, {_fmt(thesis[1])} · ours {_fmt(train[0])}, "
                              f"{_fmt(test[0])}{seeds}" + ("" if status == "completed" else f" ({status})"))
        lines.append(f"| {ref['rows'][row]['label']} | " + " | ".join(cells_text) + " |")
    frame = pd.DataFrame(records)
    any_run = next((rs[0] for rs in runs.values() if rs), None)
    prov = any_run.summary.get("provenance", {}) if any_run else {}
    data_labels = sorted({r["data"] for r in records if r["data"]})
    intro = [
        f"# Thesis Table 4.3 — profile `{profile}`",
        "",
        f"Each cell: train, test error ({ref['metric']}); thesis numbers from {ref['source']}; ours are the train "
        "and test errors of each run's evaluation with the lowest test error — the thesis's stopping point, 'at "
        "apparent convergence or at the onset of overfitting' (§4.12) — both from that one evaluation (several "
        "seeds: their median; `table.csv` gives the iteration).",
        "",
        f"**Ours: profile `{profile}`** — "
        + ("REDUCED BUDGET (a fixed training time per cell, pre-training included) on OFFLINE STAND-IN DATA; not "
           "comparable to the thesis's numbers. " if reduced else "the thesis's data and budgets. ")
        + f"Data: {'; '.join(data_labels)}. Hardware: {prov.get('device_name', '?')}; torch {prov.get('torch', '?')}; "
        f"commit {(prov.get('git_commit') or '?')[:10]}{' (dirty)' if prov.get('git_dirty') else ''}.",
        "",
        f"Thesis note: {ref['note']}",
        "",
    ]
    return "\n".join(intro + lines + ["", ncg_epochs_note(runs)]) + "\n", frame


def ncg_epochs_note(runs: dict[tuple[str, str], list[Run]]) -> str:
    """Which PT+NCG run length the table used: H&S ran 200 epochs of fine-tuning (the experiment files' default);
    the thesis's own PT+NCG column comes from runs of "many more epochs" (§4.12), a number it does not give."""
    epochs = {row: max(float(r.summary.get("epochs") or 0.0) for r in found)
              for (row, column), found in runs.items() if column == "pt_ncg" and found}
    used = ", ".join(f"{row} {value:.0f}" for row, value in epochs.items()) or "none run"
    return ("PT+NCG fine-tuning epochs run: " + used + ". H&S ran 200 (the experiment files' default); the thesis's "
            "PT+NCG column comes from runs of \"many more epochs\" (§4.12, number not given): select a longer run "
            "with `trainer.max_epochs=`.")


def evaluations_text(runs: dict[tuple[str, str], list[Run]]) -> str:
    """``evaluations.md``: every evaluation of every cell (time, train, test in the thesis's format), the reported
    one (lowest test error) in bold — the whole trajectory behind each number of ``table.md``."""
    ref = references()["table_4_3"]
    lines = ["# Thesis Table 4.3 — every evaluation of every cell", "",
             "Training time includes pre-training. **Bold**: the evaluation `table.md` reports (lowest test error).",
             ""]
    for (row, column), found in runs.items():
        for run in found:
            evaluations = run.evaluations.dropna(subset=["test_error"]) if "test_error" in run.metrics else None
            if evaluations is None or evaluations.empty:
                continue
            lowest = evaluations.test_error.idxmin()
            lines += [f"## {ref['rows'][row]['label']} · {ref['columns'][column]} ({run.path.name})", "",
                      "| iteration | training time (s) | train | test |", "|---|---|---|---|"]
            for index, e in evaluations.iterrows():
                mark = "**" if index == lowest else ""
                lines.append(f"| {mark}{int(e.iteration)}{mark} | {e.wall_time_s:.0f} | {mark}{_fmt(e.train_error)}"
                             f"{mark} | {mark}{_fmt(e.test_error)}{mark} |")
            lines.append("")
    return "\n".join(lines) + "\n"


def report(context: Context, cells: list[Cell], found: dict[str, list[Run]]) -> list[str]:
    """``table.md``, ``table.csv``, ``evaluations.md``, ``figure-4.5.png``; a pointer to them for ``summary.md``."""
    runs = {(c.labels["problem"], c.labels["method"]): found[c.name] for c in cells}
    table, frame = build_table(runs, context.profile.name, context.profile.reduced)
    (context.out / "table.md").write_text(table)
    (context.out / "evaluations.md").write_text(evaluations_text(runs))
    frame.to_csv(context.out / "table.csv", index=False)
    columns = references()["table_4_3"]["columns"]
    curves = {label: runs[("curves", column)] for column, label in columns.items() if runs.get(("curves", column))}
    if curves:
        plot_groups(curves, "wall_time_s", context.out / "figure-4.5.png", log_y=True, center="median",
                    y_label="error: per-case sum of squared pixel errors",
                    title=f"Thesis Fig. 4.5 — CURVES, error vs time, pre-training included "
                          f"(profile {context.profile.name})")
    return ["Thesis Table 4.3 beside ours: `table.md` (`table.csv`); every evaluation behind it: `evaluations.md`; "
            "thesis Figure 4.5: `figure-4.5.png`.", ""]


HOOKS = Hooks(report=report, verdicts=verdicts)
