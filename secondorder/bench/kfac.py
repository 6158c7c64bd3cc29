"""Per-iteration wall time of the Kronecker-factored methods relative to one Adam step and to one gradient
evaluation on the same batch (K-FAC issue item 6, KFRA issue item 6).

    python -m secondorder.bench.kfac [--device cuda] [--models curves mnist faces] [--batch 1000]
                                     [--iterations 20] [--methods kfac kfac_tridiag kfra kflr] [--out results/bench]

For each H&S autoencoder, random inputs, a fixed mini-batch size m (1000: K-FAC's first batch, KFRA's fixed
batch) and each method's paper settings otherwise (its ``conf/optimizer/*.yaml``), it runs ``iterations``
steps through the optimisers' real ``step`` after 3 warm-up steps — for K-FAC one inverse period T₃ = 20, so the
amortised time includes one refresh — and the same number of Adam steps and plain gradient evaluations. KFLR
back-propagates one column per output (784 / 625 for the autoencoders): it is timed over fewer iterations
(``--kflr-iterations``). It writes ``<out>/<device>/kfac.{csv,md,json}``.
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

CONF = Path(__file__).resolve().parents[1] / "conf" / "optimizer"


def method_config(method: str, m: int) -> KFACConfig:
    """The method's YAML (with its defaults chain) as a config, at a fixed batch of m."""
    from omegaconf import OmegaConf

    node = OmegaConf.load(CONF / f"{method}.yaml")
    parents = [p for p in node.pop("defaults", []) if p != "_self_"]
    merged = OmegaConf.merge(*(OmegaConf.structured(method_config(p, m)) for p in parents), node) if parents \
        else OmegaConf.merge(OmegaConf.structured(KFACConfig), node)
    config = OmegaConf.to_object(merged)
    config.batch_schedule, config.batch_size = "fixed", m
    return config


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


def measure(model_name: str, m: int, iterations: int, method: str, device: torch.device) -> dict:
    problem = _problem(model_name, m, device)
    adam = Adam(problem, AdamConfig(batch_size=m))
    _time_steps(adam, problem, 0, 3, device)
    adam_step = _time_steps(adam, problem, 3, iterations, device)
    batch = problem.make_sampler(seed=0).next(m)

    def gradient() -> None:
        for p in problem.model.parameters():
            p.grad = None
        problem.objective(batch).backward()

    gradient()
    synchronise(device)
    t0 = time.perf_counter()
    for _ in range(iterations):
        gradient()
    synchronise(device)
    gradient_s = (time.perf_counter() - t0) / iterations
    problem = _problem(model_name, m, device)
    optimizer = KFAC(problem, method_config(method, m))
    _time_steps(optimizer, problem, 0, 3, device)  # k ≤ 3: K-FAC's start-up refreshes
    step = _time_steps(optimizer, problem, 3, iterations, device)  # k = 4 … : one T₃ refresh for K-FAC
    return {"model": model_name, "parameters": sum(p.numel() for p in problem.model.parameters()), "m": m,
            "method": method, "iterations": iterations, "gradient_s": gradient_s, "adam_step_s": adam_step,
            "step_s": step, "ratio_to_adam": step / adam_step, "ratio_to_gradient": step / gradient_s}


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="bench-kfac", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=["curves", "mnist", "faces"], choices=list(AUTOENCODERS))
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--methods", nargs="+", default=["kfac", "kfac_tridiag", "kfra", "kflr"])
    parser.add_argument("--kflr-iterations", type=int, default=2)
    parser.add_argument("--kflr-models", nargs="*", default=["tiny", "curves", "mnist"],
                        help="models on which KFLR is timed (one backward pass per output: slow on big nets)")
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    rows = []
    for model_name in args.models:
        for method in args.methods:
            if method == "kflr" and model_name not in args.kflr_models:
                continue
            count = args.kflr_iterations if method == "kflr" else args.iterations
            rows.append(measure(model_name, args.batch, count, method, device))
            print(f"done {model_name} {method}", flush=True)
    env = environment(device)
    env["arguments"] = " ".join(argv if argv is not None else __import__("sys").argv[1:])
    folder = args.out / device_slug(device)
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(folder / "kfac.csv", index=False)
    (folder / "kfac.json").write_text(json.dumps(env, indent=2) + "\n")
    lines = [
        "# Kronecker-factored methods: iteration time relative to an Adam step and to a gradient evaluation",
        "",
        f"Device: {env['device']}; torch {env['torch']}; CUDA {env['cuda']}; threads {env['threads']}; commit "
        f"{(env.get('git_commit') or 'unknown')[:10]}{' (dirty)' if env.get('git_dirty') else ''}; {env['date']}.",
        f"Random inputs, float32, fixed m; mean per step over {args.iterations} steps (KFLR: "
        f"{args.kflr_iterations}) after 3 warm-up steps, so K-FAC's inverse refresh (T₃ = 20) is amortised in; "
        "KFRA/KFLR re-solve every step; KFLR (one backward pass per output) is timed only on "
        f"{', '.join(args.kflr_models)}.",
        "Command: `python -m secondorder.bench.kfac " + env["arguments"] + "`",
        "",
        "| model | params | m | method | gradient (s) | Adam step (s) | step (s) | × Adam | × gradient | × K-FAC |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    kfac_time = {r["model"]: r["step_s"] for r in rows if r["method"] == "kfac"}
    for r in rows:
        versus = f"{r['step_s'] / kfac_time[r['model']]:.2f}" if r["model"] in kfac_time else "—"
        lines.append(f"| {r['model']} | {r['parameters']:,} | {r['m']} | {r['method']} | {r['gradient_s']:.4g} | "
                     f"{r['adam_step_s']:.4g} | {r['step_s']:.4g} | {r['ratio_to_adam']:.2f} | "
                     f"{r['ratio_to_gradient']:.2f} | {versus} |")
    (folder / "kfac.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return folder


if __name__ == "__main__":
    main()
