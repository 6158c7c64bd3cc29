"""The Hydra search sweepers (hydra_plugins/secondorder_sweepers) on tiny CURVES Adam runs, through `train -m`.

Oracle: the proposals of :func:`secondorder.search.propose` for the same seed and history — trial k of a batch
starting at index s is ``propose(method, space, history[:s], k, seed)`` — and each run's own summary.json.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from secondorder.search import Dimension, propose
from secondorder.search_history import read_history
from tests.conftest import TrainRunner

LOG_LR = "optimizer.lr=tag(log,interval(1e-5,1e-1))"
SPACE = [Dimension("optimizer.lr", 1e-5, 1e-1, log=True)]


def sweep(train: TrainRunner, folder: Path, *overrides: str) -> tuple[int, str]:
    return train("-m", "trainer.max_steps=3", f"hydra.sweep.dir={folder}", *overrides)


def check_runs(history, folder: Path) -> None:
    """Each trial ran in job directory <index> with its proposed value, and recorded its run's criterion."""
    for t in history:
        assert Path(t.run_dir) == folder / str(t.index)
        summary = json.loads((folder / str(t.index) / "summary.json").read_text())
        config = yaml.safe_load((folder / str(t.index) / "config.yaml").read_text())
        assert config["optimizer"]["lr"] == t.params["optimizer.lr"]
        assert t.status == "completed" and t.criterion == summary["best"]["train_error"]["value"]


def test_biased_random_sweeper_runs_the_proposals_of_search_propose_and_resumes(train: TrainRunner,
                                                                                tmp_path: Path) -> None:
    folder = tmp_path / "brs"
    args = ("hydra/sweeper=biased_random", "hydra.sweeper.n_trials=6", "hydra.sweeper.batch_size=2",
            "hydra.sweeper.seed=5", LOG_LR)
    code, err = sweep(train, folder, *args)
    assert code == 0, err
    history = read_history(folder / "history.jsonl")
    assert [t.index for t in history] == list(range(6))
    check_runs(history, folder)
    for t in history:  # batches {0, 1}, {2, 3}, {4, 5}: each conditioned on the history before it
        assert t.params == propose("biased", SPACE, history[: t.index - t.index % 2], t.index, seed=5)
    # from trial 2 on, BRS rejects by the 1-NN estimate: its proposals are not the random search's
    assert any(t.params != propose("random", SPACE, [], t.index, seed=5) for t in history[2:])
    assert "| trial | optimizer.lr |" in (folder / "summary.md").read_text()

    record = (folder / "history.jsonl").read_text()
    summaries = {p: p.stat().st_mtime_ns for p in folder.glob("*/summary.json")}
    code, err = sweep(train, folder, *args)  # the same command again: nothing to run
    assert code == 0, err
    assert (folder / "history.jsonl").read_text() == record
    assert {p: p.stat().st_mtime_ns for p in folder.glob("*/summary.json")} == summaries

    code, err = sweep(train, folder, *args[:1], "hydra.sweeper.n_trials=7", *args[2:])  # one more trial
    assert code == 0, err
    extended = read_history(folder / "history.jsonl")
    assert len(extended) == 7 and extended[:6] == history
    assert extended[6].params == propose("biased", SPACE, history, 6, seed=5)
    check_runs(extended[6:], folder)


def test_grid_search_from_a_search_config(train: TrainRunner, tmp_path: Path) -> None:
    """+search=adam_lr supplies the space (1e-5 … 1e-1, log); the sweeper named on the command line the method;
    n_trials (the config's 20) is capped at the grid's 3 points."""
    code, err = sweep(train, tmp_path, "+search=adam_lr", "hydra/sweeper=grid_search", "hydra.sweeper.grid_points=3")
    assert code == 0, err
    history = read_history(tmp_path / "history.jsonl")
    assert [round(math.log10(t.params["optimizer.lr"]), 9) for t in history] == [-5.0, -3.0, -1.0]
    check_runs(history, tmp_path)


def test_params_from_a_dict_override_integer_values_and_an_explicit_history(train: TrainRunner,
                                                                            tmp_path: Path) -> None:
    """An integer dimension reaches each job as an int (seed ∈ {0, 1, 2} on a 3-point grid); the history goes
    where hydra.sweeper.history says."""
    history_path = tmp_path / "record" / "h.jsonl"
    code, err = sweep(train, tmp_path / "runs", "hydra/sweeper=grid_search", "hydra.sweeper.grid_points=3",
                      "hydra.sweeper.params={seed:{low:0,high:2,integer:true}}",
                      f"hydra.sweeper.history={history_path}")
    assert code == 0, err
    history = read_history(history_path)
    assert [t.params for t in history] == [{"seed": 0.0}, {"seed": 1.0}, {"seed": 2.0}]
    for t in history:
        config = yaml.safe_load((Path(t.run_dir) / "config.yaml").read_text())
        assert config["seed"] == t.params["seed"] and isinstance(config["seed"], int)
    assert (tmp_path / "record" / "summary.md").exists()


def test_random_search_records_failed_trials_and_goes_on(train: TrainRunner, tmp_path: Path) -> None:
    """A negative learning rate fails validation: such trials are recorded as failed with their error and the
    search continues (seed 17 draws +, −, −, −)."""
    code, err = sweep(train, tmp_path, "hydra/sweeper=random_search", "hydra.sweeper.n_trials=4",
                      "hydra.sweeper.seed=17", "optimizer.lr=interval(-0.01,0.01)")
    assert code == 0, err
    history = read_history(tmp_path / "history.jsonl")
    space = [Dimension("optimizer.lr", -0.01, 0.01)]
    assert [t.params for t in history] == [propose("random", space, [], k, seed=17) for k in range(4)]
    assert [t.status for t in history] == ["completed" if t.params["optimizer.lr"] > 0 else "failed" for t in history]
    for t in history[1:]:
        assert t.criterion is None and t.extra["error"] == f"optimizer.lr={t.params['optimizer.lr']!r}: must be > 0"
    check_runs(history[:1], tmp_path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("dataset.batch_size=0", LOG_LR), "train: error: every trial so far failed (dataset.batch_size=0: must be"),
        (("optimizer.lr=0.1,0.2",), "train: error: optimizer.lr=0.1,0.2: the search sweepers take intervals"),
        ((), "train: error: nothing to search: set hydra.sweeper.params"),
        (("hydra.sweeper.method=anneal", LOG_LR), "train: error: hydra.sweeper.method=anneal: must be grid, random"),
        (("optimizer.lr=0.1", LOG_LR), "train: error: optimizer.lr: searched and also set elsewhere"),
    ],
)
def test_bad_sweeps_are_one_line_errors(train: TrainRunner, tmp_path: Path, overrides: tuple[str, ...],
                                        message: str) -> None:
    code, err = sweep(train, tmp_path, "hydra/sweeper=biased_random", "hydra.sweeper.n_trials=2", *overrides)
    assert code == 2 and err.startswith(message), err
    assert not (tmp_path / "history.jsonl").exists()
