"""Trainer callbacks: called at the right iterations, checkpointed with the run, and unable to change it."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from secondorder.callbacks import Callback
from secondorder.checkpoint import load_checkpoint
from secondorder.composition import compose_config
from secondorder.errors import ConfigError, RunInterrupted
from secondorder.optim.first_order import Adam
from secondorder.train import Trainer
from tests.conftest import TINY


class Recorder(Callback):
    """Logs every hook call; records one row per step with a draw from its own generator (checkpointed state)."""

    name = "recorder"

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.rows: list[dict[str, float]] = []
        self.evaluations: dict[int, dict[str, float]] = {}
        self.generator = torch.Generator().manual_seed(5)

    def at_start(self, trainer: Trainer, resumed: bool) -> None:
        self.events.append(("at_start", trainer.iteration, resumed))

    def after_step(self, trainer: Trainer, result: Any) -> None:
        self.events.append(("after_step", trainer.iteration))
        self.rows.append({"iteration": trainer.iteration, "loss": result.loss,
                          "draw": float(torch.rand(1, generator=self.generator))})

    def after_evaluation(self, trainer: Trainer, evaluation: dict[str, float]) -> None:
        self.events.append(("after_evaluation", trainer.iteration))
        self.evaluations[trainer.iteration] = dict(evaluation)

    def at_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        self.events.append(("at_end", trainer.iteration, summary["status"]))

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(r) for r in self.rows], "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state["rows"]]
        self.generator.set_state(state["generator"])


class GlobalRandomness(Callback):
    """A careless measurement: draws from the global generator in every hook."""

    name = "careless"

    def at_start(self, trainer: Trainer, resumed: bool) -> None:
        torch.randn(100)

    def after_step(self, trainer: Trainer, result: Any) -> None:
        torch.randn(100)

    def after_evaluation(self, trainer: Trainer, evaluation: dict[str, float]) -> None:
        torch.randn(100)


def make_trainer(run_dir: Path, data_dir: Path, *overrides: str, callbacks: tuple[Callback, ...] = ()) -> Trainer:
    run, resolved = compose_config([*TINY, f"data_dir={data_dir}", f"run_dir={run_dir}", *overrides])
    return Trainer(run, Path(resolved["run_dir"]), resolved, callbacks)


def test_hooks_are_called_after_each_step_each_evaluation_and_at_the_end(tmp_path: Path, data_dir: Path) -> None:
    recorder = Recorder()
    summary = make_trainer(tmp_path / "r", data_dir, "trainer.max_steps=7", "trainer.eval_every=3",
                           callbacks=(recorder,)).fit()
    steps = [("after_step", k) for k in range(1, 8)]
    expected = [("at_start", 0, False), ("after_evaluation", 0), *steps[:3], ("after_evaluation", 3), *steps[3:6],
                ("after_evaluation", 6), steps[6], ("after_evaluation", 7), ("at_end", 7, "completed")]
    assert recorder.events == expected
    metrics = pd.read_csv(tmp_path / "r" / "metrics.csv").dropna(subset=["train_error"])
    assert metrics.iteration.tolist() == sorted(recorder.evaluations)  # the evaluations the run logged
    for _, row in metrics.iterrows():
        assert recorder.evaluations[int(row.iteration)]["test_error"] == row.test_error
    assert summary["status"] == "completed" and summary["iteration"] == 7


def _crash_in_step(monkeypatch: pytest.MonkeyPatch, k: int, signal_it: bool) -> None:
    """During step ``k``: a real SIGTERM (the trainer checkpoints and stops) or a crash (no checkpoint written)."""
    original = Adam.step

    def step(self, iteration, sampler):
        if iteration == k:
            if signal_it:
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise RuntimeError("simulated crash")
        return original(self, iteration, sampler)

    monkeypatch.setattr(Adam, "step", step)


@pytest.mark.parametrize("signal_it", [True, False], ids=["sigterm", "crash"])
def test_callback_state_survives_interrupt_and_resume(tmp_path: Path, data_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch, signal_it: bool) -> None:
    common = ("trainer.max_steps=12", "trainer.eval_every=5", "trainer.checkpoint_every=4")
    straight = Recorder()
    make_trainer(tmp_path / "straight", data_dir, *common, callbacks=(straight,)).fit()

    first = Recorder()
    with monkeypatch.context() as patch:
        _crash_in_step(patch, 9, signal_it)
        with pytest.raises(RunInterrupted if signal_it else RuntimeError):
            make_trainer(tmp_path / "split", data_dir, *common, callbacks=(first,)).fit()
    assert first.rows[-1]["iteration"] == (10 if signal_it else 9)  # a crash loses row 9 (checkpoint at 8)…
    assert first.events[-1] == (("at_end", 10, "interrupted") if signal_it else ("after_step", 9))

    resumed = Recorder()  # a new process: the state comes from the checkpoint only
    make_trainer(tmp_path / "split", data_dir, *common, "trainer.resume=true", callbacks=(resumed,)).fit()
    assert resumed.events[0] == ("at_start", 10 if signal_it else 8, True)  # …and re-measures them
    assert resumed.rows == straight.rows
    assert [r["iteration"] for r in resumed.rows] == list(range(1, 13))


def test_hooks_cannot_change_the_run_they_observe(tmp_path: Path, data_dir: Path) -> None:
    """Hooks run on a forked global generator: the trajectory and the checkpointed RNG state are the plain run's."""
    make_trainer(tmp_path / "plain", data_dir, "trainer.max_steps=6", "trainer.eval_every=2").fit()
    make_trainer(tmp_path / "observed", data_dir, "trainer.max_steps=6", "trainer.eval_every=2",
                 callbacks=(GlobalRandomness(),)).fit()
    plain, observed = (pd.read_csv(tmp_path / d / "metrics.csv").drop(columns="wall_time_s")
                       for d in ("plain", "observed"))
    pd.testing.assert_frame_equal(plain, observed)
    rng = [load_checkpoint(tmp_path / d)["rng"]["torch"] for d in ("plain", "observed")]
    assert torch.equal(*rng)


def test_callback_errors(tmp_path: Path, data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="callback names must be unique"):
        make_trainer(tmp_path / "a", data_dir, callbacks=(Recorder(), Recorder()))
    make_trainer(tmp_path / "b", data_dir, "trainer.max_steps=2").fit()
    trainer = make_trainer(tmp_path / "b", data_dir, "trainer.max_steps=4", "trainer.resume=true",
                           callbacks=(Recorder(),))
    with pytest.raises(ConfigError, match="started without it"):
        trainer.fit()


@pytest.mark.parametrize("every_s, evaluated", [(1e-9, list(range(0, 9))), (1e9, [0, 4, 8])])
def test_eval_every_s_evaluates_when_training_time_passes_a_multiple(tmp_path: Path, data_dir: Path,
                                                                     every_s: float, evaluated: list[int]) -> None:
    """``trainer.eval_every_s``: every step takes more than 1e-9 s, so each one evaluates; 1e9 s never passes, so
    only ``eval_every`` (and the end) do."""
    make_trainer(tmp_path / "r", data_dir, "trainer.max_steps=8", "trainer.eval_every=4",
                 f"trainer.eval_every_s={every_s}").fit()
    metrics = pd.read_csv(tmp_path / "r" / "metrics.csv").dropna(subset=["train_error"])
    assert metrics.iteration.tolist() == evaluated
