"""SLURM, for real: `srun train`, Hydra's submitit launcher for `train -m`, and the search sweeper (`train -m
hydra/sweeper=biased_random`, and `sweep --launcher slurm` on top of it) launching its trials through it.

They need a running cluster (scripts/slurm_local_cluster.sh starts one on this machine). Elsewhere they skip with
that reason — unless REQUIRE_SLURM=1 (as in .ci/run), where a missing cluster is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from secondorder.search import Dimension, propose
from secondorder.search_history import read_history
from tests.conftest import TINY
from tests.helpers import run_cli, script


def cluster_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    return result.returncode == 0 and any(s in result.stdout for s in ("idle", "mixed", "allocated"))


REQUIRED = os.environ.get("REQUIRE_SLURM") == "1"
if not cluster_up():
    if REQUIRED:
        pytest.fail("REQUIRE_SLURM=1 but no SLURM cluster answers sinfo (run scripts/slurm_local_cluster.sh)",
                    pytrace=False)
    pytestmark = pytest.mark.skip(reason="no SLURM cluster (start one with scripts/slurm_local_cluster.sh)")


def test_srun_train(tmp_path: Path, data_dir: Path) -> None:
    result = run_cli("srun", "--ntasks=1", script("train"), *TINY, f"data_dir={data_dir}", "trainer.max_steps=3",
                     f"run_dir={tmp_path / 'r'}", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["iteration"] == 3
    assert summary["provenance"]["slurm_job_id"]


def test_srun_two_tasks_train_data_parallel(tmp_path: Path, data_dir: Path) -> None:
    """``srun --ntasks=2 train``: SLURM's own environment starts a two-rank gloo K-FAC run with one run directory
    (its numbers against one process: tests/test_distributed.py)."""
    result = run_cli("srun", "--ntasks=2", script("train"), *TINY, f"data_dir={data_dir}", "trainer.max_steps=4",
                     "trainer.distributed=on", "optimizer=kfac", "optimizer.batch_size=64",
                     f"out_root={tmp_path / 'runs'}", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    (summary_file,) = (tmp_path / "runs").rglob("summary.json")
    summary = json.loads(summary_file.read_text())
    assert summary["status"] == "completed" and summary["iteration"] == 4 and summary["processes"] == 2


def partition() -> str:
    """The cluster's default partition (``debug`` on scripts/slurm_local_cluster.sh's)."""
    names = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=30).stdout.split()
    return next((n.rstrip("*") for n in names if n.endswith("*")), names[0] if names else "debug")


def submitit(*extra: str) -> list[str]:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install 'secondorder[slurm]'")
    return ["hydra/launcher=submitit_slurm", f"hydra.launcher.partition={partition()}",
            "hydra.launcher.timeout_min=10", *extra]


def test_biased_random_sweeper_through_submitit(tmp_path: Path, data_dir: Path) -> None:
    """6 trials in batches of 3 SLURM jobs, each batch proposed from the history before it."""
    folder = tmp_path / "brs"
    result = run_cli(script("train"), "-m", "hydra/sweeper=biased_random", "hydra.sweeper.n_trials=6",
                     "hydra.sweeper.batch_size=3", "optimizer.lr=tag(log,interval(1e-5,1e-1))", *TINY,
                     f"data_dir={data_dir}", "trainer.max_steps=3", f"hydra.sweep.dir={folder}", *submitit(),
                     cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr
    history = read_history(folder / "history.jsonl")
    space = [Dimension("optimizer.lr", 1e-5, 1e-1, log=True)]
    assert [t.status for t in history] == ["completed"] * 6
    for t in history:
        assert t.params == propose("biased", space, history[: t.index - t.index % 3], t.index, seed=0)
        summary = json.loads((Path(t.run_dir) / "summary.json").read_text())
        assert summary["provenance"]["slurm_job_id"] and t.criterion == summary["best"]["train_error"]["value"]


def test_sweep_on_the_submitit_launcher(tmp_path: Path, data_dir: Path) -> None:
    result = run_cli(script("sweep"), "search=adam_lr", *TINY, f"data_dir={data_dir}", "trainer.max_steps=3",
                     "--trials", "2", "--jobs", "2", "--launcher", "slurm", *submitit()[1:],
                     "--dir", str(tmp_path / "sw"), cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    history = read_history(tmp_path / "sw" / "history.jsonl")
    assert [t.status for t in history] == ["completed"] * 2
    for t in history:
        assert Path(t.run_dir) == tmp_path / "sw" / "trials" / f"trial_{t.index}"
        assert json.loads((Path(t.run_dir) / "summary.json").read_text())["provenance"]["slurm_job_id"]


def test_hydra_multirun_through_submitit(tmp_path: Path, data_dir: Path) -> None:
    result = run_cli(script("train"), "-m", "optimizer=sgd,adam", *TINY, f"data_dir={data_dir}",
                     "trainer.max_steps=2", f"out_root={tmp_path}", *submitit(), cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    summaries = [json.loads(p.read_text()) for p in tmp_path.glob("multirun/*/*/summary.json")]
    assert sorted(s["optimizer"] for s in summaries) == ["adam", "sgd"]
    assert all(s["provenance"]["slurm_job_id"] for s in summaries)


def test_submitit_tasks_per_node_run_each_configuration_data_parallel(tmp_path: Path, data_dir: Path) -> None:
    """``train -m … hydra.launcher.tasks_per_node=2``: each configuration becomes one SLURM job whose two tasks join
    one process group (SLURM's step environment) and write one run directory."""
    result = run_cli(script("train"), "-m", "optimizer=sgd,adam", *TINY, f"data_dir={data_dir}",
                     "trainer.max_steps=3", "trainer.distributed=on", f"out_root={tmp_path}",
                     *submitit("hydra.launcher.tasks_per_node=2"), cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    summaries = [json.loads(p.read_text()) for p in tmp_path.glob("multirun/*/*/summary.json")]
    assert sorted(s["optimizer"] for s in summaries) == ["adam", "sgd"]
    assert all(s["processes"] == 2 and s["status"] == "completed" for s in summaries)
