"""``sweep``: a hyperparameter search from the shell, each trial a ``train`` run.

    sweep search=adam_lr dataset=curves trainer.max_steps=200           # conf/search/adam_lr.yaml
    sweep search=adam_lr --method random --trials 30 --jobs 2 --dir runs/sweeps/adam-curves
    sweep search=adam_lr --launcher slurm --jobs 8 --sbatch "--partition=gpu --gres=gpu:1"

The search space, method (grid / random / biased random search, :mod:`secondorder.search`), trial count, seed
and criterion (a path into each trial's ``summary.json``, e.g. ``best.train_error``) come from the search
config; ``--method``, ``--trials``, ``--seed`` override them; every other ``key=value`` is passed to every
trial. The sweep directory holds ``history.jsonl`` (one line per finished trial), ``trials/trial_NNN/`` (run
directories) and ``summary.md``. Re-running the same command resumes: finished trials are never rerun, an
interrupted trial continues from its checkpoint, and proposals are reproducible.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from secondorder.errors import ConfigError, UserError
from secondorder.experiments.runner import train_executable
from secondorder.search import Dimension, Trial, propose

SEARCH_DIR = Path(__file__).resolve().parent / "conf" / "search"


def load_search(name: str) -> dict[str, Any]:
    path = SEARCH_DIR / f"{name}.yaml"
    if not path.exists():
        options = ", ".join(sorted(p.stem for p in SEARCH_DIR.glob("*.yaml")))
        raise ConfigError(f"unknown search {name!r}; available: {options}")
    spec = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not spec.get("parameters"):
        raise ConfigError(f"search {name}: no parameters to search")
    return spec


def dimensions(spec: dict[str, Any]) -> list[Dimension]:
    out = []
    for key, d in spec["parameters"].items():
        try:
            out.append(Dimension(key, float(d["low"]), float(d["high"]), bool(d.get("log", False)),
                                 bool(d.get("integer", False))))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"search parameter {key}: needs numeric low and high ({exc})") from None
    return out


def criterion_of(summary: dict[str, Any], path: str) -> float | None:
    value: Any = summary
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, dict):
        value = value.get("value")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def read_history(path: Path) -> list[Trial]:
    if not path.exists():
        return []
    trials = []
    for line in path.read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            trials.append(Trial(d["index"], d["params"], d["criterion"], d["status"], d["run_dir"]))
    return sorted(trials, key=lambda t: t.index)


def slurm_command(command: list[str], run_dir: Path, sbatch_args: list[str]) -> list[str]:
    """Wrap a train command in ``sbatch --wait``: the trial becomes a SLURM job; this call blocks until it ends.

    ``trainer.resume=auto`` in the command makes a requeued (preempted) job continue from its checkpoint.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    wrapped = " ".join(shlex.quote(part) for part in command)
    return ["sbatch", "--wait", "--parsable", "--requeue", f"--job-name=sweep-{run_dir.name}",
            f"--output={run_dir}/slurm-%j.out", *sbatch_args, f"--wrap={wrapped}"]


def run_trial(trial: Trial, base: list[str], run_dir: Path, criterion: str, launcher: str = "local",
              sbatch_args: list[str] | None = None) -> Trial:
    overrides = [*base, *(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in trial.params.items())]
    command = [*train_executable(), *overrides, f"run_dir={run_dir}", "trainer.resume=auto",
               "trainer.progress=false"]
    if launcher == "slurm":
        command = slurm_command(command, run_dir, sbatch_args or [])
    result = subprocess.run(command, capture_output=True, text=True)
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    trial.status = summary.get("status", "failed")
    if trial.status == "completed":
        trial.criterion = criterion_of(summary, criterion)
        if trial.criterion is None:
            trial.status = "diverged"
    if result.returncode and trial.status not in ("completed", "diverged"):
        trial.status = "failed"
        lines = result.stderr.strip().splitlines()
        trial.extra["error"] = lines[-1] if lines else f"exit {result.returncode}"
    trial.run_dir = str(run_dir)
    return trial


def summary_table(trials: list[Trial], dims: list[Dimension], criterion: str) -> str:
    ranked = sorted(trials, key=lambda t: (t.criterion is None, t.criterion if t.criterion is not None else 0))
    header = "| trial | " + " | ".join(d.key for d in dims) + f" | {criterion} | status |"
    lines = [header, "|" + "---|" * (len(dims) + 3)]
    for t in ranked:
        values = " | ".join(f"{t.params[d.key]:.4g}" for d in dims)
        crit = f"{t.criterion:.6g}" if t.criterion is not None else "—"
        lines.append(f"| {t.index} | {values} | {crit} | {t.status} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="search=<name> and key=value overrides for every trial")
    parser.add_argument("--method", choices=["grid", "random", "biased"])
    parser.add_argument("--trials", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--jobs", type=int, default=1, help="trials run at once (local processes)")
    parser.add_argument("--dir", type=Path, help="sweep directory (default runs/sweeps/<search>-<time>)")
    parser.add_argument("--launcher", choices=["local", "slurm"], default="local",
                        help="slurm: each trial is an sbatch job (up to --jobs at once)")
    parser.add_argument("--sbatch", default="", help="extra sbatch options, e.g. '--partition=gpu --gres=gpu:1'")
    args = parser.parse_args(argv)
    names = [o.split("=", 1)[1] for o in args.overrides if o.startswith("search=")]
    if len(names) != 1:
        raise ConfigError("name the search space once: sweep search=<name> ... (see conf/search/)")
    spec = load_search(names[0])
    dims = dimensions(spec)
    method = args.method or spec.get("method", "biased")
    trials = args.trials or int(spec.get("trials", 20))
    seed = args.seed if args.seed is not None else int(spec.get("seed", 0))
    criterion = spec.get("criterion", "best.train_error")
    base = [o for o in args.overrides if not o.startswith("search=")]
    if args.launcher == "slurm" and shutil.which("sbatch") is None:
        raise UserError("--launcher slurm needs SLURM's sbatch on PATH (see scripts/slurm_local_cluster.sh)")
    folder = args.dir or Path("runs/sweeps") / f"{names[0]}-{datetime.now():%Y-%m-%d_%H-%M-%S}"
    folder.mkdir(parents=True, exist_ok=True)
    history_path = folder / "history.jsonl"
    history = read_history(history_path)
    if history:
        print(f"resuming {folder}: {len(history)} finished trial(s)")
    while len(history) < trials:
        batch = []
        for index in range(len(history), min(trials, len(history) + max(1, args.jobs))):
            batch.append(Trial(index, propose(method, dims, history, index, seed, int(spec.get("grid_points", 5)))))
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            done = list(pool.map(lambda t: run_trial(t, base, folder.resolve() / "trials" / f"trial_{t.index:03d}",
                                                     criterion, args.launcher, shlex.split(args.sbatch)), batch))
        with history_path.open("a") as handle:
            for t in done:
                handle.write(json.dumps({"index": t.index, "params": t.params, "criterion": t.criterion,
                                         "status": t.status, "run_dir": t.run_dir, **t.extra}) + "\n")
                crit = f"{t.criterion:.6g}" if t.criterion is not None else t.extra.get("error", t.status)
                print(f"trial {t.index}: {t.params} → {crit}", flush=True)
        history += done
        if all(t.status == "failed" for t in done):
            raise UserError(f"every trial of the batch failed ({done[0].extra.get('error', 'see the trial')}); "
                            f"fix the overrides — finished trials stay in {history_path}")
    table = summary_table(history, dims, criterion)
    (folder / "summary.md").write_text(f"# Sweep {names[0]} ({method}, seed {seed})\n\nBase overrides: "
                                       f"`{' '.join(base)}`\n\n{table}\n")
    best = min((t for t in history if t.criterion is not None), key=lambda t: t.criterion, default=None)
    print(table)
    if best is not None:
        print(f"\nbest: trial {best.index} {best.params} → {criterion} = {best.criterion:.6g} ({best.run_dir})")
    print(f"wrote {folder / 'summary.md'}")
    return 0
