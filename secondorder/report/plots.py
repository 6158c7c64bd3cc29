"""Error curves of several runs against iterations and against training wall-clock time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from secondorder.report.runs import Run

X_AXES = {"iteration": "iterations", "wall_time_s": "training time (s)"}


def plot_errors(runs: list[Run], x: str, path: Path, log_y: bool = True) -> Path:
    """Train (solid) and test (dashed) error of each run against ``x``; data labels go in the title."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, run in enumerate(runs):
        rows = run.evaluations
        color = f"C{i % 10}"
        ax.plot(rows[x], rows["train_error"], color=color, label=f"{run.label} train")
        ax.plot(rows[x], rows["test_error"], color=color, linestyle="--", label=f"{run.label} test")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(X_AXES[x])
    ax.set_ylabel("error")
    labels = sorted({run.summary.get("data", {}).get("label", "?") for run in runs})
    ax.set_title("; ".join(labels), fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
