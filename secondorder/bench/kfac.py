"""Per-iteration wall time of K-FAC relative to one Adam step on the same batch (K-FAC issue, item 6).

    python -m secondorder.bench.kfac [--device cuda] [--models curves mnist faces] [--batch 1000]
                                     [--iterations 20] [--approximations blockdiag tridiag] [--out results/bench]

For each H&S autoencoder, random inputs, a fixed mini-batch size m (the schedule's first size, 1000) and the
paper's settings otherwise, it runs ``iterations`` K-FAC steps — one full inverse period T₃ = 20, so the
amortised time includes one refresh of the inverses (and the k ≤ 3 refreshes are excluded by warming up
first) — and the same number of Adam steps, through the optimisers' real ``step``. It writes
``<out>/<device>/kfac.{csv,md,json}`` with median per-step seconds, the ratio K-FAC / Adam, device and versions.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import torch

from secondorder.bench.curvature import AUTOENCODERS
from secondorder.bench.timing import device_slug, environment, synchronise
from secondorder.data.splits import DataSplits
from secondorder.losses import get_loss
from secondorder.metrics import reconstruction_sse
from secondorder.models import AutoencoderConfig, build_model
from secondorder.optim.first_order import Adam, AdamConfig
from secondorder.optim.kfac import KFAC, KFACConfig
from secondorder.problems import ObjectiveConfig, SupervisedProblem


def _problem(model_name: str, m: int, device: torch.device) -> SupervisedProblem:
    dims, loss_name = AUTOENCODERS[model_name]
    model = build_model(AutoencoderConfig(encoder_dims=dims), seed=0).to(device)
    x = torch.rand(4 * m, dims[0], generator=torch.Generator().manual_seed(0)).to(device)
    data = DataSplits(model_name, x, x, x, x, "random", "random inputs", True)
    return SupervisedProblem(model, get_loss(loss_name), data, reconstruction_sse, ObjectiveConfig(l2=1e-5))


def _time_steps(optimizer, problem: SupervisedProblem, start: int, count: int, device: torch.device) -> float:
    sampler = problem.make_sampler(seed=0)
    synchronise(device)
    t0 = time.perf_counter()
    for k in range(start, start + count):
        optimizer.step(k, sampler)
    synchronise(device)
    return (time.perf_counter() - t0) / count


def measure(model_name: str, m: int, iterations: int, approximation: str, device: torch.device) -> dict:
    problem = _problem(model_name, m, device)
    adam = Adam(problem, AdamConfig(batch_size=m))
    _time_steps(adam, problem, 0, 3, device)
    adam_step = _time_steps(adam, problem, 3, iterations, device)
    problem = _problem(model_name, m, device)
    kfac = KFAC(problem, KFACConfig(approximation=approximation, batch_schedule="fixed", batch_size=m))
    _time_steps(kfac, problem, 0, 3, device)  # k ≤ 3: the start-up refreshes
    kfac_step = _time_steps(kfac, problem, 3, iterations, device)  # k = 4 … 23: one T₃ refresh (k = 20)
    return {"model": model_name, "parameters": sum(p.numel() for p in problem.model.parameters()), "m": m,
            "approximation": approximation, "iterations": iterations, "adam_step_s": adam_step,
            "kfac_step_s": kfac_step, "ratio": kfac_step / adam_step}


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="bench-kfac", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=["curves", "mnist", "faces"], choices=list(AUTOENCODERS))
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--approximations", nargs="+", default=["blockdiag", "tridiag"])
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    rows = []
    for model_name in args.models:
        for approximation in args.approximations:
            rows.append(measure(model_name, args.batch, args.iterations, approximation, device))
            print(f"done {model_name} {approximation}", flush=True)
    env = environment(device)
    env["arguments"] = " ".join(argv if argv is not None else __import__("sys").argv[1:])
    folder = args.out / device_slug(device)
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(folder / "kfac.csv", index=False)
    (folder / "kfac.json").write_text(json.dumps(env, indent=2) + "\n")
    lines = [
        "# K-FAC iteration time relative to one Adam step on the same batch",
        "",
        f"Device: {env['device']}; torch {env['torch']}; CUDA {env['cuda']}; threads {env['threads']}; commit "
        f"{(env.get('git_commit') or 'unknown')[:10]}{' (dirty)' if env.get('git_dirty') else ''}; {env['date']}.",
        f"Random inputs, float32, fixed m; mean per step over {args.iterations} steps after 3 warm-up steps, "
        "so one inverse refresh (T₃ = 20) is amortised in.",
        "Command: `python -m secondorder.bench.kfac " + env["arguments"] + "`",
        "",
        "| model | params | m | approximation | Adam step (s) | K-FAC step (s) | K-FAC / Adam |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['parameters']:,} | {r['m']} | {r['approximation']} | "
                     f"{r['adam_step_s']:.4g} | {r['kfac_step_s']:.4g} | {r['ratio']:.2f} |")
    (folder / "kfac.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return folder


if __name__ == "__main__":
    main()
