"""An exclusive lock on a folder for the life of one process: ``<folder>/.lock`` holds the owner's pid, host and
start time. Used by the search sweeper, so that two searches never write one sweep folder at once, and by the
trainer, so that two processes never train one run directory at once (two experiment runners sharing cells, a
requeued SLURM job beside its still-running first life).

Taking the lock creates the file with ``O_CREAT | O_EXCL`` (atomic on local file systems and NFSv3+). A lock whose
owner is gone — same host, pid no longer running — is stale: it is reported and taken over; so is a lock written
on another host by an earlier life of the same SLURM job (a requeued job keeps ``SLURM_JOB_ID``; its first life
was killed). A lock held by a live process, or by another host (whose processes cannot be checked from here), is
refused with a one-line :class:`~secondorder.errors.ConfigError` that says what to do.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

from secondorder.errors import ConfigError
from secondorder.run_record import utc_now

log = logging.getLogger(__name__)
LOCK_NAME = ".lock"
UNREADABLE_GRACE_S = 5.0  # a lock file still being written by its owner may be empty for a moment


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


class FolderLock:
    """``with FolderLock(folder, "sweep"):`` — see the module docstring."""

    def __init__(self, folder: Path, purpose: str) -> None:
        self.folder = folder
        self.path = folder / LOCK_NAME
        self.purpose = purpose
        self.owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": utc_now(),
                      "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:500]}
        job = os.environ.get("SLURM_JOB_ID")
        if job:  # a requeued job keeps its id: its earlier life's lock (on any host) is its own
            self.owner["slurm_job"] = job

    def __enter__(self) -> FolderLock:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create {self.folder} ({exc.strerror}); choose another folder") from None
        while not self._create():
            holder = self._holder()
            if holder is None:
                continue  # taken over or vanished: try again
            raise ConfigError(
                f"{self.folder} is in use by another {self.purpose} (pid {holder.get('pid')} on "
                f"{holder.get('host')} since {holder.get('since')}); wait for it to finish, or if that process is "
                f"gone, delete {self.path}"
            )
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        holder = self._read()
        if holder is not None and holder.get("pid") == self.owner["pid"] and holder.get("host") == self.owner["host"]:
            self.path.unlink(missing_ok=True)

    def _create(self) -> bool:
        try:
            descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "w") as handle:
            json.dump(self.owner, handle)
        return True

    def _read(self) -> dict | None:
        try:
            holder = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None

    def _holder(self) -> dict | None:
        """The live holder of the lock, or ``None`` after removing a stale or unreadable one."""
        holder = self._read()
        if holder is None:
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return None
            if age < UNREADABLE_GRACE_S:
                time.sleep(0.1)
                return None
            log.warning("removing the unreadable lock %s", self.path)
        elif holder.get("host") == self.owner["host"] and not process_alive(int(holder.get("pid", -1))):
            log.warning("taking over the stale lock %s (pid %s is gone)", self.path, holder.get("pid"))
        elif (holder.get("slurm_job") and holder.get("slurm_job") == self.owner.get("slurm_job")
              and holder.get("host") != self.owner["host"]):  # same host: the pid check above decides
            log.warning("taking over the lock %s of an earlier life of SLURM job %s", self.path, holder["slurm_job"])
        else:
            return holder
        self.path.unlink(missing_ok=True)
        return None


def live_holder(folder: Path) -> dict | None:
    """The owner record of ``folder``'s lock while a live process holds it, else None (a stale lock is removed)."""
    if not (folder / LOCK_NAME).exists():
        return None
    return FolderLock(folder, "check")._holder()
