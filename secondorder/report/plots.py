"""Error curves of several runs against iterations and against training wall-clock time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from secondorder.report.runs import Run

X_AXES = {"iteration": "iterations", "wall_time_s": "training time (s)", "grad_evals": "gradient evaluations"}


def provenance_line(runs: list[Run]) -> str:
    """Commit(s), device(s) and budget(s) of the plotted runs, for the figure's footer."""
    commits = sorted({(r.summary.get("provenance", {}).get("git_commit") or "unknown")[:10]
                      + ("+dirty" if r.summary.get("provenance", {}).get("git_dirty") else "") for r in runs})
    devices = sorted({r.summary.get("provenance", {}).get("device_name", "?") for r in runs})
    steps = sorted({str(r.summary.get("iteration", "?")) for r in runs})
    return f"commit {', '.join(commits)} · {'; '.join(devices)} · iterations {', '.join(steps)}"


def plot_errors(runs: list[Run], x: str, path: Path, log_y: bool = True, title: str | None = None) -> Path:
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
    ax.set_title((title + "\n" if title else "") + "; ".join(labels), fontsize=9)
    fig.text(0.01, 0.005, provenance_line(runs), fontsize=6, color="0.35", ha="left", va="bottom")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
