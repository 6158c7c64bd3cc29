"""Wall-clock time to given training errors on CURVES and MNIST for HF, K-FAC, KFRA and tuned Adam, with each
second-order method's speed-up over Adam (``make bench``, part 3).

    python -m secondorder.bench.time_to_target [--profile quick|full] [--problems curves mnist_5k]
                                               [--targets curves=20,10,5 …] [--out results/bench]

Each method is a real ``train`` run (:mod:`secondorder.experiments.runner`) with its paper settings:

* ``hf`` — thesis Table 4.3 RAND+HF (``experiment=table_4_3/<row>_rand_hf``);
* ``kfac`` — the thesis's K-FAC autoencoder setup (``experiment=kfac_<row>``);
* ``kfra`` — ``optimizer=kfra`` as in the KFRA experiment (η = 1e-5, iterate averaging 0.95);
* ``adam`` — ``optimizer=adam`` at each learning rate of ``--adam-lrs``; "tuned Adam" is, for each target, the
  learning rate that reached it first (the best tuned Adam to that error).

Every run stops at its time budget or once its training error (raw or averaged iterate) reaches the lowest
target; time is the run's training wall-clock (evaluation and checkpoints excluded) at the first evaluation at
or below the target. Runs live under ``runs/bench/<device>/<commit>/<profile>/`` (an interrupted benchmark
resumes; a new commit measures afresh); their records are copied beside the table in
``<out>/<device>/time_to_target/`` and the table is ``<out>/<device>/time_to_target.{md,csv,json}``.

Profiles: ``full`` — the thesis's data sizes (generated CURVES 20 000 / 10 000; MNIST: the offline 5k subset
unless ``--problems mnist``), budgets of 15 min (HF), 5 min (K-FAC, KFRA) and 10 min per Adam learning rate,
three seeds per method (median and min–max; hours on one GPU — ``--seeds 1`` for a first look), targets
including the thesis's 0.2 (K-FAC goal) and 0.11 (RAND+HF); ``quick`` — a CPU smoke measurement:
CURVES 4 000 / 1 000, 15 s per run, two Adam learning rates, shallow targets. Both label themselves.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from secondorder.bench.timing import device_slug, environment, provenance_line, write_table
from secondorder.experiments.runner import Cell, run_cells
from secondorder.report.profiles import best_error, time_to_target
from secondorder.report.runs import Run, copy_run_records, find_runs


@dataclass(frozen=True)
class Profile:
    data: dict[str, list[str]]
    targets: dict[str, list[float]]
    budgets: dict[str, float]  # seconds per run, by method family
    adam_lrs: tuple[float, ...]
    label: str
    seeds: int = 1


PROFILES = {
    "quick": Profile(
        data={"curves": ["dataset=curves", "dataset.n_train=4000", "dataset.n_test=1000"],
              "mnist_5k": ["dataset=mnist_5k"], "mnist": ["dataset=mnist"]},
        targets={"curves": [26.1, 26.0, 25.5], "mnist_5k": [60.0, 50.0, 40.0], "mnist": [60.0, 50.0, 40.0]},
        budgets={"hf": 15, "kfac": 15, "kfra": 15, "adam": 15},
        adam_lrs=(1e-3, 1e-2),
        label="QUICK (CPU smoke measurement): reduced data and 15 s per run — shallow targets, not the goals'",
    ),
    "full": Profile(
        data={"curves": ["dataset=curves"], "mnist_5k": ["dataset=mnist_5k"], "mnist": ["dataset=mnist"]},
        targets={"curves": [20.0, 10.0, 5.0, 2.0, 1.0, 0.2, 0.11], "mnist_5k": [40.0, 30.0, 20.0, 10.0, 5.0],
                 "mnist": [40.0, 30.0, 20.0, 10.0, 5.0, 1.64]},
        budgets={"hf": 900, "kfac": 300, "kfra": 300, "adam": 600},
        adam_lrs=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
        label="full: paper data sizes and the goals' budgets",
        seeds=3,
    ),
}
EVAL_EVERY = {"hf": 1, "kfac": 5, "kfra": 5, "adam": 25}


def method_overrides(problem: str, profile: Profile) -> dict[str, tuple[str, list[str]]]:
    """label → (family, overrides) for one problem."""
    row = "mnist" if problem.startswith("mnist") else problem
    data = profile.data[problem]
    methods = {
        "hf": ("hf", [f"experiment=table_4_3/{row}_rand_hf", *data]),
        "kfac": ("kfac", [f"experiment=kfac_{row}", *data]),
        "kfra": ("kfra", ["optimizer=kfra", *data, "objective.l2=1e-5", "trainer.polyak_decay=0.95"]),
    }
    for lr in profile.adam_lrs:
        methods[f"adam_lr{lr:g}"] = ("adam", ["optimizer=adam", f"optimizer.lr={lr:g}", *data])
    return methods


def cells(problems: list[str], profile: Profile, targets: dict[str, list[float]], root: Path) -> list[Cell]:
    """One run per (problem, method, seed); seed s > 0 runs in ``…_seed<s>``."""
    out = []
    for problem in problems:
        for label, (family, overrides) in method_overrides(problem, profile).items():
            budget = ["trainer.max_steps=null", "trainer.max_epochs=null",
                      f"trainer.max_time_s={profile.budgets[family]}",
                      f"trainer.target_train_error={min(targets[problem])}", "trainer.progress=false",
                      f"trainer.eval_every={EVAL_EVERY[family]}", "trainer.checkpoint_every=1000000"]
            for seed in range(profile.seeds):
                name = f"{problem}_{label}" + (f"_seed{seed}" if seed else "")
                out.append(Cell(name, [*overrides, *budget, f"seed={seed}"], root / name,
                                {"problem": problem, "method": label, "family": family, "seed": str(seed)}))
    return out


def _time(seconds: float) -> str:
    return f"{seconds:.3g} s" if math.isfinite(seconds) else "—"


def _ratio(slower: float, faster: float) -> float:
    """slower / faster, where a target met at the start (time 0) ties with another 0 and beats anything else."""
    if faster > 0:
        return slower / faster
    return 1.0 if slower == 0 else math.inf


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else math.inf


def table(found: dict[tuple[str, str], list[Run]], problems: list[str], targets: dict[str, list[float]],
          budgets: dict[str, float]) -> pd.DataFrame:
    """One row per (problem, target, method): median time to target over the seeds (∞ when a seed missed it)
    with its min–max, iterations, and the speed-up over tuned Adam (ratio of the medians)."""
    rows = []
    for problem in problems:
        runs = {label: seeds for (p, label), seeds in found.items() if p == problem}
        for target in targets[problem]:
            per_seed = {label: [time_to_target(r, target) for r in seeds] for label, seeds in runs.items()}
            times = {label: _median(ts) for label, ts in per_seed.items()}
            iterations = {label: _median([time_to_target(r, target, x="iteration") for r in seeds])
                          for label, seeds in runs.items()}
            adam = {label: t for label, t in times.items() if label.startswith("adam")}
            best_adam_label = min(adam, key=adam.get) if adam else None
            best_adam = adam[best_adam_label] if adam else math.inf
            for label in ("hf", "kfac", "kfra", "adam"):
                key = best_adam_label if label == "adam" else label
                if key not in times:
                    continue
                t = times[key]
                if label == "adam":
                    speedup, bound = 1.0 if math.isfinite(t) else math.nan, ""
                elif math.isfinite(t) and math.isfinite(best_adam):
                    speedup, bound = _ratio(best_adam, t), ""
                elif math.isfinite(t):  # Adam never got there: its budget bounds the speed-up from below
                    speedup, bound = _ratio(budgets["adam"], t), ">"
                else:
                    speedup, bound = math.nan, ""
                rows.append({"problem": problem, "target": target, "method": label, "run": key,
                             "seeds": len(runs[key]), "time_s": t, "time_min_s": min(per_seed[key]),
                             "time_max_s": max(per_seed[key]), "iterations": iterations[key],
                             "speedup_over_adam": speedup, "speedup_bound": bound,
                             "best_error": min(best_error(r) for r in runs[key])})
    return pd.DataFrame(rows)


def to_markdown(frame: pd.DataFrame, env: dict[str, Any], profile_name: str, profile: Profile) -> str:
    lines = [
        f"# Time to target training error — profile `{profile_name}`",
        "",
        f"**{profile.label}.** CURVES is the generated re-creation; MNIST `mnist_5k` the offline 4 000 / 1 000 "
        "subset (stand-ins, not the papers' data).",
        "",
        provenance_line(env),
        f"Budgets per run: {', '.join(f'{k} {v:g} s' for k, v in profile.budgets.items())}; Adam learning rates "
        f"{', '.join(f'{lr:g}' for lr in profile.adam_lrs)} (tuned Adam: the fastest of them to each target). "
        "Time: training wall-clock at the first evaluation with train error (raw or averaged iterate) ≤ target; "
        f"— = not reached within the budget. Seeds per method: {profile.seeds}; with several, the median over "
        "seeds (a seed that missed the target counts as ∞) and the min–max.",
        "Command: `python -m secondorder.bench.time_to_target " + env.get("arguments", "") + "`; run records in "
        "`time_to_target/`.",
        "",
        "| problem | target | method | run | time to target | min–max | iterations | speed-up over tuned Adam | "
        "best error |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in frame.to_dict("records"):
        value = r["speedup_over_adam"]
        speedup = "—" if value != value else f"{r['speedup_bound']}{'∞' if math.isinf(value) else f'{value:.2f}'}×"
        iterations = f"{r['iterations']:.0f}" if math.isfinite(r["iterations"]) else "—"
        spread = f"{_time(r['time_min_s'])}–{_time(r['time_max_s'])}" if r["seeds"] > 1 else ""
        lines.append(f"| {r['problem']} | {r['target']:g} | {r['method']} | {r['run']} | {_time(r['time_s'])} | "
                     f"{spread} | {iterations} | {speedup} | {r['best_error']:.4g} |")
    return "\n".join(lines) + "\n"


def parse_targets(items: list[str], defaults: dict[str, list[float]]) -> dict[str, list[float]]:
    targets = dict(defaults)
    for item in items:
        problem, _, values = item.partition("=")
        if not values:
            raise SystemExit(f"--targets {item!r}: write PROBLEM=T1,T2 (e.g. curves=20,10,5)")
        targets[problem] = [float(v) for v in values.split(",")]
    return targets


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench-time-to-target", description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", choices=sorted(PROFILES), default="full" if torch.cuda.is_available() else "quick")
    p.add_argument("--problems", nargs="+", default=["curves", "mnist_5k"], choices=["curves", "mnist_5k", "mnist"])
    p.add_argument("--targets", nargs="*", default=[], metavar="PROBLEM=T1,T2")
    p.add_argument("--seconds", type=float, default=None, help="override every run's time budget")
    p.add_argument("--adam-lrs", nargs="+", type=float, default=None)
    p.add_argument("--seeds", type=int, default=None, help="runs per method (default: the profile's)")
    p.add_argument("--extra", nargs="*", default=[], metavar="KEY=VALUE",
                   help="train overrides appended to every run (e.g. data_dir=… or dataset.n_train=…)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--runs", type=Path, default=Path("runs/bench"))
    p.add_argument("--out", type=Path, default=Path("results/bench"))
    return p


def main(argv: list[str] | None = None) -> Path:
    args = parser().parse_args(argv)
    profile = PROFILES[args.profile]
    if args.seconds is not None or args.adam_lrs is not None or args.seeds is not None:
        profile = Profile(profile.data, profile.targets,
                          {k: args.seconds or v for k, v in profile.budgets.items()},
                          tuple(args.adam_lrs or profile.adam_lrs),
                          profile.label + (f"; budget overridden to {args.seconds:g} s per run"
                                           if args.seconds else ""), args.seeds or profile.seeds)
    targets = parse_targets(args.targets, profile.targets)
    device = torch.device(args.device)
    env = environment(device)
    env["arguments"] = " ".join(argv if argv is not None else sys.argv[1:])
    commit = (env.get("git_commit") or "unknown")[:10]
    root = args.runs / device_slug(device) / commit / args.profile
    todo = cells(args.problems, profile, targets, root)
    for cell in todo:
        cell.overrides += [f"trainer.device={args.device}", *args.extra]
    outcome = run_cells(todo)
    found: dict[tuple[str, str], list[Run]] = {}
    names: dict[str, str] = {}
    for cell in todo:
        runs = find_runs([cell.run_dir])
        if runs and outcome.get(cell.name) in ("completed", "diverged"):
            found.setdefault((cell.labels["problem"], cell.labels["method"]), []).append(runs[0])
            names[str(runs[0].path)] = cell.name
    frame = table(found, args.problems, targets, profile.budgets)
    markdown = to_markdown(frame, env, args.profile, profile)
    failed = [name for name, status in outcome.items() if status not in ("completed", "diverged")]
    if failed:
        markdown += f"\nRuns that did not finish (left out above): {', '.join(failed)}.\n"
    folder = write_table(args.out, device, "time_to_target", frame, env, markdown)
    copy_run_records([r for seeds in found.values() for r in seeds], folder / "time_to_target", names)
    print(markdown)
    return folder


if __name__ == "__main__":
    main()
