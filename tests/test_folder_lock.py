"""folder_lock.FolderLock: one live owner per folder; stale locks (dead pid, or an earlier life of a requeued SLURM
job on another host) are taken over; a live one — or another host's, outside that job — is refused."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from secondorder.errors import ConfigError
from secondorder.folder_lock import FolderLock, live_holder
from tests.helpers import lock_held_by_a_live_process


def write_lock(folder: Path, **owner) -> None:
    folder.mkdir(exist_ok=True)
    (folder / ".lock").write_text(json.dumps({"since": "then", **owner}))


def test_a_live_owner_refuses_and_a_dead_one_is_taken_over(tmp_path: Path) -> None:
    with lock_held_by_a_live_process(tmp_path) as pid:
        assert live_holder(tmp_path)["pid"] == pid
        with pytest.raises(ConfigError, match=f"pid {pid}"), FolderLock(tmp_path, "training run"):
            pass
    assert live_holder(tmp_path) is None and not (tmp_path / ".lock").exists()  # the stale lock is removed
    with FolderLock(tmp_path, "training run"):
        assert json.loads((tmp_path / ".lock").read_text())["host"] == socket.gethostname()
    assert not (tmp_path / ".lock").exists()


def test_another_hosts_lock_is_refused_unless_it_is_an_earlier_life_of_this_slurm_job(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_lock(tmp_path, pid=1, host="node-that-died", slurm_job="77")
    monkeypatch.setenv("SLURM_JOB_ID", "78")
    with pytest.raises(ConfigError, match="node-that-died"), FolderLock(tmp_path, "training run"):
        pass
    monkeypatch.setenv("SLURM_JOB_ID", "77")  # the requeued job 77 on this host
    with FolderLock(tmp_path, "training run"):
        assert json.loads((tmp_path / ".lock").read_text())["slurm_job"] == "77"


def test_two_processes_of_one_slurm_job_on_one_host_still_exclude_each_other(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    with lock_held_by_a_live_process(tmp_path, slurm_job="77"), pytest.raises(ConfigError, match="in use"), \
            FolderLock(tmp_path, "training run"):
        pass
