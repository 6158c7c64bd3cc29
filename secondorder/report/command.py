"""``report``: a comparison table and error plots from finished run directories.

    report runs/curves                         # print a Markdown table of every run below runs/curves
    report runs/multirun/2026-… --out results/cmp   # also write summary.md, summary.csv, two PNG plots and
                                                    # each run's config.yaml / summary.json / metrics.csv
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from secondorder.report.plots import plot_errors
from secondorder.report.runs import find_runs
from secondorder.report.tables import summary_frame, to_markdown


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="report", description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="+", type=Path, help="run directories, or folders searched for them")
    p.add_argument("--out", type=Path, help="write summary.md, summary.csv and error plots here")
    p.add_argument("--linear", action="store_true", help="linear error axis (default: log)")
    return p


def copy_run_records(runs: list, folder: Path) -> None:
    """Each run's config.yaml, summary.json and metrics.csv beside the report: its provenance travels with it."""
    for run in runs:
        target = folder / run.path.name
        if target.exists():  # two runs with the same folder name: keep both
            target = folder / "_".join(run.path.parts[-2:])
        target.mkdir(parents=True, exist_ok=True)
        for name in ("config.yaml", "summary.json", "metrics.csv"):
            if (run.path / name).exists():
                shutil.copyfile(run.path / name, target / name)


def main(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    runs = find_runs(args.paths)
    frame = summary_frame(runs, relative_to=Path.cwd())
    table = to_markdown(frame)
    stand_ins = sorted({r.summary["data"]["label"] for r in runs if r.summary.get("data", {}).get("stand_in")})
    note = "".join(f"\nNote: stand-in data — {label}." for label in stand_ins)
    print(table + ("\n" + note if note else ""))
    if args.out is None:
        return
    args.out.mkdir(parents=True, exist_ok=True)
    copy_run_records(runs, args.out / "runs")
    frame.to_csv(args.out / "summary.csv", index=False)
    (args.out / "summary.md").write_text(table + "\n" + note + "\n")
    written = [args.out / "summary.md", args.out / "summary.csv"]
    for x, name in (("iteration", "error_vs_iteration.png"), ("wall_time_s", "error_vs_time.png")):
        written.append(plot_errors(runs, x, args.out / name, log_y=not args.linear))
    print("\nwrote " + ", ".join(str(p) for p in written))
