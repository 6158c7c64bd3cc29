"""SLURM, for real: `srun train`, a sweep whose trials are sbatch jobs, and Hydra's submitit launcher.

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


def test_sweep_trials_are_sbatch_jobs(tmp_path: Path, data_dir: Path) -> None:
    result = run_cli(script("sweep"), "search=adam_lr", *TINY, f"data_dir={data_dir}", "trainer.max_steps=3",
                     "--trials", "4", "--jobs", "4", "--launcher", "slurm", "--dir", str(tmp_path / "sw"),
                     cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    history = [json.loads(line) for line in (tmp_path / "sw" / "history.jsonl").read_text().splitlines()]
    assert len(history) == 4 and all(h["status"] == "completed" for h in history)
    for h in history:
        run_dir = Path(h["run_dir"])
        assert list(run_dir.glob("slurm-*.out"))  # it ran as a SLURM job
        assert json.loads((run_dir / "summary.json").read_text())["provenance"]["slurm_job_id"]


def test_hydra_multirun_through_submitit(tmp_path: Path, data_dir: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install 'secondorder[slurm]'")
    result = run_cli(script("train"), "-m", "optimizer=sgd,adam", *TINY, f"data_dir={data_dir}",
                     "trainer.max_steps=2", f"out_root={tmp_path}", "hydra/launcher=submitit_slurm",
                     "hydra.launcher.partition=debug", "hydra.launcher.timeout_min=10", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    summaries = [json.loads(p.read_text()) for p in tmp_path.glob("multirun/*/*/summary.json")]
    assert sorted(s["optimizer"] for s in summaries) == ["adam", "sgd"]
    assert all(s["provenance"]["slurm_job_id"] for s in summaries)
