"""Shared fixtures: tiny problems that run in a fraction of a second on a CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from secondorder import cli

TINY = [
    "dataset.n_train=256",
    "dataset.n_test=128",
    "dataset.batch_size=32",
    "model.encoder_dims=[784,24,6]",
    "trainer.eval_batch_size=100",
    "trainer.device=cpu",
    "trainer.progress=false",
]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated-data cache for the whole session."""
    return tmp_path_factory.mktemp("data")


class TrainRunner:
    """Calls the real ``train`` entry point in-process and returns (exit code, stderr)."""

    def __init__(self, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.data_dir = data_dir
        self.capsys = capsys

    def __call__(self, *overrides: str, run_dir: Path | None = None, tiny: bool = True) -> tuple[int, str]:
        flags = [o for o in overrides if o.startswith("-")]  # Hydra wants flags before overrides
        args = [*flags, *(TINY if tiny else []), f"data_dir={self.data_dir}",
                *(o for o in overrides if not o.startswith("-"))]
        if run_dir is not None:
            args.append(f"run_dir={run_dir}")
        self.capsys.readouterr()
        try:
            cli.train(args)
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        return code, self.capsys.readouterr().err


@pytest.fixture
def train(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> TrainRunner:
    return TrainRunner(data_dir, capsys)


def read_run(run_dir: Path) -> tuple[pd.DataFrame, dict]:
    return pd.read_csv(run_dir / "metrics.csv"), json.loads((run_dir / "summary.json").read_text())


@pytest.fixture
def float64():
    """Oracle comparisons in double precision; the default dtype is restored afterwards (modules opt in with
    ``pytestmark = pytest.mark.usefixtures("float64")``)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
