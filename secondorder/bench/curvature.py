"""Cost of one curvature-vector product relative to one gradient evaluation (issue: curvature engine).

    python -m secondorder.bench.curvature [--device cuda] [--models curves mnist faces] [--batches 1000 5000]
                                          [--repeats 5] [--out results/bench]

For each H&S autoencoder (thesis Table 4.2) and curvature-batch size K it times, on random inputs in [0, 1]
with the paper's matching loss (logistic + cross-entropy; FACES identity + squared error):

* ``gradient`` — one forward + backward of the mean loss (the unit);
* ``ggn_cached`` — one GGN-vector product with the linearisation cached (what CG pays per iteration);
  ``ggn_cached_setup`` — building that cache (``torch.func.linearize`` + ``vjp``), paid once per CG run;
* ``ggn_uncached`` — ``jvp`` + ``vjp`` from scratch per product; ``ggn_double_backward`` — the R-op trick;
* ``hessian`` — one exact Hessian-vector product (forward-over-reverse).

It writes ``<out>/<device>/curvature.csv`` and ``curvature.md`` (median seconds with min–max spread, and the
ratio to a gradient evaluation) with device, versions, commit and date.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from secondorder.bench.timing import device_slug, environment, time_call
from secondorder.curvature import GGNOperator, HessianOperator, detached_params
from secondorder.data.splits import DataSplits
from secondorder.losses import get_loss
from secondorder.metrics import reconstruction_sse
from secondorder.models import AutoencoderConfig, build_model
from secondorder.problems import ObjectiveConfig, SupervisedProblem

AUTOENCODERS = {
    "curves": ([784, 400, 200, 100, 50, 25, 6], "sigmoid_bce"),
    "mnist": ([784, 1000, 500, 250, 30], "sigmoid_bce"),
    "faces": ([625, 2000, 1000, 500, 30], "squared_error"),
    "tiny": ([64, 16, 4], "sigmoid_bce"),  # for tests of this script
}


def measure(model_name: str, batch: int, device: torch.device, repeats: int, methods: list[str]) -> list[dict]:
    dims, loss_name = AUTOENCODERS[model_name]
    model = build_model(AutoencoderConfig(encoder_dims=dims), seed=0).to(device)
    x = torch.rand(batch, dims[0], generator=torch.Generator().manual_seed(0)).to(device)
    data = DataSplits(model_name, x, x, x, x, "random", "random inputs", True)
    problem = SupervisedProblem(model, get_loss(loss_name), data, reconstruction_sse, ObjectiveConfig())
    params = detached_params(model)
    v = {k: torch.randn_like(p) for k, p in params.items()}
    batch_data = (x, x)

    def gradient() -> None:
        for p in model.parameters():
            p.grad = None
        problem.objective(batch_data).backward()

    timings: dict[str, dict[str, float]] = {"gradient": time_call(gradient, device, repeats)}
    if "ggn_cached" in methods:
        op = GGNOperator(problem, batch_data, params, mode="linearize")
        timings["ggn_cached"] = time_call(lambda: op(v), device, repeats)
        timings["ggn_cached_setup"] = time_call(
            lambda: GGNOperator(problem, batch_data, params, mode="linearize"), device, max(1, repeats // 2))
    if "ggn_uncached" in methods:
        op = GGNOperator(problem, batch_data, params, mode="jvp")
        timings["ggn_uncached"] = time_call(lambda: op(v), device, repeats)
    if "ggn_double_backward" in methods:
        op = GGNOperator(problem, batch_data, params, mode="double_backward")
        timings["ggn_double_backward"] = time_call(lambda: op(v), device, repeats)
    if "hessian" in methods:
        op = HessianOperator(problem, batch_data, params)
        timings["hessian"] = time_call(lambda: op(v), device, repeats)
    unit = timings["gradient"]["median_s"]
    parameters = sum(p.numel() for p in model.parameters())
    return [{"model": model_name, "parameters": parameters, "K": batch, "quantity": name, **t,
             "ratio_to_gradient": t["median_s"] / unit} for name, t in timings.items()]


def to_markdown(frame: pd.DataFrame, env: dict[str, Any]) -> str:
    lines = [
        "# Curvature-vector products relative to one gradient evaluation",
        "",
        f"Device: {env['device']}; torch {env['torch']}; CUDA {env['cuda']}; threads {env['threads']}; "
        f"commit {(env.get('git_commit') or 'unknown')[:10]}{' (dirty)' if env.get('git_dirty') else ''}; "
        f"{env['date']}. Random inputs, float32, TF32 {env['tf32']}. Median of the repeats (min–max).",
        "Command: `python -m secondorder.bench.curvature " + env.get("arguments", "") + "`",
        "",
        "| model | params | K | quantity | median (s) | min–max (s) | × gradient |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in frame.itertuples(index=False):
        lines.append(f"| {row.model} | {row.parameters:,} | {row.K} | {row.quantity} | {row.median_s:.4g} | "
                     f"{row.min_s:.4g}–{row.max_s:.4g} | {row.ratio_to_gradient:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="bench-curvature", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=["curves", "mnist", "faces"], choices=list(AUTOENCODERS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1000, 5000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--methods", nargs="+",
                        default=["ggn_cached", "ggn_uncached", "ggn_double_backward", "hessian"])
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    rows = []
    for model_name in args.models:
        for batch in args.batches:
            rows += measure(model_name, batch, device, args.repeats, args.methods)
            print(f"done {model_name} K={batch}", flush=True)
    env = environment(device)
    env["arguments"] = " ".join(argv if argv is not None else __import__("sys").argv[1:])
    folder = args.out / device_slug(device)
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(folder / "curvature.csv", index=False)
    (folder / "curvature.json").write_text(json.dumps(env, indent=2) + "\n")
    (folder / "curvature.md").write_text(to_markdown(frame, env))
    print(to_markdown(frame, env))
    return folder


if __name__ == "__main__":
    main()
