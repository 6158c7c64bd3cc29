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
import math
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from secondorder.experiments.comparison import Comparison, Method, ProblemSpec
from secondorder.losses import get_loss
from secondorder.metrics import get_metric
from secondorder.models import AutoencoderConfig, InitConfig, build_model
from secondorder.problems import ObjectiveConfig, SupervisedProblem
from secondorder.run_record import device_name, git_state
from secondorder.search import Dimension, run_search

THESIS_TABLE = {"grid": (27.23, 0.42), "random": (27.02, 0.28), "biased": (26.61, 0.13)}  # L603–L606
SPACE = [Dimension("lr", 1e-4, 1.0, log=True), Dimension("init_scale", 0.25, 4.0, log=True)]
PROFILES = {"quick": {"searches": 3, "experiments": 16, "steps": 40, "dims": [784, 250, 30]},
            "full": {"searches": 100, "experiments": 100, "steps": 100, "dims": [784, 1000, 500, 250, 30]}}


def sgd_objective(data, dims: list[int], steps: int, batch_size: int, seed: int):
    """One experiment: Glorot init × scale, plain SGD for ``steps`` updates, final training loss (lower better)."""

    def run(params: dict[str, float]) -> float | None:
        cfg = AutoencoderConfig(encoder_dims=dims, init=InitConfig(scheme="glorot", scale=params["init_scale"]))
        model = build_model(cfg, seed=seed)
        problem = SupervisedProblem(model, get_loss("squared_error"), data, get_metric("reconstruction_sse"),
                                    ObjectiveConfig())
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.SGD(model.parameters(), lr=params["lr"])
        for _ in range(steps):
            index = torch.randint(data.n_train, (batch_size,), generator=generator)
            optimizer.zero_grad()
            loss = problem.objective((data.train_inputs[index], data.train_targets[index]))
            if not torch.isfinite(loss):
                return None
            loss.backward()
            optimizer.step()
        value = problem.evaluate(batch_size=2000)["train_loss"]
        return value if math.isfinite(value) else None

    return run


def search_table(profile: str, out: Path, data_dir: Path) -> str:
    from secondorder.data import load_dataset
    from secondorder.data.mnist import Mnist5kConfig, MnistConfig

    settings = PROFILES[profile]
    data = load_dataset(Mnist5kConfig() if profile == "quick" else MnistConfig(), data_dir)
    objective = sgd_objective(data, settings["dims"], settings["steps"], 200, seed=0)
    results: dict[str, list[float]] = {}
    examples = {}
    grid_points = round(math.sqrt(settings["experiments"]))
    for method in ("grid", "random", "biased"):
        best = []
        for repetition in range(settings["searches"]):
            trials = run_search(method, SPACE, objective, settings["experiments"], seed=1000 + repetition,
                                grid_points=grid_points)
            best.append(min(t.criterion for t in trials if t.criterion is not None))
            examples.setdefault(method, trials)
        results[method] = best
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True)
    for ax, method in zip(axes, ("grid", "random", "biased"), strict=True):
        trials = examples[method]
        finite = [t for t in trials if t.criterion is not None]
        values = [t.criterion for t in finite]
        scatter = ax.scatter([math.log10(t.params["lr"]) for t in finite], [t.params["init_scale"] for t in finite],
                             c=values, cmap="viridis_r", edgecolors="k", vmin=min(values), vmax=max(values))
        failed = [t for t in trials if t.criterion is None]
        ax.scatter([math.log10(t.params["lr"]) for t in failed], [t.params["init_scale"] for t in failed],
                   marker="x", color="red", label="diverged")
        ax.set_title(f"{method} search")
        ax.set_xlabel("log10 learning rate")
        ax.set_yscale("log")
    axes[0].set_ylabel("initial-weight scale")
    fig.colorbar(scatter, ax=axes, label="final training loss")
    fig.savefig(out / "figure-4.1.png", dpi=110)
    plt.close(fig)
    git = git_state()
    lines = [
        f"# George (2017) §4.1: hyperparameter search procedures — profile `{profile}`", "",
        f"Mean ± std over {settings['searches']} repetitions of the best final training loss (squared error, "
        f"summed over pixels) among {settings['experiments']} SGD runs of {settings['steps']} updates each, tuning "
        "the learning rate (log) and the initial-weight scale.",
        ("**REDUCED**: mnist_5k (stand-in, 4 000 training digits), a 784-250-30 autoencoder, "
         f"{settings['searches']} × {settings['experiments']} × {settings['steps']} instead of 100 × 100 × 100 — "
         "not comparable with the thesis's numbers." if profile == "quick" else "The thesis's setting."),
        f"Hardware: {device_name(torch.device('cpu'))}; commit {(git['git_commit'] or '?')[:10]}"
        f"{' (dirty)' if git['git_dirty'] else ''}.", "",
        "| procedure | thesis (L603–L606) | ours |", "|---|---|---|",
    ]
    for method in ("grid", "random", "biased"):
        values = results[method]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        thesis = THESIS_TABLE[method]
        lines.append(f"| {method} | {thesis[0]} ± {thesis[1]} | {statistics.mean(values):.4g} ± {spread:.2g} |")
    return "\n".join(lines) + "\n"


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
