"""George (2017), §4.1: grid vs random vs biased random search (the table under Fig. 4.1, and Fig. 4.1 itself).

Each procedure (:func:`secondorder.search.run_search`; biased random search is the thesis's Algorithm 1) runs
``experiments`` trials; a trial is one ordinary trainer run (:mod:`secondorder.train`): plain SGD
(``optimizer=sgd``, mini-batches of 200) for ``steps`` updates on the MNIST autoencoder with the squared-error
loss, from Glorot-uniform initial weights times ``init_scale``, at learning rate ``lr``; its criterion is the final
full-training-set loss of the run's summary (lower is better; a diverged run counts as failed). The procedure is
repeated ``searches`` times and the table reports the mean ± standard deviation over repetitions of the best
criterion found — the thesis: 100 searches × 100 experiments × 100 SGD steps, giving 27.23 ± 0.42 (grid),
27.02 ± 0.28 (random), 26.61 ± 0.13 (biased). Fig. 4.1: the points each procedure evaluated (its first
repetition), coloured by their criterion.

Choices the thesis leaves open: the two hyperparameters' ranges (``SPACE``), the mini-batch size (200), "the
variance of the initial random weights" read as a scale on Glorot's range, and the trainer's batch order (an epoch
sampler: without replacement, reshuffled each pass). Each trial draws its own initialisation and batch-order seed
(:func:`trial_seed`: trial k of repetition r, the same numbers for the three procedures — common random numbers,
so the procedures differ only in where they look); the thesis's grid row has a spread (± 0.42), which only such
seeds give. The criterion is our loss ½‖f(x) − x‖² summed over pixels and averaged over cases; George's scale is
‖f(x) − x‖² (§4.1: his curves start near 2–3 × 10²), so the table prints both. Trial run directories are
temporary: only the criterion is kept — in ``search-history.jsonl`` (one line per finished procedure × repetition,
with the trials of repetition 0 for Fig. 4.1), from which an interrupted search resumes; ``search.csv`` beside the
report lists every repetition's best.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from secondorder.composition import compose_config, path_override
from secondorder.errors import RunDiverged
from secondorder.experiments.measurements import load_measurement
from secondorder.report.references import references
from secondorder.run_record import device_name, git_state
from secondorder.search import Dimension, Trial, run_search
from secondorder.train import run_training

SETTINGS = load_measurement("george-search")  # conf/measure/george-search.yaml
THESIS_TABLE = {name: (row["mean"], row["std"]) for name, row in references()["george_search"]["rows"].items()}
SPACE = [Dimension(key, float(d["low"]), float(d["high"]), bool(d.get("log", False)))
         for key, d in SETTINGS["space"].items()]
PROFILES: dict[str, dict] = SETTINGS["profiles"]
BATCH_SIZE = int(next(o.split("=", 1)[1] for o in SETTINGS["trial"] if o.startswith("optimizer.batch_size=")))
PROCEDURES = ("grid", "random", "biased")


GEORGE_SCALE = 2.0  # George reports ‖·‖²; our squared-error loss is ½‖·‖²


def trial_seed(repetition: int, index: int) -> int:
    """The initialisation and batch-order seed of trial ``index`` in repetition ``repetition`` (any procedure)."""
    return 100_000 + 1_000 * repetition + index


def trial_overrides(profile: str, params: dict[str, float], data_dir: Path, run_dir: Path,
                    seed: int = 0) -> list[str]:
    """The ``train`` overrides of one trial: SGD at ``params["lr"]`` from Glorot weights × ``params["init_scale"]``,
    initialised and shuffled by ``seed``."""
    settings = PROFILES[profile]
    steps, dims = settings["steps"], ",".join(str(d) for d in settings["dims"])
    budget = {"max_steps": steps, "max_time_s": None, "max_epochs": None, "eval_every": steps, "log_every": steps}
    return [*settings["data"], *SETTINGS["trial"], f"model.encoder_dims=[{dims}]",
            *(f"{key}={value!r}" for key, value in hyperparameters(params).items()),
            *(f"trainer.{key}={'null' if value is None else value}" for key, value in budget.items()),
            f"seed={seed}", path_override("data_dir", data_dir), path_override("run_dir", run_dir)]


def hyperparameters(params: dict[str, float]) -> dict[str, float]:
    """A trial's searched values under their config keys."""
    return {"model.init.scale": params["init_scale"], "optimizer.lr": params["lr"]}


def sgd_objective(profile: str, data_dir: Path, runs: Path,
                  repetition: int = 0) -> Callable[[dict[str, float]], float | None]:
    """The search objective of one repetition: call k is trial k, one trainer run seeded by
    :func:`trial_seed` in a fresh directory under ``runs`` (removed afterwards); returns the run's final training
    loss, or ``None`` when it diverged."""
    numbers = itertools.count()

    def run(params: dict[str, float]) -> float | None:
        index = next(numbers)
        run_dir = runs / f"r{repetition}-trial-{index}"
        config, resolved = compose_config(trial_overrides(profile, params, data_dir, run_dir,
                                                          trial_seed(repetition, index)))
        try:
            summary = run_training(config, Path(resolved["run_dir"]), resolved)
        except RunDiverged:
            return None
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        return summary["final"].get("train_loss")  # None when non-finite

    return run


def _finished(history: Path | None, settings: dict) -> dict[tuple[str, int], dict]:
    """The (procedure, repetition) entries already in ``history`` for these settings (a torn last line is
    ignored: that repetition runs again)."""
    done: dict[tuple[str, int], dict] = {}
    if history is None or not history.exists():
        return done
    for line in history.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("settings") == settings:
            done[(entry["procedure"], entry["repetition"])] = entry
    return done


def run_procedures(profile: str, data_dir: Path, history: Path | None = None
                   ) -> tuple[dict[str, list[float]], dict[str, list[Trial]]]:
    """Per procedure: the best criterion of each repetition, and the trials of the first repetition. With
    ``history`` each finished repetition is appended there and skipped when the search runs again."""
    settings = PROFILES[profile]
    done = _finished(history, settings)
    best: dict[str, list[float]] = {}
    examples: dict[str, list[Trial]] = {}
    grid_points = round(math.sqrt(settings["experiments"]))
    with tempfile.TemporaryDirectory(prefix="george-search-") as runs:
        for method in PROCEDURES:
            best[method] = []
            for repetition in range(settings["searches"]):
                entry = done.get((method, repetition))
                if entry is None:
                    objective = sgd_objective(profile, data_dir, Path(runs), repetition)
                    trials = run_search(method, SPACE, objective, settings["experiments"], seed=1000 + repetition,
                                        grid_points=grid_points)
                    entry = {"settings": settings, "procedure": method, "repetition": repetition,
                             "best": min(t.criterion for t in trials if t.criterion is not None),
                             "trials": [{"params": t.params, "criterion": t.criterion} for t in trials]
                             if repetition == 0 else []}
                    if history is not None:
                        history.parent.mkdir(parents=True, exist_ok=True)
                        with history.open("a") as handle:
                            handle.write(json.dumps(entry) + "\n")
                best[method].append(entry["best"])
                if repetition == 0:
                    examples[method] = [Trial(i, t["params"], t["criterion"]) for i, t in enumerate(entry["trials"])]
    return best, examples


def plot_trials(examples: dict[str, list[Trial]], path: Path) -> None:
    """Fig. 4.1: each procedure's evaluated points (log learning rate, initial-weight scale) by final loss."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True)
    every = [t.criterion for method in PROCEDURES for t in examples[method] if t.criterion is not None]
    low, high = min(every), max(every)  # one colour scale for the three panels; viridis: dark = low = best (Fig. 4.1)
    for ax, method in zip(axes, PROCEDURES, strict=True):
        trials = examples[method]
        finite = [t for t in trials if t.criterion is not None]
        values = [t.criterion for t in finite]
        scatter = ax.scatter([math.log10(t.params["lr"]) for t in finite], [t.params["init_scale"] for t in finite],
                             c=values, cmap="viridis", edgecolors="k", vmin=low, vmax=high)
        failed = [t for t in trials if t.criterion is None]
        ax.scatter([math.log10(t.params["lr"]) for t in failed], [t.params["init_scale"] for t in failed],
                   marker="x", color="red", label="diverged")
        ax.set_title(f"{method} search")
        ax.set_xlabel("log10 learning rate")
        ax.set_yscale("log")
    axes[0].set_ylabel("initial-weight scale")
    fig.colorbar(scatter, ax=axes, label="final training loss ½‖f(x) − x‖² (dark = best)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def search_table(profile: str, out: Path, data_dir: Path, history: Path | None = None) -> str:
    """Run the three procedures (resuming from ``history``), write ``out/figure-4.1.png`` and ``out/search.csv``
    (every repetition's best) and return the ``search.md`` text."""
    settings = PROFILES[profile]
    results, examples = run_procedures(profile, data_dir, history)
    plot_trials(examples, out / "figure-4.1.png")
    rows = ["procedure,repetition,best_loss"] + [f"{method},{r},{value!r}" for method in PROCEDURES
                                                 for r, value in enumerate(results[method])]
    (out / "search.csv").write_text("\n".join(rows) + "\n")
    git = git_state(ignore=("results",))  # the reports this very command rewrites do not make the code dirty
    lines = [
        f"# George (2017) §4.1: hyperparameter search procedures — profile `{profile}`", "",
        f"Mean ± std over {settings['searches']} repetitions of the best final training loss (squared error, "
        f"summed over pixels) among {settings['experiments']} SGD runs of {settings['steps']} updates each "
        f"(mini-batches of {BATCH_SIZE}, each a trainer run), tuning the learning rate (log) and the "
        "initial-weight scale.",
        settings.get("note", "The thesis's setting."),
        f"Hardware: {device_name(torch.device('cpu'))}; commit {(git['git_commit'] or '?')[:10]}"
        f"{' (dirty)' if git['git_dirty'] else ''}.", "",
        "Ours on two scales: our loss ½‖f(x) − x‖², and ×2 = ‖f(x) − x‖², the scale of George's numbers. Each trial "
        "has its own initialisation and batch-order seed (shared across the three procedures).", "",
        "| procedure | thesis (§4.1), ‖·‖² | ours, ‖·‖² | ours, ½‖·‖² |", "|---|---|---|---|",
    ]
    for method in PROCEDURES:
        values = results[method]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        thesis, mean = THESIS_TABLE[method], statistics.mean(values)
        lines.append(f"| {method} | {thesis[0]} ± {thesis[1]} | {GEORGE_SCALE * mean:.4g} ± "
                     f"{GEORGE_SCALE * spread:.2g} | {mean:.4g} ± {spread:.2g} |")
    return "\n".join(lines) + "\n"


__all__ = ["PROFILES", "SPACE", "THESIS_TABLE", "search_table", "sgd_objective", "trial_overrides", "trial_seed"]
