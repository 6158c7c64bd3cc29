"""``make reproduce-hf-rnn``: thesis §4.13 / Martens & Sutskever (2011) Figure 4.7 — HF on the RNN pathological
problems over a range of time lags T, with structural damping (μ = 1/30, λ₀ = 0.1) and with plain Tikhonov damping
(λ₀ = 0.3): solved or not, and the number of minibatches used before success (seed000 report §6).

A run has *succeeded* once fewer than 1 % of the 10 000 test sequences are wrong (absolute error > 0.04 for
continuous outputs; L1809) — ``trainer.target_test_error`` stops it there — and has *failed* after more than
50 000 minibatches of 1 000 sequences (L1849), a minibatch being one gradient's or one curvature product's worth of
sequences: minibatches = Σ (gradient sequences + CG products × curvature sequences) / 1000 [our reading of an
unstated count]. The thesis shows its results only as a figure (no numbers in the text): HF with structural damping
solves the problems at longer T than HF without it, which fails more often.

Quick profile: addition and 2-bit temporal order at T ∈ {10, 20}, gradient on 1 000 sequences, curvature on 100,
a fixed training time per cell on this CPU (labelled REDUCED; "failed" then means "not solved within the time").
Full: all eight problems at T ∈ {30, 50, 100, 150, 200} with the thesis's settings (experiment=hf_rnn).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from secondorder.experiments.runner import Cell, exit_code, run_cells
from secondorder.report.plots import plot_groups
from secondorder.report.runs import copy_run_records, find_runs
from secondorder.report.tables import to_markdown
from secondorder.run_record import git_state

VARIANTS = {
    "structural": ("optimizer.structural_damping=0.03333333333333333", "optimizer.initial_lambda=0.1"),
    "tikhonov": ("optimizer.structural_damping=0.0", "optimizer.initial_lambda=0.3"),
}
PROFILES = {
    "quick": {"tasks": ["addition", "temporal_order_2bit"], "lags": [10, 20],
              "extra": ("optimizer.gradient_batch=1000", "optimizer.curvature_chunks=10", "dataset.n_test=2000",
                        "trainer.max_steps=null", "trainer.max_time_s=120", "trainer.progress=false")},
    "full": {"tasks": ["addition", "multiplication", "xor", "temporal_order_2bit", "temporal_order_3bit",
                       "random_permutation", "memorization_5bit", "memorization_20bit"],
             "lags": [30, 50, 100, 150, 200], "extra": ("trainer.progress=false",)},
}
FAILURE_MINIBATCHES = 50_000


def cells(profile: str, runs_root: Path) -> list[Cell]:
    settings = PROFILES[profile]
    out = []
    for task in settings["tasks"]:
        for T in settings["lags"]:
            for variant, overrides in VARIANTS.items():
                extra = list(overrides)
                if task == "random_permutation":  # λ₀ = 0.1·T (L1838), for both variants [choice]
                    extra = [o for o in extra if "initial_lambda" not in o] + [f"optimizer.initial_lambda={0.1 * T}"]
                name = f"{task}_T{T}_{variant}"
                out.append(Cell(name, ["experiment=hf_rnn", f"dataset={task}", f"dataset.T={T}", *extra,
                                       *settings["extra"]], runs_root / name,
                                {"task": task, "T": T, "variant": variant}))
    return out


def minibatches(run_dir: Path) -> float:
    """Minibatches of 1 000 sequences used: gradients and curvature-vector products (L1849)."""
    from omegaconf import OmegaConf

    summary = json.loads((run_dir / "summary.json").read_text())
    config = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"))
    gradient = config["optimizer"]["gradient_batch"]
    curvature = gradient / config["optimizer"]["curvature_chunks"]
    costs = summary.get("costs", {})
    return (costs.get("grad_evals", 0) * gradient + costs.get("curvature_products", 0) * curvature) / 1000


def write(all_cells: list[Cell], profile: str, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    rows, runs = [], {}
    for cell in all_cells:
        if not (cell.run_dir / "summary.json").exists():
            continue
        run = find_runs([cell.run_dir])[0]
        runs[cell.name] = run
        used = minibatches(cell.run_dir)
        solved = bool(run.summary.get("target_reached")) and used <= FAILURE_MINIBATCHES
        rows.append({**cell.labels, "solved": "yes" if solved else "no", "iterations": run.summary.get("iteration"),
                     "minibatches": round(used, 1), "train_time_s": run.summary.get("wall_time_s"),
                     "final_test_error": run.summary.get("final", {}).get("test_error")})
    frame = pd.DataFrame(rows)
    devices = {str(r.summary.get("provenance", {}).get("device_name")) for r in runs.values()}
    git = git_state()
    lines = [f"# HF on the RNN pathological problems (thesis §4.13, Fig. 4.7) — profile `{profile}`", ""]
    if profile == "quick":
        lines += ["**REDUCED**: gradient on 1 000 sequences and curvature on 100 (thesis: 10 000 / 1 000), 2 000 test "
                  "sequences, a fixed training time per cell on a 2-core CPU — \"no\" means not solved in that time, "
                  "not the thesis's failure criterion.", ""]
    lines += ["Thesis (figure only, no numbers): with structural damping HF solves the problems at longer time lags "
              "and fails less often than with Tikhonov damping alone.",
              f"Hardware: {', '.join(sorted(devices)) or '?'}. Report written at commit "
              f"{(git['git_commit'] or '?')[:10]}{' (dirty)' if git['git_dirty'] else ''} (each run's own commit and "
              "config are in runs/). Success: < 1 % of "
              "test sequences wrong; minibatches = (gradient + CG-product sequences) / 1000.", ""]
    if not frame.empty:
        lines += [to_markdown(frame), ""]
        frame.to_csv(out / "table.csv", index=False)
        for task in dict.fromkeys(frame["task"]):
            groups = {name: [run] for name, run in runs.items() if name.startswith(f"{task}_T")}
            plot_groups(groups, "iteration", out / f"{task}_test_error.png", title=f"HF on {task} ({profile})")
        copy_run_records(list(runs.values()), out / "runs", {str(r.path): n for n, r in runs.items()})
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reproduce-hf-rnn", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=list(PROFILES), default="quick")
    parser.add_argument("--runs", type=Path, default=Path("runs/hf-rnn"))
    parser.add_argument("--out", type=Path, default=Path("results/hf-rnn"))
    args = parser.parse_args(argv)
    all_cells = cells(args.profile, args.runs / args.profile)
    outcome = run_cells(all_cells)
    out = write(all_cells, args.profile, args.out / args.profile)
    print(f"wrote {out}/summary.md")
    return exit_code(outcome)


if __name__ == "__main__":
    raise SystemExit(main())
