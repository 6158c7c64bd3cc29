"""``make reproduce-george``: George (2017) — the hyperparameter-search comparison of §4.1 (Table, Figure 4.1)
and the method comparisons of §6.6 (Figures 6.1 / 6.2) on the MNIST autoencoder with the squared-error loss.

Part A (Table §4.1, L603–L606): grid vs random vs biased random search, each a search of ``experiments`` SGD
runs of ``steps`` updates tuning the learning rate (log scale) and the initial-weight scale; repeated ``searches``
times; reported as the mean and standard deviation over repetitions of the best final training loss found
(the thesis: 100 × 100 × 100, giving 27.23 ± 0.42, 27.02 ± 0.28, 26.61 ± 0.13). Figure 4.1: the points each
procedure evaluated, coloured by their loss. Each experiment runs in-process (no subprocess per trial).

Part B (Figs 6.1 / 6.2): SGD, centred SGD, ACP, ACP with fixed α and K-FAC on the same problem, error vs time —
the cells of ``conf/reproduce/george.yaml``, run and reported by the generic runner; this module is its hooks.
In the thesis each method is tuned by biased random search: in the profiles the spec's ``tuning`` names (full),
:func:`tune` first runs a ``sweep`` of ``tuning.trials`` trials (``conf/search/george_lr.yaml``, learning rate)
per listed method on the tuning budget and then runs each at its best rate, labelled ``<method>_tuned``; K-FAC
adapts its own damping and step and is not tuned [choice]. The quick profile runs them at their config defaults,
labelled untuned. The CIFAR-10 benchmark (§4.3) is in the full profile only.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from secondorder import sweep
from secondorder.errors import UserError
from secondorder.experiments.expansion import merge, render
from secondorder.experiments.hooks import Context, Hooks
from secondorder.experiments.runner import Cell
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


def tune(context: Context, cells: list[Cell], trials: int | None = None) -> list[Cell]:
    """Biased random search over each listed method's learning rate on every problem (the spec's ``tuning``:
    search space, budget per trial, trials); returns the cells with those methods at their best rates, labelled
    ``<method>_tuned``. Other profiles and methods pass through. Each sweep resumes from its history."""
    tuning = context.spec.tuning
    if tuning is None or context.profile.name not in tuning.profiles:
        return cells
    trials = tuning.trials if trials is None else trials
    if trials <= 0:
        return cells
    out = []
    for cell in cells:
        method = cell.labels["method"]
        if method not in tuning.methods:
            out.append(cell)
            continue
        folder = context.runs_root / "tuning" / cell.name
        sweep.main([f"search={tuning.search}", *merge([*cell.overrides, *tuning.budget]), "--trials", str(trials),
                    "--dir", str(folder)])
        finished = [t for t in sweep.read_history(folder / "history.jsonl") if t.criterion is not None]
        if not finished:
            raise UserError(f"tuning {cell.name}: no trial finished; see {folder}")
        best = min(finished, key=lambda t: t.criterion)
        labels = {**cell.labels, "method": f"{method}_tuned"}
        name = render(context.spec.cell, labels)
        overrides = merge([*cell.overrides, *(f"{k}={v}" for k, v in best.params.items())])
        out.append(Cell(name, overrides, context.runs_root / name, labels, cell.seeds))
    return out


def prepare(context: Context, cells: list[Cell]) -> list[Cell]:
    """§4.1's search table and Figure 4.1 (``search.md``, ``figure-4.1.png``), then :func:`tune`."""
    (context.out / "search.md").write_text(search_table(context.profile.name, context.out, context.data_dir))
    print((context.out / "search.md").read_text())
    return tune(context, cells)


HOOKS = Hooks(prepare=prepare)
