"""``make reproduce-george``: George (2017) — the hyperparameter-search comparison of §4.1 (Table, Figure 4.1)
and the method comparisons of §6.6 (Figures 6.1 / 6.2) on the MNIST autoencoder with the squared-error loss.

Part A (Table §4.1, L603–L606): grid vs random vs biased random search, each a search of ``experiments`` SGD
runs of ``steps`` updates tuning the learning rate (log scale) and the initial-weight scale; repeated ``searches``
times; reported as the mean and standard deviation over repetitions of the best final training loss found
(the thesis: 100 × 100 × 100, giving 27.23 ± 0.42, 27.02 ± 0.28, 26.61 ± 0.13). Figure 4.1: the points each
procedure evaluated, coloured by their loss. Each experiment runs in-process (no subprocess per trial).

Part B (Figs 6.1 / 6.2): SGD, centred SGD, ACP, ACP with fixed α and K-FAC on the same problem, error vs time.
In the thesis each method is tuned by biased random search: the full profile first runs a ``sweep`` of
``--tune-trials`` trials (``conf/search/george_lr.yaml``, learning rate) per first-order method on a tenth of the
budget and then runs each at its best rate; K-FAC adapts its own damping and step and is not tuned [choice]. The
quick profile runs them at their config defaults, labelled untuned. The CIFAR-10 benchmark (§4.3, an MLP of
8 × 100 ReLU units, the same methods) is in the full profile only (no offline copy of CIFAR-10 exists here).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from secondorder.experiments.comparison import Comparison, Method, ProblemSpec
from secondorder.experiments.search_protocol import search_table

FULL_STEPS = 20000  # [choice] the thesis's run lengths are in its figures only

COMPARISON = Comparison(
    name="george",
    title="George 2017 Figs 6.1/6.2: SGD, centred SGD, ACP, K-FAC on the MNIST autoencoder (squared error)",
    methods=[
        Method("sgd", ("optimizer=sgd", "optimizer.batch_size=200")),
        Method("centered_sgd", ("optimizer=centered_sgd",)),
        Method("acp", ("optimizer=acp",)),
        Method("acp_fixed_alpha", ("optimizer=acp_fixed_alpha",)),
        Method("kfac", ("optimizer=kfac", "optimizer.batch_schedule=fixed", "optimizer.batch_size=200",
                        "optimizer.inverse_period=100", "optimizer.gamma_period=100")),
    ],
    problems=[ProblemSpec("mnist", ("dataset=mnist", "dataset.loss=squared_error", f"trainer.max_steps={FULL_STEPS}"),
                          ("dataset=mnist_5k", "dataset.loss=squared_error")),
              ProblemSpec("cifar10", ("dataset=cifar10", f"trainer.max_steps={FULL_STEPS}"), None)],
    notes=["Each method at its config defaults (the thesis tuned each by biased random search: use `sweep`)."],
    quick_budget=("trainer.max_steps=null", "trainer.max_epochs=null", "trainer.max_time_s=60",
                  "trainer.progress=false", "trainer.eval_every=100"),
)


TUNED = ("sgd", "centered_sgd", "acp", "acp_fixed_alpha")


def tune(comparison: Comparison, runs_root: Path, trials: int) -> Comparison:
    """Biased random search over each first-order method's learning rate on every problem (a tenth of the
    budget per trial); returns the comparison with the best rates filled in, labelled ``*_tuned``."""
    from secondorder.sweep import main as sweep_main
    from secondorder.sweep import read_history

    problems = []
    for problem in comparison.problems:
        methods = []
        for method in problem.methods or comparison.methods:
            if method.label not in TUNED:
                methods.append(method)
                continue
            folder = runs_root / "tuning" / f"{problem.label}__{method.label}"
            sweep_main(["search=george_lr", *method.overrides, *problem.full, f"trainer.max_steps={FULL_STEPS // 10}",
                        "trainer.progress=false", "--trials", str(trials), "--dir", str(folder)])
            best = min((t for t in read_history(folder / "history.jsonl") if t.criterion is not None),
                       key=lambda t: t.criterion)
            methods.append(Method(f"{method.label}_tuned", (*method.overrides,
                                                            *(f"{k}={v}" for k, v in best.params.items()))))
        problems.append(ProblemSpec(problem.label, problem.full, problem.quick, tuple(methods)))
    return Comparison(comparison.name, comparison.title, comparison.methods, problems, comparison.quick_budget,
                      [*comparison.notes[1:], "Learning rates tuned by biased random search (see the tuning sweeps)."])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reproduce-george", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=["quick", "full"], default="quick")
    parser.add_argument("--out", type=Path, default=Path("results/george"))
    parser.add_argument("--runs", type=Path, default=Path("runs/george"))
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--tune-trials", type=int, default=20, help="sweep trials per method (full profile)")
    args = parser.parse_args(argv)
    out = args.out / args.profile
    out.mkdir(parents=True, exist_ok=True)
    (out / "search.md").write_text(search_table(args.profile, out, args.data_dir))
    print((out / "search.md").read_text())
    comparison = COMPARISON
    if args.profile == "full" and args.tune_trials > 0:
        comparison = tune(COMPARISON, args.runs / "full", args.tune_trials)
    return comparison.main(["--profile", args.profile, "--out", str(args.out), "--runs", str(args.runs)])


if __name__ == "__main__":
    raise SystemExit(main())
