"""Method-comparison experiments: methods × problems, each cell a ``train`` run, reported per problem.

A comparison names its methods (label + ``train`` overrides) and problems (label + overrides per profile). Cells
run into ``runs/<name>/<profile>/<problem>__<method>`` (completed ones skipped, interrupted ones resumed); then
``results/<name>/<profile>/`` gets, per problem, error vs iterations / time / gradient evaluations with one curve
per method, a summary table of every cell with the data, hardware and commit that produced it, and the runs'
records. ``quick`` profiles give every cell the same training-time budget and use offline data: they say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from secondorder.experiments.runner import Cell, exit_code, run_cells
from secondorder.report.plots import plot_groups
from secondorder.report.profiles import write_profiles
from secondorder.report.runs import copy_run_records, find_runs
from secondorder.report.tables import summary_frame, to_markdown


@dataclass(frozen=True)
class Method:
    """A method's ``train`` overrides; ``{problem}`` is replaced by the problem's label."""

    label: str
    overrides: tuple[str, ...]


@dataclass(frozen=True)
class ProblemSpec:
    """A problem's ``train`` overrides per profile; ``methods`` replaces the comparison's list where given."""

    label: str
    full: tuple[str, ...]
    quick: tuple[str, ...] | None  # None: full profile only (e.g. no offline stand-in for the data)
    methods: tuple[Method, ...] | None = None


@dataclass
class Comparison:
    name: str
    title: str
    methods: list[Method]
    problems: list[ProblemSpec]
    quick_budget: tuple[str, ...] = ("trainer.max_steps=null", "trainer.max_epochs=null", "trainer.max_time_s=60",
                                     "trainer.progress=false")
    notes: list[str] = field(default_factory=list)

    def cells(self, profile: str, runs_root: Path) -> list[Cell]:
        out = []
        for problem in self.problems:
            if profile == "quick" and problem.quick is None:
                continue
            for method in problem.methods or self.methods:
                overrides = [*(o.format(problem=problem.label) for o in method.overrides),
                             *(problem.full if profile == "full" else problem.quick)]
                if profile == "quick":
                    overrides += list(self.quick_budget)
                name = f"{problem.label}__{method.label}"
                out.append(Cell(name, overrides, runs_root / name, {"problem": problem.label,
                                                                      "method": method.label}))
        return out

    def write(self, cells: list[Cell], profile: str, out: Path) -> Path:
        out.mkdir(parents=True, exist_ok=True)
        lines = [f"# {self.title} — profile `{profile}`", ""]
        if profile == "quick":
            lines += ["**REDUCED BUDGET on OFFLINE / STAND-IN DATA** (the same training-time budget per cell on a "
                      "small machine); not comparable with the papers' numbers.", ""]
        lines += [*self.notes, ""] if self.notes else []
        for problem in (p for p in self.problems if profile == "full" or p.quick is not None):
            found = {c.labels["method"]: find_runs([c.run_dir])[0] for c in cells
                     if c.labels["problem"] == problem.label and (c.run_dir / "summary.json").exists()}
            if not found:
                lines += [f"## {problem.label}", "", "no completed runs", ""]
                continue
            groups = {label: [run] for label, run in found.items()}
            for x, suffix in (("iteration", "iteration"), ("wall_time_s", "time"), ("grad_evals", "gradients")):
                plot_groups(groups, x, out / f"{problem.label}_error_vs_{suffix}.png",
                            title=f"{self.title}: {problem.label} ({profile})")
            frame = summary_frame(list(found.values()))
            frame.insert(0, "method", list(found))
            lines += [f"## {problem.label}", "", to_markdown(frame.drop(columns=["run"])), "",
                      f"Plots: `{problem.label}_error_vs_iteration.png`, `…_time.png`, `…_gradients.png`.", ""]
            copy_run_records(list(found.values()), out / "runs",
                             {str(r.path): f"{problem.label}__{m}" for m, r in found.items()})
        completed = find_runs([c.run_dir for c in cells if (c.run_dir / "summary.json").exists()]) if any(
            (c.run_dir / "summary.json").exists() for c in cells) else []
        if len({r.path.name.split("__")[1] for r in completed}) > 1:
            lines += [write_profiles(completed, out, f"{self.title} ({profile})", "dirname", "dirname")]
        (out / "summary.md").write_text("\n".join(lines) + "\n")
        return out

    def main(self, argv: list[str] | None = None) -> int:
        import argparse

        parser = argparse.ArgumentParser(prog=f"reproduce-{self.name}", description=self.title)
        parser.add_argument("--profile", choices=["quick", "full"], default="quick")
        parser.add_argument("--runs", type=Path, default=Path("runs") / self.name)
        parser.add_argument("--out", type=Path, default=Path("results") / self.name)
        parser.add_argument("--cells", nargs="*", help="only these cells (problem__method)")
        args = parser.parse_args(argv)
        cells = self.cells(args.profile, args.runs / args.profile)
        outcome = run_cells([c for c in cells if not args.cells or c.name in args.cells])
        out = self.write(cells, args.profile, args.out / args.profile)
        print(f"wrote {out}/summary.md and plots")
        return exit_code(outcome)
