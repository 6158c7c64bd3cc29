"""Report hook of ``make reproduce-hf-rnn`` (spec ``conf/reproduce/hf-rnn.yaml``): thesis §4.13 / Martens &
Sutskever (2011) Figure 4.7 — solved or not, and the number of minibatches used before success.

A run has *succeeded* once fewer than 1 % of the test sequences are wrong (``trainer.target_test_error`` stops it
there; ``target_reached`` in its summary) within the failure budget, and has *failed* otherwise. The thesis's
failure budget is 50 000 minibatches of 1 000 sequences (§4.13), a minibatch being one gradient's or one curvature
product's worth of sequences:

    minibatches = (gradient evaluations · B_g + curvature products · B_g / chunks) / 1000,

B_g the gradient batch and B_g / chunks the curvature batch [our reading of an unstated count] (5-bit memorisation:
both the 32 sequences of the task). A run that neither succeeds nor reaches the failure budget is *unfinished*: our
budget ended first, and it counts as neither. Figure 4.7 plots,
per T, the failure rate over trials and the minibatches of the successful ones (mean with min / max bars); with
several seeds the hook's second table gives solved k / n and median [min, max] minibatches of the solved runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from secondorder.experiments.figure_4_7 import per_cell, plot_figure_4_7
from secondorder.experiments.hf_rnn_verdicts import verdicts_of
from secondorder.experiments.hooks import Context, Hooks
from secondorder.experiments.report import median_range
from secondorder.experiments.runner import Cell
from secondorder.experiments.verdicts import Verdict
from secondorder.report.plots import plot_groups
from secondorder.report.runs import Run
from secondorder.report.tables import to_markdown
from secondorder.run_record import git_state

FAILURE_MINIBATCHES = 50_000  # thesis §4.13
SOLVED, FAILED, UNFINISHED = "solved", "failed", "unfinished"


def minibatches(run_dir: Path) -> float:
    """Minibatches of 1 000 sequences used: gradients and curvature-vector products (thesis §4.13). A gradient
    batch smaller than ``gradient_batch`` is a task's complete finite set (5-bit memorisation's 32 sequences), which
    HF uses whole for the curvature too."""
    summary = json.loads((run_dir / "summary.json").read_text())
    config = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"))
    gradient = config["optimizer"]["gradient_batch"]
    if summary.get("examples_seen") and summary.get("iteration"):
        gradient = min(gradient, summary["examples_seen"] / summary["iteration"])
    whole = gradient < config["optimizer"]["gradient_batch"]
    curvature = gradient if whole else gradient / config["optimizer"]["curvature_chunks"]
    costs = summary.get("costs", {})
    return (costs.get("grad_evals", 0) * gradient + costs.get("curvature_products", 0) * curvature) / 1000


def outcome(run: Run, used: float) -> str:
    """:data:`SOLVED` (target reached within the failure budget), :data:`FAILED` (the thesis's failure: more than
    50 000 minibatches, or a diverged run) or :data:`UNFINISHED` (our budget ended first: censored, not a failure)."""
    if run.summary.get("target_reached") and used <= FAILURE_MINIBATCHES:
        return SOLVED
    if used > FAILURE_MINIBATCHES or run.summary.get("status") == "diverged":
        return FAILED
    return UNFINISHED


def run_rows(cells: list[Cell], found: dict[str, list[Run]]) -> pd.DataFrame:
    """One row per run: task, T, variant (seed), solved, iterations, minibatches, time, final test error."""
    rows = []
    for cell in cells:
        for run in found[cell.name]:
            used = minibatches(run.path)
            seed = {"seed": run.path.name.removeprefix("seed")} if cell.seeds > 1 else {}
            rows.append({"task": cell.labels["task"], "T": cell.labels["T"], "variant": cell.labels["method"],
                         **seed, "solved": "yes" if outcome(run, used) == SOLVED else "no",
                         "outcome": outcome(run, used), "iterations": run.summary.get("iteration"),
                         "minibatches": round(used, 1), "train_time_s": run.summary.get("wall_time_s"),
                         "final_test_error": run.summary.get("final", {}).get("test_error")})
    return pd.DataFrame(rows)


def over_seeds(frame: pd.DataFrame, seeds: int) -> pd.DataFrame:
    """Figure 4.7's quantities per (task, T, variant): solved k / n, minibatches of the solved runs."""
    rows = []
    for (task, T, variant), group in frame.groupby(["task", "T", "variant"], sort=False):
        solved = group[group["solved"] == "yes"]
        rows.append({"task": task, "T": T, "variant": variant, "solved": f"{len(solved)}/{seeds}",
                     "minibatches_of_solved": median_range(solved["minibatches"])})
    return pd.DataFrame(rows)


def report(context: Context, cells: list[Cell], found: dict[str, list[Run]]) -> list[str]:
    """``table.csv`` (one row per run), ``<task>_test_error.png``; the solved table for ``summary.md``."""
    frame = run_rows(cells, found)
    devices = {str(r.summary.get("provenance", {}).get("device_name")) for rs in found.values() for r in rs}
    git = git_state(ignore=("results",))  # the reports this very command rewrites do not make the code dirty
    lines = ["## Solved (thesis Figure 4.7)", "",
             f"Hardware: {', '.join(sorted(devices)) or '?'}. Report written at commit "
             f"{(git['git_commit'] or '?')[:10]}{' (dirty)' if git['git_dirty'] else ''} (each run's own commit and "
             "config are in runs/). Success: < 1 % of test sequences wrong within "
             f"{FAILURE_MINIBATCHES} minibatches; minibatches = (gradient + CG-product sequences) / 1000.", ""]
    if frame.empty:
        return [*lines, "no completed runs", ""]
    frame.to_csv(context.out / "table.csv", index=False)
    lines += [to_markdown(frame), ""]
    if context.profile.seeds > 1:
        lines += ["Over seeds:", "", to_markdown(over_seeds(frame, context.profile.seeds)), ""]
    per_cell(frame).to_csv(context.out / "figure-4.7.csv", index=False)
    footer = (f"commit {(git['git_commit'] or '?')[:10]} · {', '.join(sorted(devices))} · profile "
              f"{context.profile.name}")
    plot_figure_4_7(frame, context.out / "figure-4.7.png", f"Thesis Fig. 4.7 — HF on the pathological RNN "
                    f"problems: minibatches before success and failure rate vs T (profile {context.profile.name})",
                    footer)
    lines += ["Thesis Figure 4.7 (minibatches before success, failure rate vs T): `figure-4.7.png` "
              "(`figure-4.7.csv`).", ""]
    for task in dict.fromkeys(c.labels["task"] for c in cells):
        groups = {c.name: found[c.name] for c in cells if c.labels["task"] == task and found[c.name]}
        if groups:
            plot_groups(groups, "iteration", context.out / f"{task}_test_error.png", center="median",
                        title=f"HF on {task} ({context.profile.name})")
    return [*lines, "Plots per task: `<task>_test_error.png`.", ""]


def verdicts(context: Context, cells: list[Cell], found: dict[str, list[Run]]) -> list[Verdict]:
    return verdicts_of(run_rows(cells, found))


HOOKS = Hooks(report=report, verdicts=verdicts)
