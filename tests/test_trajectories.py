"""Refactors keep behaviour: fixed-seed runs of every second-order method (and Adam) reproduce the metrics
recorded in ``tests/golden/`` (all columns but wall time), to float64 rounding."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from secondorder import cli
from tests.trajectories import GOLDEN_DIR, REFERENCE_RUNS, largest_difference, run_reference


@pytest.mark.parametrize("name", sorted(REFERENCE_RUNS))
def test_fixed_seed_run_matches_its_recorded_trajectory(name: str, tmp_path: Path, data_dir: Path) -> None:
    golden = pd.read_csv(GOLDEN_DIR / f"{name}.csv")
    current = run_reference(name, tmp_path, data_dir, cli.train)
    assert list(current.columns) == list(golden.columns)
    assert len(current) == len(golden)
    assert largest_difference(golden, current) <= 1e-9


def test_the_comparison_can_fail() -> None:
    frame = pd.DataFrame({"loss": [1.0, 2.0], "rho": [float("nan"), 0.5]})
    assert largest_difference(frame, frame.copy()) == 0.0
    changed = frame.copy()
    changed.loc[1, "loss"] = 2.0 + 1e-6
    assert largest_difference(frame, changed) == pytest.approx(5e-7, rel=1e-3)
    assert largest_difference(frame, frame[["loss"]]) == float("inf")
