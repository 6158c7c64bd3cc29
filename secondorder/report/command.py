"""``report``: a comparison table and error plots from finished run directories.

    report runs/curves                         # print a Markdown table of every run below runs/curves
    report runs/multirun/2026-… --out results/cmp   # also write summary.md, summary.csv, PNG plots (error vs
                                                    # iterations, time, gradient evaluations) and each run's
                                                    # config.yaml / summary.json / metrics.csv
    report runs/seeds --group-by optimizer --out …  # mean and min–max band over the runs of each optimiser
    report runs/kfra/quick --profiles --problem-key dirname --method-key dirname --target curves=5 --out …
                                                    # + AlgoPerf-style performance profiles (time to target)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from secondorder.errors import UserError
from secondorder.report.plots import X_AXES, plot_groups
from secondorder.report.profiles import parse_targets, write_profiles
from secondorder.report.runs import copy_run_records, find_runs, group_runs
from secondorder.report.tables import grouped_frame, summary_frame, to_markdown

PLOT_NAMES = {"iteration": "error_vs_iteration.png", "wall_time_s": "error_vs_time.png",
              "grad_evals": "error_vs_gradients.png"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="report", description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="+", type=Path, help="run directories, or folders searched for them")
    p.add_argument("--out", type=Path, help="write summary.md, summary.csv and error plots here")
    p.add_argument("--linear", action="store_true", help="linear error axis (default: log)")
    p.add_argument("--group-by", default="none", choices=["none", "optimizer", "dataset"],
                   help="average runs (e.g. seeds) of each optimiser: mean line and min–max band")
    p.add_argument("--x", nargs="+", default=list(X_AXES), choices=list(X_AXES), help="plot x-axes")
    p.add_argument("--profiles", action="store_true",
                   help="performance profiles: time-to-target ratios across problems (profiles.md, .png)")
    p.add_argument("--problem-key", default="dataset", choices=["dataset", "optimizer", "dirname"],
                   help="what makes a problem (dirname: the <problem>__<method> run-folder names)")
    p.add_argument("--method-key", default="optimizer", choices=["dataset", "optimizer", "dirname"],
                   help="what makes a method")
    p.add_argument("--target", action="append", default=[], metavar="PROBLEM=ERROR",
                   help="training-error target of a problem (default: median of the methods' best errors)")
    p.add_argument("--r-max", type=float, default=4.0, help="largest ratio plotted and scored (AlgoPerf: 4)")
    return p


def main(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    runs = find_runs(args.paths, skip_broken=True, exclude=args.out,
                     warn=lambda line: print(f"report: warning: {line}", file=sys.stderr))
    frame = summary_frame(runs, relative_to=Path.cwd())
    groups = group_runs(runs, args.group_by)
    table = to_markdown(frame)
    if args.group_by != "none":
        table += "\n\n" + to_markdown(grouped_frame(groups))
    stand_ins = sorted({r.summary["data"]["label"] for r in runs if r.summary.get("data", {}).get("stand_in")})
    note = "".join(f"\nNote: stand-in data — {label}." for label in stand_ins)
    if args.profiles:
        if args.out is None:
            raise UserError("--profiles writes files: add --out FOLDER")
        table += "\n\n" + write_profiles(runs, args.out, "performance profile", args.problem_key, args.method_key,
                                          parse_targets(args.target), args.r_max)
    print(table + ("\n" + note if note else ""))
    if args.out is None:
        return
    args.out.mkdir(parents=True, exist_ok=True)
    copy_run_records(runs, args.out / "runs")
    frame.to_csv(args.out / "summary.csv", index=False)
    (args.out / "summary.md").write_text(table + "\n" + note + "\n")
    written = [args.out / "summary.md", args.out / "summary.csv"]
    for x in args.x:
        written.append(plot_groups(groups, x, args.out / PLOT_NAMES[x], log_y=not args.linear))
    print("\nwrote " + ", ".join(str(p) for p in written))
