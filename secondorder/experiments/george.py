"""``make reproduce-george``: George (2017) — the hyperparameter-search comparison of §4.1 (Table, Figure 4.1)
and the method comparisons of §6.6 (Figures 6.1 / 6.2) on the MNIST autoencoder with the squared-error loss.

Part A (thesis §4.1, the table under Figure 4.1): grid vs random vs biased random search, each a search of
``experiments`` SGD runs of ``steps`` updates tuning the learning rate (log scale) and the initial-weight scale;
repeated ``searches`` times; reported as the mean and standard deviation over repetitions of the best final training
loss found (the thesis: 100 × 100 × 100, giving 27.23 ± 0.42, 27.02 ± 0.28, 26.61 ± 0.13). Figure 4.1: the points
each procedure evaluated, coloured by their loss — :mod:`.search_protocol`, each experiment an in-process trainer
run.

Part B (Figs 6.1 / 6.2): SGD, centred SGD, ACP, ACP with fixed α and K-FAC on the same problem, error vs time —
the cells of ``conf/reproduce/george.yaml``, run and reported by the generic runner; this module is its hooks.
In the thesis each method is tuned by biased random search: in the profiles the spec's ``tuning`` names,
:func:`~secondorder.experiments.tuning.tune` first runs a ``sweep`` (``conf/search/george_lr.yaml``, learning
rate) per listed method on the tuning budget and then runs each at its best rate, labelled ``<method>_tuned``;
K-FAC adapts its own damping and step and is not tuned [choice]. The quick profile runs them at their config defaults,
labelled untuned. The CIFAR-10 benchmark (§4.3) is in the full profile only.
"""

from __future__ import annotations

from secondorder.experiments import george_verdicts
from secondorder.experiments.hooks import Context, Hooks
from secondorder.experiments.runner import Cell
from secondorder.experiments.search_protocol import search_table
from secondorder.experiments.tuning import tune
from secondorder.report.plots import plot_groups
from secondorder.report.runs import Run

__all__ = ["FIGURES", "HOOKS", "search_table", "tune"]

# Figures 6.1 and 6.2 (§6.6): the methods each plots (the final version adds ACP with fixed α to Fig. 6.1) and one
# colour per method across both; the thesis's caption names two (batch norm purple, standard SGD brown).
FIGURES = {
    "figure-6.1": ("Fig. 6.1: centring tricks", ("sgd", "mean_only_bn", "centered_sgd", "acp_fixed_alpha")),
    "figure-6.2": ("Fig. 6.2: approximate second-order methods",
                   ("acp", "acp_fixed_alpha", "nnn", "kfac", "bn", "sgd")),
}
COLORS = {"sgd": "tab:brown", "bn": "tab:purple", "mean_only_bn": "tab:pink", "centered_sgd": "tab:olive",
          "acp": "tab:blue", "acp_fixed_alpha": "tab:orange", "nnn": "tab:cyan", "kfac": "tab:red"}


def prepare(context: Context, cells: list[Cell]) -> list[Cell]:
    """§4.1's search table and Figure 4.1 (``search.md``, ``search.csv``, ``figure-4.1.png``; resumable from
    ``<runs>/search-history.jsonl``), then :func:`tune`."""
    context.out.mkdir(parents=True, exist_ok=True)
    text = search_table(context.profile.name, context.out, context.data_dir,
                        context.runs_root / "search-history.jsonl")
    (context.out / "search.md").write_text(text)
    print(text)
    return tune(context, cells)


def report(context: Context, cells: list[Cell], found: dict[str, list[Run]]) -> list[str]:
    """Figures 6.1 and 6.2 as two figures on MNIST (``figure-6.x_error_vs_{time,iteration}.png``), the x-axis the
    thesis's (time) and iterations; the §4.1 table (``search.md``)."""
    curves = george_verdicts.method_runs(cells, found)
    lines = ["## George §4.1 and Figures 6.1 / 6.2", ""]
    if (context.out / "search.md").exists():
        lines += ["§4.1 search procedures: `search.md`, `figure-4.1.png` (every repetition: `search.csv`).", ""]
    for name, (title, methods) in FIGURES.items():
        groups = {m: [curves[m]] for m in methods if m in curves}
        if not groups:
            continue
        files = []
        for x, suffix in (("wall_time_s", "time"), ("iteration", "iteration")):
            path = context.out / f"{name}_error_vs_{suffix}.png"
            plot_groups(groups, x, path, title=f"{title} — MNIST autoencoder ({context.profile.name})",
                        y_label="‖f(x) − x‖² per case (George's scale)", colors=COLORS)
            files.append(f"`{path.name}`")
        absent = [m for m in methods if m not in curves]
        lines.append(f"- {title}: {', '.join(files)}" + (f" (no run: {', '.join(absent)})" if absent else ""))
    return [*lines, ""]


HOOKS = Hooks(prepare=prepare, report=report, verdicts=george_verdicts.verdicts)
