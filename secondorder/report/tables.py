"""Summary tables of finished runs (Markdown for reading, CSV for further work)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from secondorder.report.runs import Run


def summary_frame(runs: list[Run], relative_to: Path | None = None) -> pd.DataFrame:
    rows = []
    for run in runs:
        s = run.summary
        final, best = s.get("final", {}), s.get("best", {})
        path = run.path
        if relative_to is not None and run.path.resolve().is_relative_to(relative_to.resolve()):
            path = run.path.resolve().relative_to(relative_to.resolve())
        rows.append({
            "run": str(path),
            "dataset": s.get("dataset"),
            "data": s.get("data", {}).get("label"),
            "optimizer": s.get("optimizer"),
            "status": s.get("status"),
            "iterations": s.get("iteration"),
            "train_time_s": s.get("wall_time_s"),
            "grad_evals": s.get("costs", {}).get("grad_evals"),
            "final_train_error": final.get("train_error"),
            "final_test_error": final.get("test_error"),
            "best_train_error": best.get("train_error", {}).get("value"),
            "best_test_error": best.get("test_error", {}).get("value"),
            "device": s.get("provenance", {}).get("device_name"),
            "commit": (s.get("provenance", {}).get("git_commit") or "")[:10],
        })
    return pd.DataFrame(rows)


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency), numbers to 4 significant digits."""
    def cell(value: object) -> str:
        if isinstance(value, float):
            return "" if pd.isna(value) else f"{value:.4g}"
        return "" if value is None else str(value)

    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def grouped_frame(groups: dict) -> pd.DataFrame:
    """Per group: number of runs and mean / min / max of the final and best errors."""
    rows = []
    for label, runs in groups.items():
        frame = summary_frame(runs)
        row = {"group": label, "runs": len(runs)}
        for column in ("final_train_error", "final_test_error", "best_train_error", "train_time_s"):
            values = pd.to_numeric(frame[column], errors="coerce")
            row[f"{column}_mean"] = values.mean()
            row[f"{column}_min"] = values.min()
            row[f"{column}_max"] = values.max()
        rows.append(row)
    return pd.DataFrame(rows)
