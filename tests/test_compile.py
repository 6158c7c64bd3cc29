"""``trainer.compile``: a run with the model's forward compiled by ``torch.compile`` follows the eager run to float
tolerance over 20 steps (CPU, float32) — Adam through a checkpoint and resume at step 10; HF, NCG and Nesterov
(slow) straight; the methods that read layers through module hooks (K-FAC, George's) and a wrong mode are refused
in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TrainRunner, read_run

STEPS = ["trainer.max_steps=20", "trainer.eval_every=5", "trainer.log_every=1", "trainer.checkpoint_every=10"]
COLUMNS = ["loss", "train_loss", "test_loss"]


def compare(eager: Path, compiled: Path, rtol: float) -> None:
    a, _ = read_run(eager)
    b, summary = read_run(compiled)
    assert summary["status"] == "completed" and summary["compile"] == "true"
    assert a.iteration.tolist() == b.iteration.tolist()
    for column in (c for c in COLUMNS if c in a):
        np.testing.assert_allclose(b[column].to_numpy(), a[column].to_numpy(), rtol=rtol, equal_nan=True,
                                   err_msg=column)


def test_compiled_adam_run_resumed_midway_follows_the_eager_run(train: TrainRunner, tmp_path: Path) -> None:
    code, err = train("optimizer=adam", *STEPS, "trainer.compile=false", run_dir=tmp_path / "false")
    assert code == 0, err
    half = [s.replace("max_steps=20", "max_steps=10") for s in STEPS]
    code, err = train("optimizer=adam", *half, "trainer.compile=true", run_dir=tmp_path / "true")
    assert code == 0, err
    code, err = train("optimizer=adam", *STEPS, "trainer.compile=true", "trainer.resume=true",
                      run_dir=tmp_path / "true")
    assert code == 0, err
    compare(tmp_path / "false", tmp_path / "true", 1e-4)


@pytest.mark.parametrize(("method", "rtol"), [
    pytest.param("hf", 1e-3, marks=pytest.mark.slow),
    pytest.param("ncg", 1e-3, marks=pytest.mark.slow),
    pytest.param("nesterov", 1e-4, marks=pytest.mark.slow),
])
def test_compiled_run_follows_the_eager_run(train: TrainRunner, tmp_path: Path, method: str, rtol: float) -> None:
    for mode in ("false", "true"):
        code, err = train(f"optimizer={method}", *STEPS, f"trainer.compile={mode}", run_dir=tmp_path / mode)
        assert code == 0, err
    compare(tmp_path / "false", tmp_path / "true", rtol)


@pytest.mark.parametrize(("override", "says"), [
    ("trainer.compile=fastest", "reduce-overhead"),
    ("optimizer=kfac", "module hooks"),
    ("optimizer=centered_sgd", "module hooks"),
])
def test_what_cannot_be_compiled_is_refused_in_one_line(train: TrainRunner, tmp_path: Path, override: str,
                                                        says: str) -> None:
    code, err = train("optimizer=adam", "trainer.compile=true", override, run_dir=tmp_path / "run")
    assert code != 0
    assert "trainer.compile" in err and says in err and len(err.strip().splitlines()) == 1, err
