"""The trainer through the real ``train`` entry point: run-directory contract, budgets, resume, divergence."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest
import torch

from secondorder.optim.first_order import Adam
from secondorder.run_record import BASE_COLUMNS
from tests.conftest import read_run

TIMING_COLUMNS = ["wall_time_s"]


def test_run_writes_the_run_directory_contract(train, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    code, err = train("trainer.max_steps=30", "trainer.eval_every=10", "trainer.log_every=5", run_dir=run_dir)
    assert code == 0, err
    assert {"config.yaml", "metrics.csv", "summary.json", "checkpoint.pt"} <= {p.name for p in run_dir.iterdir()}
    metrics, summary = read_run(run_dir)
    assert list(metrics.columns) == [*BASE_COLUMNS, "lr"]
    assert metrics.iteration.tolist() == [0, 5, 10, 15, 20, 25, 30]
    evaluated = metrics.dropna(subset=["train_error"])
    assert evaluated.iteration.tolist() == [0, 10, 20, 30]
    assert evaluated.test_error.notna().all()
    assert metrics.grad_evals.tolist() == metrics.iteration.tolist()
    assert metrics.examples_seen.iloc[-1] == 30 * 32
    assert evaluated.train_error.iloc[-1] < evaluated.train_error.iloc[0]  # Adam makes progress
    assert summary["status"] == "completed" and summary["iteration"] == 30
    assert summary["final"]["train_error"] == pytest.approx(evaluated.train_error.iloc[-1])
    assert summary["best"]["train_error"]["value"] == pytest.approx(evaluated.train_error.min())
    assert summary["data"]["stand_in"] is True and "re-creation" in summary["data"]["label"]
    for key in ("git_commit", "torch", "device_name", "command"):
        assert key in summary["provenance"]
    config = (run_dir / "config.yaml").read_text()
    assert "max_steps: 30" in config and f"run_dir: {run_dir}" in config


def test_training_error_is_the_per_case_sum_of_squared_pixel_errors(train, tmp_path: Path) -> None:
    """Recompute the logged initial error from the data and the initial model."""
    from hydra import compose, initialize_config_dir

    from secondorder.composition import CONF_DIR
    from secondorder.config import validate
    from secondorder.data import load_dataset
    from secondorder.models import build_model
    from tests.conftest import TINY

    code, err = train("trainer.max_steps=1", run_dir=tmp_path / "r")
    assert code == 0, err
    metrics, _ = read_run(tmp_path / "r")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        run = validate(compose(config_name="config", overrides=TINY))
    data = load_dataset(run.dataset, train.data_dir)
    model = build_model(run.model, seed=0)
    with torch.no_grad():
        error = (torch.sigmoid(model(data.test_inputs)) - data.test_inputs).pow(2).sum(1).mean()
    assert metrics.test_error.iloc[0] == pytest.approx(float(error), rel=1e-6)


def _interrupt_at(monkeypatch: pytest.MonkeyPatch, iteration: int) -> None:
    """Deliver a real SIGTERM to this process during step ``iteration``."""
    original = Adam.step

    def step(self, k, sampler):
        if k == iteration:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, k, sampler)

    monkeypatch.setattr(Adam, "step", step)


def test_sigterm_checkpoints_and_resume_reproduces_an_uninterrupted_run(
    train, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    common = ("trainer.max_steps=40", "trainer.eval_every=10", "trainer.log_every=4", "trainer.checkpoint_every=8")
    code, err = train(*common, run_dir=tmp_path / "straight")
    assert code == 0, err

    with monkeypatch.context() as patch:
        _interrupt_at(patch, 13)
        code, err = train(*common, run_dir=tmp_path / "split")
    assert code == 128 + signal.SIGTERM
    assert err.count("\n") == 1 and "interrupted by SIGTERM at iteration 14" in err
    metrics, summary = read_run(tmp_path / "split")
    assert summary["status"] == "interrupted" and summary["iteration"] == 14
    assert metrics.iteration.max() <= 14

    code, err = train(*common, "trainer.resume=true", run_dir=tmp_path / "split")
    assert code == 0, err
    straight, _ = read_run(tmp_path / "straight")
    resumed, summary = read_run(tmp_path / "split")
    assert summary["status"] == "completed"
    pd.testing.assert_frame_equal(straight.drop(columns=TIMING_COLUMNS), resumed.drop(columns=TIMING_COLUMNS))
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_can_extend_the_budget(train, tmp_path: Path) -> None:
    code, _ = train("trainer.max_steps=10", run_dir=tmp_path / "r")
    assert code == 0
    code, err = train("trainer.max_steps=20", "trainer.resume=true", run_dir=tmp_path / "r")
    assert code == 0, err
    metrics, summary = read_run(tmp_path / "r")
    assert summary["iteration"] == 20 and metrics.iteration.max() == 20


def test_an_existing_run_is_never_overwritten(train, tmp_path: Path) -> None:
    code, _ = train("trainer.max_steps=3", run_dir=tmp_path / "r")
    before = (tmp_path / "r" / "metrics.csv").read_text()
    code, err = train("trainer.max_steps=3", run_dir=tmp_path / "r")
    assert code == 2 and "already holds a run; pass trainer.resume=true" in err
    assert (tmp_path / "r" / "metrics.csv").read_text() == before


def test_resume_errors(train, tmp_path: Path) -> None:
    code, err = train("trainer.max_steps=3", "trainer.resume=true", run_dir=tmp_path / "empty")
    assert code == 2 and "has no checkpoint.pt" in err
    train("trainer.max_steps=3", run_dir=tmp_path / "r")
    code, err = train("trainer.max_steps=6", "trainer.resume=true", "optimizer.lr=0.5", run_dir=tmp_path / "r")
    assert code == 2 and "config differs in optimizer.lr (0.001 in the run, 0.5 now)" in err


def test_resume_auto_starts_fresh_or_continues(train, tmp_path: Path) -> None:
    code, _ = train("trainer.max_steps=4", "trainer.resume=auto", run_dir=tmp_path / "r")
    assert code == 0
    code, _ = train("trainer.max_steps=8", "trainer.resume=auto", run_dir=tmp_path / "r")
    assert code == 0 and read_run(tmp_path / "r")[1]["iteration"] == 8


def test_divergence_stops_with_status_and_keeps_metrics_and_checkpoint(train, tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    code, err = train(
        "optimizer=sgd", "optimizer.lr=1e4", "dataset.loss=squared_error",
        "trainer.max_steps=200", "trainer.checkpoint_every=1", "trainer.log_every=1",
        "trainer.divergence_factor=null", run_dir=run_dir,  # the NaN/Inf path (finite blow-ups: test_faults.py)
    )
    assert code == 3
    assert err.count("\n") == 1 and "run diverged at iteration" in err
    metrics, summary = read_run(run_dir)
    assert summary["status"] == "diverged"
    assert not torch.isfinite(torch.tensor(metrics.loss.iloc[-1]))
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert checkpoint["iteration"] < summary["iteration"]
    assert all(torch.isfinite(t).all() for t in checkpoint["model"].values())


@pytest.mark.parametrize(
    ("budget", "expected_iterations"),
    [("trainer.max_epochs=1", 8), ("trainer.max_epochs=0.5", 4)],  # 256 cases / batch 32 = 8 per epoch
)
def test_epoch_budget(train, tmp_path: Path, budget: str, expected_iterations: int) -> None:
    code, _ = train("trainer.max_steps=null", budget, run_dir=tmp_path / "r")
    assert code == 0 and read_run(tmp_path / "r")[1]["iteration"] == expected_iterations


def test_time_budget_stops_the_run(train, tmp_path: Path) -> None:
    code, _ = train("trainer.max_steps=null", "trainer.max_time_s=0.3", run_dir=tmp_path / "r")
    summary = read_run(tmp_path / "r")[1]
    assert code == 0 and summary["status"] == "completed" and 0.3 <= summary["wall_time_s"] < 5


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam"])
def test_every_optimizer_runs_end_to_end(train, tmp_path: Path, optimizer: str) -> None:
    code, err = train(f"optimizer={optimizer}", "trainer.max_steps=5", run_dir=tmp_path / optimizer)
    assert code == 0, err
    assert read_run(tmp_path / optimizer)[1]["optimizer"] == optimizer


def test_multirun_compares_optimizers(train, tmp_path: Path) -> None:
    code, err = train("-m", "optimizer=sgd,adam", "trainer.max_steps=3", f"out_root={tmp_path}")
    assert code == 0, err
    summaries = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("multirun/*/*/summary.json"))]
    assert sorted(s["optimizer"] for s in summaries) == ["adam", "sgd"]
    assert all(s["status"] == "completed" for s in summaries)


def test_float64_runs(train, tmp_path: Path) -> None:
    code, err = train("trainer.dtype=float64", "trainer.max_steps=2", run_dir=tmp_path / "r")
    assert code == 0, err


@pytest.fixture(scope="module")
def dataset_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data_dir holding MNIST and CIFAR-10 in their real formats, and a small FACES .mat file."""
    import numpy as np
    import scipy.io

    from tests.data_files import write_cifar, write_mnist

    root = tmp_path_factory.mktemp("datasets")
    write_mnist(root, np.random.default_rng(0))
    write_cifar(root / "cifar-10-batches-py", np.random.default_rng(1))
    faces = np.random.default_rng(2).random((625, 80)).astype(np.float32)
    scipy.io.savemat(root / "newfaces_rot_single.mat", {"newfaces_single": faces})
    return root


OFFLINE_DATASETS = ["curves", "mnist_5k", "mnist_5k_class", "faces_lfw"]


@pytest.mark.parametrize(
    "dataset",
    ["curves", "mnist", "mnist_class", "mnist_5k", "mnist_5k_class", "faces", "faces_lfw", "cifar10"],
)
def test_one_step_on_every_image_dataset(train, tmp_path: Path, dataset_files: Path, dataset: str) -> None:
    """Each dataset with its paper's model: compose, load, one optimiser step, evaluate."""
    overrides = [f"dataset={dataset}", "trainer.max_steps=1", "trainer.progress=false", "trainer.device=cpu",
                 "dataset.batch_size=8"]
    if dataset == "curves":
        overrides += ["dataset.n_train=64", "dataset.n_test=32"]
    if dataset.startswith("faces"):
        overrides += ["dataset.variants_per_image=2"]
    if dataset == "faces":
        overrides += [f"dataset.path={dataset_files / 'newfaces_rot_single.mat'}"]
    if dataset not in OFFLINE_DATASETS:
        overrides += [f"data_dir={dataset_files}"]
    code, err = train(*overrides, run_dir=tmp_path / dataset, tiny=False)
    assert code == 0, err
    metrics, summary = read_run(tmp_path / dataset)
    assert summary["status"] == "completed" and metrics.test_error.notna().iloc[-1]
    assert summary["data"]["stand_in"] == (dataset in {"curves", "mnist_5k", "mnist_5k_class", "faces_lfw"})


@pytest.mark.parametrize("split", ["test", "train"])
def test_training_stops_at_the_target_error(train, tmp_path: Path, split: str) -> None:
    """trainer.target_{test,train}_error end a run at the first evaluation at or below it (thesis §4.13's
    success criterion; the time-to-target benchmark)."""
    code, _ = train("trainer.max_steps=15", "trainer.eval_every=5", run_dir=tmp_path / "free")
    errors = read_run(tmp_path / "free")[0].dropna(subset=[f"{split}_error"]).set_index("iteration")[f"{split}_error"]
    assert code == 0 and errors[0] > errors[5]
    target = (errors[0] + errors[5]) / 2
    code, err = train("trainer.max_steps=15", "trainer.eval_every=5", f"trainer.target_{split}_error={target}",
                      run_dir=tmp_path / "r")
    assert code == 0, err
    _, summary = read_run(tmp_path / "r")
    assert summary["iteration"] == 5 and summary["target_reached"] and summary["status"] == "completed"
    assert summary["budget"][f"target_{split}_error"] == target
    assert summary["tf32"] is False and summary["peak_gpu_memory_bytes"] is None  # a CPU run
    code, err = train("trainer.max_steps=10", f"trainer.target_{split}_error=-1", run_dir=tmp_path / "bad")
    assert code == 2 and f"target_{split}_error" in err
