"""Training on sequence data through the real ``train`` entry point: language models and generated tasks."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import pandas as pd
import pytest
import torch

from secondorder.data.pathological import TASKS
from secondorder.optim.first_order import Adam
from tests.conftest import read_run

TINY_LM = ["model.embedding_dim=8", "model.hidden_dim=8", "dataset.bptt=5", "dataset.batch_size=4",
           "dataset.eval_batch_size=2", "trainer.device=cpu", "trainer.progress=false"]


@pytest.fixture(scope="module")
def tiny_ptb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small corpus in Mikolov's file format."""
    folder = tmp_path_factory.mktemp("ptb")
    words = ["the", "cat", "sat", "on", "the", "mat", "and", "the", "dog", "ate", "the", "cat", "food", "N", "times"]
    gen = torch.Generator().manual_seed(0)
    for split, lines in (("train", 60), ("valid", 8), ("test", 8)):
        text = []
        for _ in range(lines):
            length = int(torch.randint(3, 9, (1,), generator=gen))
            text.append(" " + " ".join(words[int(i)] for i in torch.randint(0, len(words), (length,),
                                                                            generator=gen)) + " ")
        (folder / f"ptb.{split}.txt").write_text("\n".join(text) + "\n")
    return folder


@pytest.mark.parametrize("dataset", ["ptb_word", "ptb_char"])
def test_language_model_runs_and_reports_perplexity(train, tmp_path: Path, tiny_ptb: Path, dataset: str) -> None:
    code, err = train(f"dataset={dataset}", f"dataset.path={tiny_ptb}", *TINY_LM, "trainer.max_steps=12",
                      "trainer.eval_every=6", run_dir=tmp_path / "r", tiny=False)
    assert code == 0, err
    metrics, summary = read_run(tmp_path / "r")
    assert {"valid_error", "valid_loss"} <= set(metrics.columns)
    final = metrics.dropna(subset=["train_error"]).iloc[-1]
    to_error = (lambda ce: ce / math.log(2)) if dataset == "ptb_char" else math.exp
    for split in ("train", "valid", "test"):
        assert final[f"{split}_error"] == pytest.approx(to_error(final[f"{split}_loss"]))
    first = metrics.iloc[0]
    vocab = summary["data"]["vocab_size"]
    assert first.train_loss == pytest.approx(math.log(vocab), rel=0.05)  # near-uniform predictions at init
    assert final.train_loss < first.train_loss
    assert summary["data"]["level"] == dataset.removeprefix("ptb_")
    assert metrics.examples_seen.iloc[-1] == 12 * 4 * 5  # tokens


def test_language_model_resume_reproduces_the_carried_state(
    train, tmp_path: Path, tiny_ptb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    common = ("dataset=ptb_word", f"dataset.path={tiny_ptb}", *TINY_LM, "trainer.max_steps=30",
              "trainer.eval_every=10", "trainer.log_every=2")
    code, err = train(*common, run_dir=tmp_path / "straight", tiny=False)
    assert code == 0, err
    original = Adam.step

    def step(self, k, sampler):
        if k == 13:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, k, sampler)

    with monkeypatch.context() as patch:
        patch.setattr(Adam, "step", step)
        code, _ = train(*common, run_dir=tmp_path / "split", tiny=False)
    assert code == 128 + signal.SIGTERM
    code, err = train(*common, "trainer.resume=true", run_dir=tmp_path / "split", tiny=False)
    assert code == 0, err
    a, b = read_run(tmp_path / "straight")[0], read_run(tmp_path / "split")[0]
    pd.testing.assert_frame_equal(a.drop(columns=["wall_time_s"]), b.drop(columns=["wall_time_s"]))


@pytest.mark.parametrize("task", TASKS)
def test_every_generated_task_trains_one_step(train, tmp_path: Path, task: str) -> None:
    dataset = "dnc_copy" if task == "dnc_copy" else "pathological"
    T = 22 if task == "dnc_copy" else 20
    code, err = train(f"dataset={dataset}", f"dataset.task={task}", f"dataset.T={T}", "dataset.n_test=64",
                      "dataset.batch_size=16", "model.hidden_dim=16", "trainer.max_steps=2",
                      "trainer.eval_batch_size=32", "trainer.device=cpu", "trainer.progress=false",
                      run_dir=tmp_path / task, tiny=False)
    assert code == 0, err
    metrics, summary = read_run(tmp_path / task)
    assert 0.0 <= metrics.test_error.iloc[-1] <= 1.0
    assert summary["data"]["task"] == task and summary["data"]["n_test"] == 64
    assert metrics.examples_seen.iloc[-1] == 32


def test_sequence_objective_sums_scored_steps_and_averages_sequences() -> None:
    from secondorder.data.pathological import make_task
    from secondorder.data.sequences import GeneratedSequences
    from secondorder.losses import SquaredError
    from secondorder.models.rnn import RecurrentNet, RNNConfig, sparse_rnn_init_
    from secondorder.problems import ObjectiveConfig, SequenceTaskProblem

    task = make_task("addition", 20)
    test = task.generate(8, torch.Generator().manual_seed(0))
    data = GeneratedSequences("pathological", task, test, "test", "test")
    model = RecurrentNet(task.input_dim, task.output_dim, RNNConfig(hidden_dim=6))
    sparse_rnn_init_(model, torch.Generator().manual_seed(0))
    problem = SequenceTaskProblem(model, SquaredError(), data, ObjectiveConfig(), torch.device("cpu"),
                                  torch.float32, seed=0)
    batch = task.generate(5, torch.Generator().manual_seed(1))
    with torch.no_grad():
        outputs, _ = model(batch.inputs)
    expected = sum(0.5 * float(((outputs[b] - batch.targets[b]) ** 2)[batch.mask[b]].sum()) for b in range(5)) / 5
    assert float(problem.objective(batch)) == pytest.approx(expected, rel=1e-6)
