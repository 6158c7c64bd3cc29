"""scripts/faces_split_statistics.py on hand-made data: the mean-face and PCA reconstruction errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "faces_split_statistics.py"
spec = importlib.util.spec_from_file_location("faces_split_statistics", SCRIPT)
faces_split_statistics = importlib.util.module_from_spec(spec)
spec.loader.exec_module(faces_split_statistics)


def test_errors_of_the_mean_and_of_a_linear_code() -> None:
    """Rank-one data about a mean: the 1-component code rebuilds it exactly; the mean alone misses its variance;
    a test point off the line keeps its distance to it."""
    direction = torch.tensor([3.0, 4.0]) / 5.0
    train = torch.tensor([[-2.0], [0.0], [2.0]]) * direction + torch.tensor([1.0, 1.0])
    test = torch.tensor([[1.0, 1.0]]) + torch.tensor([[-4.0, 3.0]]) / 5.0  # unit distance, orthogonal
    stats = faces_split_statistics.split_statistics(train, test, components=(1,))
    assert stats["mean"] == pytest.approx((8.0 / 3.0, 1.0))
    assert stats["pca1"][0] == pytest.approx(0.0, abs=1e-12) and stats["pca1"][1] == pytest.approx(1.0)
