"""Data-parallel scaling: steps per second and bytes communicated per step at 1 and N processes (``make bench``,
part 4).

    python -m secondorder.bench.data_parallel [--ranks 1 2] [--model curves] [--batch 1000 10000] [--steps 43]
                                              [--methods adam kfac …] [--device cpu|cuda] [--out results/bench]

Each row is a real ``train`` run (``trainer.distributed``, launched the way ``torchrun --nproc_per_node=N`` launches
it: the same environment variables) of one method on one model with every batch at m cases (K-FAC's schedule fixed
at m; HF's gradient batch m), evaluation and checkpoints out of the way. From the run's ``metrics.csv`` (one row
per iteration) the step time is the mean over the iterations after the warm-up (K-FAC's start-up refreshes at
k ≤ 3; for HF the first step), so a window of 20 K-FAC steps holds one inverse refresh and its γ search; from
its ``summary.json`` the bytes each process contributed to collectives (payload, not the transport's own
traffic) per step, and the number of collectives per step.

Threads: on the CPU one process gets every core and each of N processes cores / N (at least one), so the rows
compare the same machine used two ways; on GPUs each process takes one GPU (N ≤ the GPUs present — with fewer,
the larger N are skipped and the table says so). ``kfac:parallel_inverses=every_rank`` is K-FAC with every rank
inverting every factor (no broadcast of the decompositions), beside the default ``spread``;
``kfra:parallel_inverses=every_rank`` likewise for KFRA's Cholesky solves (spread: each layer's update block
broadcast at every application).

Writes ``<out>/<device>/data_parallel.{csv,md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from secondorder.bench.timing import environment, provenance_line, write_table

DEFAULT_METHODS = ["adam", "kfac", "kfac:parallel_inverses=every_rank", "kfra", "kfra:parallel_inverses=every_rank",
                   "hf"]
#: iterations left out of the step time: K-FAC's refreshes at k ≤ 3 (and HF's first, longer CG run)
WARMUP = {"hf": 1}
DEFAULT_WARMUP = 3


def method_overrides(method: str, m: int) -> list[str]:
    """``train`` overrides for ``name[:key=value,…]`` with every batch at m cases."""
    name, _, settings = method.partition(":")
    overrides = [f"optimizer={name}"]
    if name == "hf":
        overrides.append(f"optimizer.gradient_batch={m}")
    else:
        overrides.append(f"optimizer.batch_size={m}")
    if name in ("kfac", "kfac_tridiag", "kfra", "kflr"):
        overrides.append("optimizer.batch_schedule=fixed")
    overrides += [f"optimizer.{item}" for item in settings.split(",") if item]
    return overrides


def free_port() -> int:
    """A TCP port free on this host now (the rendezvous of a local launch)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_command() -> list[str]:
    """This environment's ``train`` console script (or the module, where the script is not installed)."""
    script = Path(sys.executable).parent / "train"
    found = str(script) if script.exists() else shutil.which("train")
    return [found] if found else [sys.executable, "-c", "from secondorder.cli import train; train()"]


def start(ranks: int, args: list[str], threads: int, cwd: Path) -> list[subprocess.Popen[str]]:
    """``train args`` started on ``ranks`` local processes with the variables ``torchrun --nproc_per_node=ranks``
    sets (one process: none of them), ``threads`` BLAS threads each; their stdout and stderr piped."""
    port = str(free_port())
    processes = []
    for rank in range(ranks):
        env = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        if ranks > 1:
            env.update(RANK=str(rank), WORLD_SIZE=str(ranks), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                       MASTER_PORT=port)
        processes.append(subprocess.Popen([*train_command(), *args], cwd=cwd, env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    return processes


def launch(ranks: int, args: list[str], threads: int, cwd: Path, timeout: float) -> None:
    """``train args`` on ``ranks`` processes (:func:`start`), waited for; raises with the first error."""
    errors = []
    for process in start(ranks, args, threads, cwd):
        _, err = process.communicate(timeout=timeout)
        if process.returncode != 0:
            errors.append(err.strip().splitlines()[-1] if err.strip() else f"exit {process.returncode}")
    if errors:
        raise RuntimeError(f"train on {ranks} process(es) {' '.join(args)} failed: {errors[0]}")


def measure(method: str, ranks: int, model: str, m: int, steps: int, device: str, data_dir: str,
            cwd: Path, timeout: float, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """One run of ``steps`` iterations on ``ranks`` processes; its step time and communication."""
    cores = os.cpu_count() or 1
    threads = max(1, cores // ranks) if device == "cpu" else 1
    run_dir = cwd / f"{method.replace(':', '_').replace('=', '-').replace(',', '_')}-m{m}-{ranks}"
    args = [f"dataset={model}", *method_overrides(method, m), f"trainer.max_steps={steps}",
            "trainer.eval_every=1000000", f"trainer.checkpoint_every={10 * steps}", "trainer.log_every=1",
            "trainer.progress=false", f"trainer.device={device}", f"run_dir={run_dir}", f"data_dir={data_dir}",
            *extra]
    launch(ranks, args, threads, cwd, timeout)
    metrics = pd.read_csv(run_dir / "metrics.csv").drop_duplicates("iteration", keep="last")
    summary = json.loads((run_dir / "summary.json").read_text())
    warmup = WARMUP.get(method.partition(":")[0], DEFAULT_WARMUP)
    timed = metrics[metrics.iteration >= warmup].sort_values("iteration")
    window = timed.iteration.iloc[-1] - timed.iteration.iloc[0]
    step_s = (timed.wall_time_s.iloc[-1] - timed.wall_time_s.iloc[0]) / window
    traffic = summary.get("communication") or {"collectives": 0, "payload_bytes": 0}
    iterations = int(summary["iteration"])
    return {"model": model, "method": method, "m": m, "ranks": ranks, "threads_per_rank": threads,
            "timed_steps": int(window), "step_s": step_s, "steps_per_s": 1.0 / step_s,
            "bytes_per_step": traffic["payload_bytes"] / iterations,
            "collectives_per_step": traffic["collectives"] / iterations}


def add_speedups(frame: pd.DataFrame) -> pd.DataFrame:
    """``speedup``: steps per second relative to the same method and batch on one process."""
    one = frame[frame.ranks == 1].set_index(["method", "m"]).steps_per_s
    frame = frame.copy()
    frame["speedup"] = [one[(row.method, row.m)] and row.steps_per_s / one[(row.method, row.m)]
                        if (row.method, row.m) in one.index else float("nan") for row in frame.itertuples()]
    return frame


def markdown(frame: pd.DataFrame, env: dict[str, Any], skipped: list[int], command: str) -> str:
    lines = ["# Data-parallel steps: 1 and N processes", "", provenance_line(env), "",
             f"Written by `{command}`. Each row is a `train` run launched as torchrun launches it "
             "(`trainer.distributed`); step time = mean over the iterations after the warm-up; bytes = the payload "
             "each process contributed to collectives per step (a ring all-reduce moves about twice that); CPU "
             "threads: all cores for one process, cores / N for each of N.", ""]
    if skipped:
        lines += [f"**Not run: {', '.join(map(str, skipped))} processes — fewer GPUs than processes here.**", ""]
    lines += ["| model | method | m | processes | threads each | s / step | steps / s | speed-up | bytes / step | "
              "collectives / step |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in frame.itertuples():
        lines.append(f"| {r.model} | {r.method} | {r.m} | {r.ranks} | {r.threads_per_rank} | {r.step_s:.4g} | "
                     f"{r.steps_per_s:.3g} | {r.speedup:.2f}× | {r.bytes_per_step:.3g} | "
                     f"{r.collectives_per_step:.3g} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(prog="bench-data-parallel", description=__doc__.split("\n\n")[0])
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--model", default="curves")
    p.add_argument("--batch", type=int, nargs="+", default=[1000, 10000],
                   help="m: cases per batch (the union's); each m its own rows")
    p.add_argument("--steps", type=int, default=43,
                   help="iterations per run: 3 of warm-up, then two windows of 20 (each with one inverse refresh)")
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--data-dir", default=str(Path(os.environ.get("SECONDORDER_DATA", "data")).resolve()),
                   help="dataset files and generated-data cache (default: $SECONDORDER_DATA or ./data)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    p.add_argument("--set", nargs="*", default=[], help="further train overrides for every run, e.g. model sizes")
    p.add_argument("--out", type=Path, default=Path("results/bench"))
    args = p.parse_args(argv)
    device = torch.device(args.device)
    available = torch.cuda.device_count() if device.type == "cuda" else None
    ranks = [r for r in args.ranks if available is None or r <= available]
    skipped = [r for r in args.ranks if r not in ranks]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-dp-") as scratch:
        for m in args.batch:
            for method in args.methods:
                for n in ranks:
                    steps = args.steps if method.partition(":")[0] != "hf" else max(4, args.steps // 4)
                    print(f"  {method}, m = {m}, on {n} process(es)…", flush=True)
                    rows.append(measure(method, n, args.model, m, steps, device.type, args.data_dir,
                                        Path(scratch), args.timeout, tuple(args.set)))
    frame = add_speedups(pd.DataFrame(rows))
    env = {**environment(device), "cores": os.cpu_count(), "gpus": available}
    command = "python -m secondorder.bench.data_parallel " + " ".join(argv if argv is not None else sys.argv[1:])
    folder = write_table(args.out, device, "data_parallel", frame, env, markdown(frame, env, skipped,
                                                                                  command.strip()))
    print((folder / "data_parallel.md").read_text())
    return folder


if __name__ == "__main__":
    main()
