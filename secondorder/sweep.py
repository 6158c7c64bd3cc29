"""``sweep``: a named hyperparameter search in a resumable folder, run by ``train -m`` with the search sweeper.

    sweep search=adam_lr dataset=curves trainer.max_steps=200           # conf/search/adam_lr.yaml
    sweep search=adam_lr --method random --trials 30 --dir runs/sweeps/adam-curves
    sweep search=adam_lr --launcher slurm --jobs 8 hydra.launcher.partition=gpu +hydra.launcher.gres=gpu:1

``sweep search=<name> [key=value …] --trials N --dir D`` is

    train -m +search=<name> [key=value …] trainer.resume=auto hydra.sweeper.n_trials=N hydra.sweep.dir=D
          hydra.sweep.subdir=trials/trial_${hydra.job.num}

(``hydra_plugins/secondorder_sweepers``; ``--method`` → ``hydra.sweeper.method``, ``--seed`` →
``hydra.sweeper.seed``, ``--jobs`` → ``hydra.sweeper.batch_size``, ``--launcher slurm`` →
``hydra/launcher=submitit_slurm``; ``hydra.launcher.*`` overrides pass through). The folder holds
``history.jsonl`` (one line per finished trial), ``trials/trial_<k>/`` (run directories), ``summary.md`` and
``multirun.yaml``. Re-running the same command resumes: finished trials are never rerun, an interrupted trial
continues from its checkpoint, and proposals are reproducible.

While it runs the folder is locked (``.lock``, :mod:`secondorder.folder_lock`): a second sweep on it is refused.
The ``train -m`` child dies with this process (Linux ``PR_SET_PDEATHSIG``): ``kill -9`` of a sweep stops its
running trial through SIGTERM — it checkpoints and is resumed by the next run — instead of orphaning it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from secondorder.composition import CONF_DIR, path_override
from secondorder.errors import ConfigError, UserError
from secondorder.experiments.runner import train_executable
from secondorder.search_history import best_trial, read_history

__all__ = ["main", "read_history", "train_command"]

SEARCH_DIR = CONF_DIR / "search"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
LAUNCHERS = {"local": [], "slurm": ["hydra/launcher=submitit_slurm"]}


def search_name(overrides: list[str]) -> str:
    """The one ``search=<name>`` among the overrides, checked against ``conf/search/``."""
    names = [o.split("=", 1)[1] for o in overrides if o.startswith("search=")]
    if len(names) != 1:
        raise ConfigError("name the search space once: sweep search=<name> ... (see conf/search/)")
    if not (SEARCH_DIR / f"{names[0]}.yaml").exists():
        options = ", ".join(sorted(p.stem for p in SEARCH_DIR.glob("*.yaml")))
        raise ConfigError(f"unknown search {names[0]!r}; available: {options}")
    return names[0]


def train_command(args: argparse.Namespace, folder: Path) -> list[str]:
    """The ``train -m`` command line that runs (or resumes) this sweep in ``folder``."""
    name = search_name(args.overrides)
    base = [o for o in args.overrides if not o.startswith("search=")]
    options = {"method": args.method, "n_trials": args.trials, "seed": args.seed, "batch_size": args.jobs}
    return [*train_executable(), "-m", f"+search={name}", *LAUNCHERS[args.launcher], *base, "trainer.resume=auto",
            *(f"hydra.sweeper.{key}={value}" for key, value in options.items() if value is not None),
            path_override("hydra.sweep.dir", folder.resolve()), "hydra.sweep.subdir=trials/trial_${hydra.job.num}"]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="search=<name> and key=value overrides for every trial")
    parser.add_argument("--method", choices=["grid", "random", "biased"])
    parser.add_argument("--trials", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--jobs", type=int, help="trials per launcher batch (run at once by submitit launchers)")
    parser.add_argument("--dir", type=Path, help="sweep directory (default runs/sweeps/<search>-<time>)")
    parser.add_argument("--launcher", choices=sorted(LAUNCHERS), default="local",
                        help="slurm: each trial a SLURM job through Hydra's submitit launcher")
    if any(a == "--sbatch" or a.startswith("--sbatch=") for a in argv):
        raise ConfigError("--sbatch is gone: use --launcher slurm with hydra.launcher.* overrides "
                          "(e.g. hydra.launcher.partition=gpu +hydra.launcher.gres=gpu:1)")
    return parser.parse_intermixed_args(argv)  # overrides may follow the options


def die_with_parent() -> None:
    """Run in the child before it executes (Linux): the kernel sends it SIGTERM when this process dies, however it
    dies (``kill -9`` included), so a killed sweep leaves no orphaned trial; the trial checkpoints and stops."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def main(argv: list[str]) -> int:
    args = parse(argv)
    for option in ("trials", "jobs"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise ConfigError(f"--{option} {value}: must be a positive number")
    name = search_name(args.overrides)
    folder = args.dir or Path("runs/sweeps") / f"{name}-{datetime.now():%Y-%m-%d_%H-%M-%S}"
    history_path = folder / "history.jsonl"
    finished = read_history(history_path)
    if finished:
        print(f"resuming {folder}: {len(finished)} finished trial(s)", flush=True)
    result = subprocess.run(train_command(args, folder), stderr=subprocess.PIPE, text=True,
                            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None)
    sys.stderr.write(result.stderr if result.returncode == 0 else "")
    if result.returncode:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        error = UserError(lines[-1].removeprefix("train: error: ") if lines else f"train exited {result.returncode}")
        error.exit_code = result.returncode if result.returncode > 0 else 1
        raise error
    history = read_history(history_path)
    if (folder / "summary.md").exists():
        print((folder / "summary.md").read_text())
    best = best_trial(history)
    if best is not None:
        print(f"best: trial {best.index} {best.params} → {best.criterion:.6g} ({best.run_dir})")
    print(f"wrote {folder / 'summary.md'}")
    return 0
