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


def _group_curve(runs: list[Run], x: str, column: str, center: str = "mean"
                 ) -> tuple[list[float], list[float], list[float], list[float]]:
    """Mean (or median) and min/max of ``column`` across runs at the iterations they all evaluated; x averaged
    likewise."""
    import pandas as pd

    values, xs = [], []
    for run in runs:
        rows = run.evaluations.set_index("iteration")
        values.append(rows[column])
        xs.append(pd.Series(rows.index, index=rows.index, dtype=float) if x == "iteration" else rows[x])
    table = pd.concat(values, axis=1, join="inner")
    position = pd.concat(xs, axis=1, join="inner").loc[table.index].mean(axis=1)
    middle = table.median(axis=1) if center == "median" else table.mean(axis=1)
    return list(position), list(middle), list(table.min(axis=1)), list(table.max(axis=1))


def plot_groups(groups: dict[str, list[Run]], x: str, path: Path, log_y: bool = True,
                title: str | None = None, center: str = "mean", y_label: str | None = None,
                measure: str = "error", colors: dict[str, str] | None = None) -> Path:
    """Train (solid) and test (dashed) ``measure`` (``error``: the metric; ``loss``: the objective's data term) per
    group against ``x``, a marker at every evaluation; several runs → their mean (or, with ``center="median"``,
    median) with a min–max band. ``colors`` fixes a group's colour (others take the cycle's, in order)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    everything = [run for runs in groups.values() for run in runs]
    for i, (label, runs) in enumerate(groups.items()):
        color = (colors or {}).get(label, f"C{i % 10}")
        suffix = f" ({center} of {len(runs)})" if len(runs) > 1 else ""
        for column, style in ((f"train_{measure}", "-"), (f"test_{measure}", "--")):
            xs, middle, low, high = _group_curve(runs, x, column, center)
            ax.plot(xs, middle, color=color, linestyle=style, marker="o" if style == "-" else "s", markersize=2.5,
                    label=f"{label}{suffix} {column.split('_')[0]}")
            if len(runs) > 1:
                ax.fill_between(xs, low, high, color=color, alpha=0.15, linewidth=0)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(X_AXES[x])
    ax.set_ylabel(y_label or measure)
    labels = sorted({run.summary.get("data", {}).get("label", "?") for run in everything})
    ax.set_title((title + "\n" if title else "") + "; ".join(labels), fontsize=9)
    fig.text(0.01, 0.005, provenance_line(everything), fontsize=6, color="0.35", ha="left", va="bottom")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
