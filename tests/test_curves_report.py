"""The CURVES v2 generalisation criteria (scripts/curves_v2_report.py) on hand-made evaluation tables."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "curves_v2_report.py"
spec = importlib.util.spec_from_file_location("curves_v2_report", SCRIPT)
curves_v2_report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(curves_v2_report)


def table(train: list[float], test: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"iteration": [50 * i for i in range(len(train))], "train_error": train, "test_error": test})


def test_a_run_that_generalises_meets_both_criteria() -> None:
    c = curves_v2_report.criteria(table([16.9, 4.0, 1.0, 0.2], [17.0, 4.1, 1.1, 0.3]))
    assert c["test_within_bound"] and c["rise_within_20_percent"]
    assert c["test_bound"] == pytest.approx(0.5) and c["train_fall"] == pytest.approx(84.5)


def test_overfitting_fails_both_criteria() -> None:
    """The v1 run: training error 1.86, test 25.4, test rising from 14.3."""
    c = curves_v2_report.criteria(table([26.0, 10.0, 4.0, 1.86], [26.2, 14.3, 18.0, 25.4]))
    assert not c["test_within_bound"] and not c["rise_within_20_percent"]
    assert c["largest_rise"] == pytest.approx(25.4 / 14.3 - 1)
