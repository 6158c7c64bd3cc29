"""Thesis Figure 4.7 (§4.13; Martens & Sutskever 2011): HF on the pathological RNN problems against the time lag T.

One column per task. Top row: minibatches processed before success, mean over the successful trials with min /
max bars. Bottom row: the failure rate over trials (solid), and — our addition, since our budgets are shorter than
the thesis's 50 000 minibatches — the share not solved within our budget (dashed: failed + unfinished). Blue: HF
with structural damping; red: HF with adaptive Tikhonov damping only (the thesis's colours).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

COLOURS = {"structural": "tab:blue", "tikhonov": "tab:red"}
LABELS = {"structural": "structural damping", "tikhonov": "Tikhonov only"}


def per_cell(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (task, T, variant): trials, failure rate, unsolved rate, mean / min / max minibatches of the solved."""
    rows = []
    for (task, lag, variant), group in frame.groupby(["task", "T", "variant"], sort=False):
        solved = group[group.outcome == "solved"].minibatches
        rows.append({"task": task, "T": lag, "variant": variant, "trials": len(group),
                     "failure_rate": float((group.outcome == "failed").mean()),
                     "unsolved_rate": float((group.outcome != "solved").mean()),
                     "minibatches_mean": solved.mean() if len(solved) else float("nan"),
                     "minibatches_min": solved.min() if len(solved) else float("nan"),
                     "minibatches_max": solved.max() if len(solved) else float("nan")})
    return pd.DataFrame(rows)


def plot_figure_4_7(frame: pd.DataFrame, path: Path, title: str, footer: str) -> Path:
    """``frame``: one row per run with task, T, variant, outcome and minibatches (``hf_rnn.run_rows``)."""
    cells = per_cell(frame)
    tasks = list(dict.fromkeys(cells.task))
    fig, axes = plt.subplots(2, len(tasks), figsize=(max(3.2 * len(tasks), 6), 6), squeeze=False)
    for column, task in enumerate(tasks):
        top, bottom = axes[0][column], axes[1][column]
        for variant, rows in cells[cells.task == task].groupby("variant", sort=False):
            rows = rows.sort_values("T")
            colour = COLOURS.get(str(variant), "0.3")
            label = LABELS.get(str(variant), str(variant))
            solved = rows.dropna(subset=["minibatches_mean"])
            top.errorbar(solved["T"], solved.minibatches_mean,
                         yerr=[solved.minibatches_mean - solved.minibatches_min,
                               solved.minibatches_max - solved.minibatches_mean],
                         color=colour, marker="o", markersize=4, capsize=3, label=label)
            bottom.plot(rows["T"], rows.failure_rate, color=colour, marker="o", markersize=4,
                        label=f"{label}: failed")
            bottom.plot(rows["T"], rows.unsolved_rate, color=colour, marker="x", linestyle="--", markersize=4,
                        label=f"{label}: not solved in our budget")
        top.set_title(f"{task}\n(trials per point: {int(cells[cells.task == task].trials.max())})", fontsize=9)
        top.set_ylabel("minibatches before success" if column == 0 else "")
        bottom.set_ylabel("failure rate" if column == 0 else "")
        bottom.set_ylim(-0.05, 1.05)
        bottom.set_xlabel("time lag T")
        for ax in (top, bottom):
            ax.set_xticks(sorted(cells[cells.task == task]["T"].unique()))
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    axes[1][0].legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.text(0.01, 0.005, footer, fontsize=6, color="0.35", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
