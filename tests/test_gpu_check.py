"""scripts/gpu_check.sh: the prepared GPU run refuses to fall back to the CPU, and its dry run works end to end."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.sh"


def run(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", SECONDORDER_DATA=str(tmp_path / "data"))
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=1800)


def test_without_cuda_it_stops_in_one_line_instead_of_running_on_the_cpu(tmp_path: Path) -> None:
    result = run("--out", str(tmp_path / "out"), tmp_path=tmp_path)
    assert result.returncode == 2 and "CUDA is not available" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_an_unknown_argument_is_one_line(tmp_path: Path) -> None:
    result = run("--fast", tmp_path=tmp_path)
    assert result.returncode == 2 and "unknown argument '--fast'" in result.stderr


@pytest.mark.slow
def test_the_dry_run_writes_every_table_and_the_run_into_one_archive(tmp_path: Path) -> None:
    archive = tmp_path / "check.tar.gz"
    result = run("--dry-run", "--tar", str(archive), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    with tarfile.open(archive) as tar:
        names = {Path(n).name for n in tar.getnames()}
    assert {"curvature.csv", "iterations.csv", "kfac-curves-run.csv", "kfac-curves-run.json",
            "collectives.txt"} <= names
