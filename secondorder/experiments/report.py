"""The one report of every experiment: ``results/<name>/<profile>/summary.md`` and what it points to.

Per problem: error vs iterations / training time / gradient evaluations with one curve per method (several seeds:
their median with a min–max band), a table of every run with the data, hardware and commit that produced it, and —
when the profile runs several seeds — each method's median [min, max] over its seeds of the final and best errors
and of the training time. Then a performance profile across the problems (time to target,
:mod:`secondorder.report.profiles`), ``summary.csv`` with every run, and each run's config, summary and metrics
under ``runs/``. An experiment's report hook adds what a run does not record (e.g. thesis Table 4.3 beside ours).
"""

from __future__ import annotations

import pandas as pd

from secondorder.experiments.hooks import Context, Judge, Report
from secondorder.experiments.runner import Cell
from secondorder.experiments.verdicts import write_verdicts
from secondorder.report.plots import plot_groups
from secondorder.report.profiles import write_profile_table
from secondorder.report.runs import Run, copy_run_records, find_runs
from secondorder.report.tables import summary_frame, to_markdown

PLOTS = (("iteration", "iteration"), ("wall_time_s", "time"), ("grad_evals", "gradients"))
SPREAD_COLUMNS = ("final_train_error", "final_test_error", "best_train_error", "best_test_error", "train_time_s")


def cell_runs(cell: Cell) -> list[Run]:
    """The cell's runs that wrote a summary (any status), in seed order."""
    return [find_runs([r.run_dir])[0] for r in cell.seed_runs() if (r.run_dir / "summary.json").exists()]


def collect(cells: list[Cell]) -> dict[str, list[Run]]:
    return {cell.name: cell_runs(cell) for cell in cells}


def median_range(values: pd.Series) -> str:
    """``median [min, max]`` of the finite values (one value: itself; none: empty)."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return ""
    if len(values) == 1:
        return f"{values.iloc[0]:.4g}"
    return f"{values.median():.4g} [{values.min():.4g}, {values.max():.4g}]"


def run_frame(cells: list[Cell], found: dict[str, list[Run]]) -> pd.DataFrame:
    """One row per run: problem, method, seed, then :func:`summary_frame`'s columns."""
    frames = []
    for cell in cells:
        runs = found[cell.name]
        if not runs:
            continue
        frame = summary_frame(runs).drop(columns=["run"])
        seeds = {r.run_dir: r.seed for r in cell.seed_runs()}
        frame.insert(0, "seed", [seeds.get(run.path) for run in runs])
        frame.insert(0, "method", cell.labels["method"])
        frame.insert(0, "problem", cell.labels["problem"])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def seed_frame(runs: pd.DataFrame, seeds: int) -> pd.DataFrame:
    """Per method: runs found out of ``seeds``, and median [min, max] of the errors and training time."""
    rows = []
    for method, group in runs.groupby("method", sort=False):
        rows.append({"method": method, "seeds": f"{len(group)}/{seeds}",
                     **{column: median_range(group[column]) for column in SPREAD_COLUMNS}})
    return pd.DataFrame(rows)


def problem_section(context: Context, problem: str, cells: list[Cell], found: dict[str, list[Run]]) -> list[str]:
    """Plots and tables of one problem (``{problem}_error_vs_{iteration,time,gradients}.png``)."""
    groups = {c.labels["method"]: found[c.name] for c in cells if found[c.name]}
    if not groups:
        return [f"## {problem}", "", "no completed runs", ""]
    measures = cells[0].labels.get("measures", ("error",))
    for measure in measures:
        for x, suffix in PLOTS:
            plot_groups(groups, x, context.out / f"{problem}_{measure}_vs_{suffix}.png", center="median",
                        title=f"{context.spec.title}: {problem} ({context.profile.name})", measure=measure)
    runs = run_frame(cells, found)
    seeds = context.profile.seeds
    lines = [f"## {problem}", "", to_markdown(runs.drop(columns=["problem"] + ([] if seeds > 1 else ["seed"]))), ""]
    if seeds > 1:
        lines += [f"Over seeds (median [min, max] of {seeds}):", "", to_markdown(seed_frame(runs, seeds)), ""]
    lines += [", ".join(f"`{problem}_{m}_vs_iteration.png`" for m in measures) + ", `…_time.png`, `…_gradients.png`"
              + (" (median over seeds, min–max band)." if seeds > 1 else "."), ""]
    return lines


def header(context: Context) -> list[str]:
    spec, profile = context.spec, context.profile
    lines = [f"# {spec.title} — profile `{profile.name}`", ""]
    lines += [profile.note.strip(), ""] if profile.note else []
    if spec.claims:
        lines += ["Paper's claims:", "", *(f"- {claim.strip()}" for claim in spec.claims), ""]
    if spec.notes:
        lines += ["Notes:", "", *(f"- {note.strip()}" for note in spec.notes), ""]
    return lines


def report_provenance(found: dict[str, list[Run]]) -> str:
    """Hardware and commits of the runs, for the top of a report: one commit when the table is from one tree."""
    summaries = [r.summary.get("provenance", {}) for runs in found.values() for r in runs]
    devices = sorted({str(p.get("device_name", "?")) for p in summaries})
    commits = sorted({f"{(p.get('git_commit') or '?')[:10]}{' (dirty)' if p.get('git_dirty') else ''}"
                      for p in summaries})
    return (f"Runs: {len(summaries)}; hardware: {', '.join(devices) or '?'}; "
            f"commit{'s' if len(commits) > 1 else ''}: {', '.join(commits) or '?'}.")


def write_report(context: Context, cells: list[Cell], hook: Report | None = None,
                 judge: Judge | None = None) -> list[str]:
    """Write ``summary.md``, ``summary.csv``, plots, run records (and the hook's files, and ``verdicts.md`` when
    the experiment judges its claims); return the files."""
    out = context.out
    out.mkdir(parents=True, exist_ok=True)
    found = collect(cells)
    lines = header(context)
    if judge is not None:
        lines += write_verdicts(out, context.spec.title, context.profile.name, report_provenance(found),
                                judge(context, cells, found))
    if hook is not None:
        lines += hook(context, cells, found)
    problems = list(dict.fromkeys(c.labels["problem"] for c in cells))
    for problem in problems:
        lines += problem_section(context, problem, [c for c in cells if c.labels["problem"] == problem], found)
    table: dict[str, dict[str, list[Run]]] = {}
    for cell in cells:
        if found[cell.name]:
            table.setdefault(cell.labels["problem"], {})[cell.labels["method"]] = found[cell.name]
    if len({method for methods in table.values() for method in methods}) > 1:
        lines.append(write_profile_table(table, out, f"{context.spec.title} ({context.profile.name})"))
    names = {str(r.run_dir): r.key for cell in cells for r in cell.seed_runs()}  # runs/<cell>[/seed<s>]
    copy_run_records([run for runs in found.values() for run in runs], out / "runs", names)
    runs = run_frame(cells, found)
    if not runs.empty:
        runs.to_csv(out / "summary.csv", index=False)
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    return sorted(p.name for p in out.iterdir())

