"""The CURVES scripts: the generalisation criteria and report (scripts/curves_report.py), the smoothness probe
(scripts/curves_smoothness.py), on hand-made data."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "curves_report.py"
spec = importlib.util.spec_from_file_location("curves_report", SCRIPT)
curves_report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(curves_report)


def table(train: list[float], test: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"iteration": [50 * i for i in range(len(train))], "train_error": train, "test_error": test})


def test_a_run_that_generalises_meets_both_criteria() -> None:
    c = curves_report.criteria(table([16.9, 4.0, 1.0, 0.2], [17.0, 4.1, 1.1, 0.3]))
    assert c["test_within_bound"] and c["rise_within_20_percent"]
    assert c["test_bound"] == pytest.approx(0.5) and c["train_fall"] == pytest.approx(84.5)


def test_overfitting_fails_both_criteria() -> None:
    """The v1 run: training error 1.86, test 25.4, test rising from 14.3."""
    c = curves_report.criteria(table([26.0, 10.0, 4.0, 1.86], [26.2, 14.3, 18.0, 25.4]))
    assert not c["test_within_bound"] and not c["rise_within_20_percent"]
    assert c["largest_rise"] == pytest.approx(25.4 / 14.3 - 1)


def test_the_report_names_the_runs_generator_version_and_appends_the_notes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("dataset:\n  name: curves\n  version: 3\n")
    (run / "summary.json").write_text('{"status": "completed", "data": {"label": "CURVES re-creation v3"}}')
    table([16.9, 4.0, 1.0, 0.2], [17.0, 4.1, 1.1, 0.3]).to_csv(run / "metrics.csv", index=False)
    (tmp_path / "notes.md").write_text("**Verdict: generalises.**\n")
    text = curves_report.report(run, tmp_path / "out", notes=tmp_path / "notes.md")
    assert text.startswith("# CURVES re-creation v3") and text.rstrip().endswith("**Verdict: generalises.**")
    assert "| test ≤ 2 × train + 0.1 at the last evaluation | test 0.3, bound 0.5 (train 0.2) | met |" in text
    assert (tmp_path / "out" / "error_vs_iteration.png").stat().st_size > 0
    assert (tmp_path / "out" / "run" / "metrics.csv").exists()
    again = curves_report.report(tmp_path / "out" / "run", tmp_path / "out", notes=tmp_path / "notes.md")
    assert again == text  # re-made from its committed record, in place


SMOOTHNESS = Path(__file__).resolve().parents[1] / "scripts" / "curves_smoothness.py"
smoothness_spec = importlib.util.spec_from_file_location("curves_smoothness", SMOOTHNESS)
curves_smoothness = importlib.util.module_from_spec(smoothness_spec)
smoothness_spec.loader.exec_module(curves_smoothness)


def test_local_linear_reconstruction_is_exact_on_a_flat_manifold_and_not_on_a_curved_one() -> None:
    """Points of a 2-D affine plane in R¹⁰ are affine combinations of three neighbours (error ≈ 0); points of a
    curved surface are not, and the nearest-neighbour error is the squared distance to the closest point."""
    generator = torch.Generator().manual_seed(0)
    basis, offset = torch.randn(2, 10, generator=generator), torch.randn(10, generator=generator)
    plane = lambda u: u @ basis + offset  # noqa: E731
    train_u, test_u = torch.rand(400, 2, generator=generator), 0.2 + 0.6 * torch.rand(20, 2, generator=generator)
    flat = curves_smoothness.local_linear_errors(plane(train_u), plane(test_u), k=3, regulariser=1e-9)
    assert flat["local_linear"] < 1e-8 < flat["nearest"]
    bend = lambda u: torch.cat([u, torch.sin(6 * u).prod(dim=1, keepdim=True)], dim=1)  # noqa: E731
    curved = curves_smoothness.local_linear_errors(bend(train_u), bend(test_u), k=3, regulariser=1e-9)
    assert curved["local_linear"] > 1e-6
    one = curves_smoothness.local_linear_errors(torch.tensor([[0.0, 0.0], [3.0, 4.0]]), torch.tensor([[0.0, 1.0]]), k=1)
    assert one["nearest"] == pytest.approx(1.0) and one["local_linear"] == pytest.approx(1.0)
