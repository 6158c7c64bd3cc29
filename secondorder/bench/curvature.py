"""Cost of one curvature-vector product relative to one gradient evaluation (``make bench``, part 1).

    python -m secondorder.bench.curvature [--device cuda] [--models curves mnist faces ptb_char ptb_word]
                                          [--batches 1000 5000 7500] [--repeats 5] [--out results/bench]

For each model (:mod:`secondorder.bench.problems`: the thesis's autoencoders, the K-FAC-RNN paper's PTB LSTMs)
and curvature-batch size K (cases: rows, or predicted tokens), on random data with the model's matching loss:

* ``gradient`` — one forward + backward of the mean loss (the unit);
* ``ggn_cached`` — one GGN-vector product with the linearisation cached (what CG pays per iteration);
  ``ggn_cached_setup`` — building that cache (``torch.func.linearize`` + ``vjp``), paid once per CG run;
* ``ggn_layered`` / ``ggn_layered_setup`` — the closed-form R-pass products of layered feed-forward nets
  (:mod:`secondorder.curvature.layered`, what HF's ``curvature_mode=auto`` takes on the autoencoders), whose
  set-up is one forward pass; autoencoders only;
* ``ggn_uncached`` — ``jvp`` + ``vjp`` from scratch per product; ``ggn_double_backward`` — the R-op trick
  (J v as the derivative of a cached vjp; ``optimizer.curvature_mode=double_backward`` for HF), with its
  ``ggn_double_backward_setup`` (one forward pass and graph, no tracing);
* ``fisher`` — one Monte-Carlo Fisher-vector product (one sampled target per case, linearisation cached),
  ``fisher_uncached`` the same recomputed from scratch;
* ``hessian`` — one exact Hessian-vector product (forward-over-reverse);
* on CUDA, ``gradient_tf32`` and ``ggn_cached_tf32`` — the same with TensorFloat-32 matmuls, with the relative
  error ‖x_tf32 − x_fp32‖ / ‖x_fp32‖ of the result (the accuracy price of ``trainer.tf32=true``).

Each time is the median over ``repeats`` synchronised calls after one warm-up, with the min–max spread. It
writes ``<out>/<device>/curvature.{csv,md,json}`` with device, versions, commit and date.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from secondorder.bench.problems import MODELS, bench_batch, bench_problem, gradient_evaluation
from secondorder.bench.timing import add_device_and_models, environment, provenance_line, time_call, write_table
from secondorder.curvature import FisherOperator, GGNOperator, HessianOperator, detached_params
from secondorder.curvature.layered import LayeredGaussNewton, supports_layered
from secondorder.train import set_tf32

QUANTITIES = ("ggn_cached", "ggn_layered", "ggn_uncached", "ggn_double_backward", "fisher", "hessian")


def _relative_error(approximate: Any, exact: Any) -> float:
    a = torch.cat([t.reshape(-1).double() for t in approximate.values()])
    e = torch.cat([t.reshape(-1).double() for t in exact.values()])
    return float((a - e).norm() / e.norm())


def measure(model_name: str, batch_size: int, device: torch.device, repeats: int,
            methods: list[str]) -> list[dict]:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    problem = bench_problem(model_name, batch_size, device, pool=1)
    batch = bench_batch(problem, model_name, batch_size, device)
    model = problem.model
    params = detached_params(model)
    v = {k: torch.randn_like(p) for k, p in params.items()}

    def gradient() -> dict[str, torch.Tensor]:
        return gradient_evaluation(problem, batch)

    rows: dict[str, dict[str, float]] = {"gradient": time_call(gradient, device, repeats)}
    if "ggn_cached" in methods:
        op = GGNOperator(problem, batch, params, mode="linearize")
        rows["ggn_cached"] = time_call(lambda: op(v), device, repeats)
        rows["ggn_cached_setup"] = time_call(lambda: GGNOperator(problem, batch, params, mode="linearize"),
                                             device, max(1, repeats // 2))
        if device.type == "cuda":  # the accuracy and speed of TF32 on the two hot operations
            reference_gradient = {n: g.clone() for n, g in gradient().items()}
            reference_product = op(v)
            set_tf32(True)
            try:
                op32 = GGNOperator(problem, batch, params, mode="linearize")
                rows["gradient_tf32"] = time_call(gradient, device, repeats)
                rows["gradient_tf32"]["relative_error"] = _relative_error(gradient(), reference_gradient)
                rows["ggn_cached_tf32"] = time_call(lambda: op32(v), device, repeats)
                rows["ggn_cached_tf32"]["relative_error"] = _relative_error(op32(v), reference_product)
            finally:
                set_tf32(False)
    if "ggn_layered" in methods and supports_layered(problem):
        op = LayeredGaussNewton(problem, batch, params)
        rows["ggn_layered"] = time_call(lambda: op(v), device, repeats)
        rows["ggn_layered_setup"] = time_call(lambda: LayeredGaussNewton(problem, batch, params), device,
                                              max(1, repeats // 2))
    if "ggn_uncached" in methods:
        op = GGNOperator(problem, batch, params, mode="jvp")
        rows["ggn_uncached"] = time_call(lambda: op(v), device, repeats)
    if "ggn_double_backward" in methods:
        op = GGNOperator(problem, batch, params, mode="double_backward")
        rows["ggn_double_backward"] = time_call(lambda: op(v), device, repeats)
        rows["ggn_double_backward_setup"] = time_call(
            lambda: GGNOperator(problem, batch, params, mode="double_backward"), device, max(1, repeats // 2))
    if "fisher" in methods:
        generator = torch.Generator(device=device).manual_seed(0)
        op = FisherOperator(problem, batch, params, generator=generator)
        rows["fisher"] = time_call(lambda: op(v), device, repeats)
        op = FisherOperator(problem, batch, params, generator=generator, mode="jvp")
        rows["fisher_uncached"] = time_call(lambda: op(v), device, repeats)
    if "hessian" in methods:
        op = HessianOperator(problem, batch, params)
        rows["hessian"] = time_call(lambda: op(v), device, repeats)
    unit = rows["gradient"]["median_s"]
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    parameters = sum(p.numel() for p in model.parameters())
    cases = problem.cases(batch)
    return [{"model": model_name, "parameters": parameters, "K": cases, "quantity": name,
             "relative_error": float("nan"), **t, "ratio_to_gradient": t["median_s"] / unit,
             "peak_memory_bytes": peak} for name, t in rows.items()]


def to_markdown(frame: pd.DataFrame, env: dict[str, Any]) -> str:
    lines = [
        "# Curvature-vector products relative to one gradient evaluation",
        "",
        provenance_line(env),
        "Random data, float32 (TF32 off unless the row says tf32). Median of the repeats (min–max). K: cases "
        "(autoencoders) or predicted tokens (PTB LSTMs).",
        "Command: `python -m secondorder.bench.curvature " + env.get("arguments", "") + "`",
        "",
        "| model | params | K | quantity | median (s) | min–max (s) | × gradient | rel. error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in frame.itertuples(index=False):
        error = f"{row.relative_error:.1e}" if row.relative_error == row.relative_error else ""
        lines.append(f"| {row.model} | {row.parameters:,} | {row.K} | {row.quantity} | {row.median_s:.4g} | "
                     f"{row.min_s:.4g}–{row.max_s:.4g} | {row.ratio_to_gradient:.2f} | {error} |")
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench-curvature", description=__doc__.split("\n\n")[0])
    add_device_and_models(p, ["curves", "mnist", "faces", "ptb_char", "ptb_word"], MODELS)
    p.add_argument("--batches", nargs="+", type=int, default=[1000, 5000, 7500])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--methods", nargs="+", default=list(QUANTITIES), choices=QUANTITIES)
    p.add_argument("--model-batches", nargs="*", default=[], metavar="MODEL=K,K",
                   help="per-model batch sizes replacing --batches for that model (e.g. faces=1000)")
    p.add_argument("--out", type=Path, default=Path("results/bench"))
    return p


def main(argv: list[str] | None = None) -> Path:
    args = parser().parse_args(argv)
    device = torch.device(args.device)
    per_model = {}
    for item in args.model_batches:
        model, _, sizes = item.partition("=")
        try:
            per_model[model] = [int(b) for b in sizes.split(",")]
        except ValueError:
            raise SystemExit(f"bench-curvature: --model-batches {item!r}: write MODEL=K[,K…] (faces=1000)") from None
    rows = []
    for model_name in args.models:
        for batch in per_model.get(model_name, args.batches):
            rows += measure(model_name, batch, device, args.repeats, args.methods)
            print(f"curvature: done {model_name} K={batch}", flush=True)
    env = environment(device)
    env["arguments"] = " ".join(argv if argv is not None else sys.argv[1:])
    frame = pd.DataFrame(rows)
    folder = write_table(args.out, device, "curvature", frame, env, to_markdown(frame, env))
    print(to_markdown(frame, env))
    return folder


if __name__ == "__main__":
    main()
