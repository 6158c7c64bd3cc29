"""``python -m secondorder.experiments <experiment> [--profile quick|full|…]``: the one entry point of every
``make reproduce-*`` target.

Loads the experiment's spec (``conf/reproduce/<experiment>.yaml``, or a spec file's path), expands it for the
profile into cells, runs them as ``train`` runs into ``runs/<experiment>/<profile>/`` — resumably: a completed or
diverged run is skipped, an interrupted one continues from its checkpoint — and writes the report into
``results/<experiment>/<profile>/`` (:mod:`secondorder.experiments.report`, plus the spec's hooks).

    python -m secondorder.experiments kfra --profile quick
    python -m secondorder.experiments kfra --cells 'curves__*' --list     # print the selected cells' overrides
    python -m secondorder.experiments my_spec.yaml --profile quick        # a spec outside conf/reproduce/
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from secondorder.errors import ConfigError, UserError
from secondorder.experiments import george, hf_rnn, kfac_rnn_verdicts, kfac_verdicts, kfra, table_4_3
from secondorder.experiments.expansion import expand
from secondorder.experiments.hooks import Context, Hooks
from secondorder.experiments.report import write_report
from secondorder.experiments.runner import exit_code, run_cells, select
from secondorder.experiments.spec import available_specs, load_spec
from secondorder.experiments.verdicts import update_results_readme

HOOKS = {"table_4_3": table_4_3.HOOKS, "hf_rnn": hf_rnn.HOOKS, "george": george.HOOKS, "kfra": kfra.HOOKS,
         "kfac": kfac_verdicts.HOOKS, "kfac_rnn": kfac_rnn_verdicts.HOOKS}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m secondorder.experiments", description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", help=f"one of {', '.join(available_specs())}, or the path of a spec .yaml")
    p.add_argument("--profile", default="quick", help="a profile of the spec (quick, full, …); default quick")
    p.add_argument("--runs", type=Path, help="run folders go under RUNS/<profile> (default runs/<experiment>, or the "
                                             "profile's runs folder + /<experiment>)")
    p.add_argument("--out", type=Path, help="the report goes to OUT/<profile> (default results/<experiment>)")
    p.add_argument("--cells", nargs="*", help="run only these cells (names or shell patterns, e.g. 'curves__*'); "
                                              "the report still covers every cell")
    p.add_argument("--data-dir", type=Path, default=Path("data"), help="dataset files (for the hooks)")
    p.add_argument("--list", action="store_true", help="print the cells and their overrides; run nothing")
    p.add_argument("--jobs", type=int, help="runs at once (default: the profile's jobs, else 1); each gets "
                                            "cores / jobs threads — keep 1 where wall-clock times are compared")
    p.add_argument("--report-only", action="store_true",
                   help="write the report from the runs as they are (e.g. while a long target is still running); "
                        "run nothing")
    return p


def runs_root(experiment: str, profile_runs: str | None) -> Path:
    """``runs/<experiment>``, or ``<profile's runs>/<experiment>`` for a profile whose long runs live outside the
    work tree (``runs: ~/secondorder-runs``), where a fresh checkout does not lose them."""
    return (Path(profile_runs).expanduser() if profile_runs else Path("runs")) / experiment


def hooks_of(name: str | None) -> Hooks:
    if name is None:
        return Hooks()
    if name not in HOOKS:
        raise ConfigError(f"unknown hooks {name!r}; registered: {', '.join(HOOKS)}")
    return HOOKS[name]


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    spec = load_spec(args.experiment)
    profile = spec.profile(args.profile)
    hooks = hooks_of(spec.hooks)
    context = Context(spec, profile, (args.runs or runs_root(spec.name, profile.runs)) / profile.name,
                      (args.out or Path("results") / spec.name) / profile.name, args.data_dir)
    cells = expand(spec, profile.name, context.runs_root)
    if args.list:
        for cell in select(cells, args.cells):
            print(f"{cell.name}: {shlex.join(cell.overrides)}" + (f"  (× {cell.seeds} seeds)" if cell.seeds > 1
                                                                   else ""))
        return 0
    context.out.mkdir(parents=True, exist_ok=True)
    if hooks.prepare is not None:  # may replace cells (George's tuned methods: <problem>__<method>_tuned)
        cells = hooks.prepare(context, cells)
    jobs = args.jobs if args.jobs is not None else profile.jobs
    if jobs < 1:
        raise UserError(f"--jobs {jobs}: must be at least 1")
    outcome = {} if args.report_only else run_cells(select(cells, args.cells), jobs=jobs)
    written = write_report(context, cells, hooks.report, hooks.verdicts)
    if hooks.verdicts is not None:
        update_results_readme(context.out.parent.parent)
    print(f"wrote {context.out}/: {', '.join(written)}")
    return exit_code(outcome)


def cli(argv: list[str] | None = None) -> None:
    """Console wrapper: one-line errors without a traceback."""
    try:
        sys.exit(main(argv))
    except UserError as exc:
        print(f"reproduce: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
