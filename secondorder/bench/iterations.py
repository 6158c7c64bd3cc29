"""Per-iteration wall time of every optimiser relative to one Adam step on the same batch, split into its parts
(``make bench``, part 2).

    python -m secondorder.bench.iterations [--device cuda] [--models curves mnist faces ptb_char ptb_word]
                                           [--batch 1000] [--repeats 5] [--methods …] [--out results/bench]

For each model (:mod:`secondorder.bench.problems`, random data, ℓ2 η = 1e-5) and each optimiser with its own
``conf/optimizer/<name>.yaml`` settings, every batch size set to the benchmark's m cases (K-FAC's schedule fixed
at m; HF's gradient batch m, its curvature batch m / ``curvature_chunks`` as configured; language models: m
predicted tokens, i.e. ⌈m / BPTT⌉ windows, and HF without preconditioner or chunks, as a token stream has no
per-case split), it runs the optimiser's real ``step``:

* 3 warm-up steps (K-FAC's start-up refreshes), then ``repeats`` windows of consecutive steps, each window as
  long as the method's refresh period (``inverse_period`` / ``stats_period``; 20 for K-FAC, so its inverse
  refresh and γ search are amortised in exactly once) or 5 steps (2 for HF and NCG, whose steps are long);
  the step time is the median over windows of the window's mean, with the min–max spread;
* one more window with the step's phase clock on (:mod:`secondorder.optim.phases`): seconds per step spent
  in each part — gradient, statistics, inverses, proposal, rescaling, linearisation, cg, backtracking, damping,
  line_search, update — and ``other`` (the rest); HF's CG iterations per step are reported beside it;
* peak GPU memory of the model, data and optimiser (CUDA only).

A method named ``<name>+compile`` (``adam+compile``, ``hf+compile`` by default) runs with the model's forward
compiled as ``trainer.compile=true`` does; its warm-up steps pay the compilation. ``<name>:key=value,…`` changes
settings of the method's YAML, e.g. ``kfac:fisher_fraction=0.25`` (the thesis's τ₂ for the exact-F re-scaling).

Adam's step and one plain gradient evaluation on the same model and batch are the units. Writes
``<out>/<device>/iterations.{csv,md,json}``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from secondorder.bench.problems import (
    MODELS,
    batch_size_for,
    bench_batch,
    bench_problem,
    gradient_evaluation,
    is_language_model,
)
from secondorder.bench.timing import (
    add_device_and_models,
    environment,
    provenance_line,
    synchronise,
    time_call,
    write_table,
)
from secondorder.composition import compose_run
from secondorder.errors import ConfigError
from secondorder.optim import OPTIMIZERS
from secondorder.optim.phases import PARTS
from secondorder.train import compile_model

FEEDFORWARD = ("adam", "sgd", "momentum", "nesterov", "centered_sgd", "acp", "ncg", "hf", "kfac", "kfac_tridiag",
               "kfra", "kflr", "adam+compile", "hf+compile")
RECURRENT = ("adam", "sgd", "momentum", "hf", "kfac_rnn", "adam+compile")
WARMUP = 3
COMPILED = "+compile"  # a method name ending so runs with the model's forward compiled (trainer.compile=true)


def split_method(method: str) -> tuple[str, bool, list[str]]:
    """(optimiser name, compiled?, changed settings as ``key=value``) of a benchmark method such as
    ``adam+compile`` or ``kfac:fisher_fraction=0.25,inverse_period=10`` (settings of its YAML)."""
    head, colon, changes = method.partition(":")
    compiled = head.endswith(COMPILED)
    name = head.removesuffix(COMPILED)
    if name not in OPTIMIZERS:
        raise SystemExit(f"bench-iterations: unknown method {method!r}; use one of {', '.join(OPTIMIZERS)} "
                         f"(optionally with {COMPILED} and :key=value,…)")
    if compiled and not OPTIMIZERS[name].compile_ok:
        raise SystemExit(f"bench-iterations: {name} reads layers through module hooks and cannot run compiled; "
                         f"drop {COMPILED}")
    items = changes.split(",") if colon else []
    keys = [item.split("=", 1)[0] for item in items]
    if any("=" not in item or not item.split("=", 1)[0] for item in items) or len(set(keys)) != len(keys):
        raise SystemExit(f"bench-iterations: {method!r}: write the changes as :key=value,key=value, each key once")
    return name, compiled, items


def optimizer_config(method: str, model: str, m: int, changes: list[str] = ()) -> Any:
    """The method's YAML settings (composed and validated as ``train optimizer=<method> optimizer.<change>…``
    would) with every batch at m cases."""
    dataset = "ptb_char" if is_language_model(model) else "curves"
    try:
        cfg = compose_run([f"optimizer={method}", f"dataset={dataset}",
                           *(f"optimizer.{change}" for change in changes)]).optimizer
    except (ConfigError, HydraException, OmegaConfBaseException) as exc:
        raise SystemExit(f"bench-iterations: {method} with {', '.join(changes)}: {str(exc).splitlines()[0]}") from None
    batch = batch_size_for(model, m)
    for field in ("batch_size", "stats_batch_size", "gradient_batch"):
        if hasattr(cfg, field):
            setattr(cfg, field, batch)
    if hasattr(cfg, "batch_schedule"):
        cfg.batch_schedule = "fixed"
    if method == "hf" and is_language_model(model):  # a token stream has no per-case split (diagonal, chunks)
        cfg.preconditioner, cfg.curvature_chunks = "none", 1
    return cfg


def window_length(cfg: Any) -> int:
    period = getattr(cfg, "inverse_period", None) or getattr(cfg, "stats_period", None)
    if period and period > 1:
        return int(period)
    return 2 if cfg.name in ("hf", "ncg") else 5


def _run_window(optimizer: Any, sampler: Any, start: int, count: int, device: torch.device) -> tuple[float, list]:
    synchronise(device)
    t0 = time.perf_counter()
    results = [optimizer.step(k, sampler) for k in range(start, start + count)]
    synchronise(device)
    return (time.perf_counter() - t0) / count, results


def time_method(method: str, model: str, m: int, repeats: int, device: torch.device) -> dict[str, Any]:
    """Median step time over ``repeats`` windows, the per-part split of one more window, costs and memory."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    name, compiled, changes = split_method(method)
    cfg = optimizer_config(name, model, m, changes)
    problem = bench_problem(model, m, device, l2=1e-5)
    if compiled:  # the warm-up steps pay the compilation
        compile_model(problem.model, "true")
    optimizer = OPTIMIZERS[name](problem, cfg)
    sampler = problem.make_sampler(seed=0)
    window = window_length(cfg)
    k = 0
    _run_window(optimizer, sampler, k, WARMUP, device)
    k += WARMUP
    samples = []
    for _ in range(repeats):
        seconds, _ = _run_window(optimizer, sampler, k, window, device)
        samples.append(seconds)
        k += window
    optimizer.phases.enabled = True
    optimizer.phases.reset()
    instrumented, results = _run_window(optimizer, sampler, k, window, device)
    optimizer.phases.enabled = False
    parts = {f"part_{name}_s": s / window for name, s in optimizer.phases.seconds.items()}
    parts["part_other_s"] = max(0.0, instrumented - sum(parts.values()))
    cg = [r.stats["cg_iters"] for r in results if "cg_iters" in r.stats]
    return {
        "model": model, "method": method, "m": m, "cases": problem.cases(bench_batch(problem, model, m, device)),
        "parameters": sum(p.numel() for p in problem.model.parameters()), "window": window, "repeats": repeats,
        "step_s": statistics.median(samples), "step_min_s": min(samples), "step_max_s": max(samples),
        "instrumented_step_s": instrumented, **parts,
        "grad_evals_per_step": sum(r.costs.grad_evals for r in results) / window,
        "products_per_step": sum(r.costs.curvature_products for r in results) / window,
        "cg_iters_per_step": statistics.mean(cg) if cg else math.nan,
        "peak_memory_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
    }


def gradient_time(model: str, m: int, repeats: int, device: torch.device) -> dict[str, float]:
    problem = bench_problem(model, m, device, l2=1e-5, pool=1)
    batch = bench_batch(problem, model, m, device)
    return time_call(lambda: gradient_evaluation(problem, batch), device, repeats)


def measure(model: str, m: int, methods: list[str], repeats: int, device: torch.device,
            log=print) -> list[dict[str, Any]]:
    gradient = gradient_time(model, m, max(3, repeats), device)
    adam = time_method("adam", model, m, repeats, device)
    rows = []
    for method in methods:
        row = adam if method == "adam" else time_method(method, model, m, repeats, device)
        row = {**row, "gradient_s": gradient["median_s"], "adam_step_s": adam["step_s"],
               "ratio_to_adam": row["step_s"] / adam["step_s"],
               "ratio_to_gradient": row["step_s"] / gradient["median_s"]}
        rows.append(row)
        log(f"iterations: {model} m={m} {method}: {row['step_s']:.4g} s/step = {row['ratio_to_adam']:.2f}× Adam")
    return rows


def _fmt(value: float | None) -> str:
    return "" if value is None or value != value or value == 0 else f"{value:.3g}"


def to_markdown(frame: pd.DataFrame, env: dict[str, Any]) -> str:
    parts = [p for p in (*PARTS, "other") if f"part_{p}_s" in frame and frame[f"part_{p}_s"].fillna(0).gt(0).any()]
    lines = [
        "# Optimiser iterations relative to one Adam step on the same batch, split into parts",
        "",
        provenance_line(env),
        "Random data, float32, ℓ2 1e-5, each method's own YAML settings with every batch at m cases (language "
        "models: ⌈m / BPTT⌉ windows). Step time: median over the repeats of a window's mean step time (window = "
        "the method's refresh period, so refreshes are amortised in), min–max beside it. Parts: seconds per "
        "step from one more window timed part by part (synchronised); `linearisation`: HF building its cached "
        "curvature operator once per CG run.",
        "Command: `python -m secondorder.bench.iterations " + env.get("arguments", "") + "`",
        "",
        "| model | m | method | step (s) | min–max (s) | × Adam | × gradient | " + " | ".join(parts)
        + " | CG its/step | peak GPU memory |",
        "|---|---|---|---|---|---|---|" + "---|" * len(parts) + "---|---|",
    ]
    for r in frame.to_dict("records"):
        memory = f"{r['peak_memory_bytes'] / 2**30:.2f} GiB" if r.get("peak_memory_bytes") == r.get(
            "peak_memory_bytes") and r.get("peak_memory_bytes") is not None else "— (CPU)"
        cells = [_fmt(r.get(f"part_{p}_s")) for p in parts]
        lines.append(f"| {r['model']} | {r['m']} | {r['method']} | {r['step_s']:.4g} | {r['step_min_s']:.3g}–"
                     f"{r['step_max_s']:.3g} | {r['ratio_to_adam']:.2f} | {r['ratio_to_gradient']:.2f} | "
                     + " | ".join(cells) + f" | {_fmt(r['cg_iters_per_step'])} | {memory} |")
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench-iterations", description=__doc__.split("\n\n")[0])
    add_device_and_models(p, ["curves", "mnist", "faces", "ptb_char", "ptb_word"], MODELS)
    p.add_argument("--batch", type=int, default=1000, help="m: cases per batch (tokens for language models)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--methods", nargs="+", default=None,
                   help=f"default: {' '.join(FEEDFORWARD)} (autoencoders), {' '.join(RECURRENT)} (LSTMs)")
    p.add_argument("--skip", nargs="*", default=["kflr@faces"], metavar="METHOD@MODEL",
                   help="pairs left out (KFLR back-propagates one column per output: 625 on FACES)")
    p.add_argument("--out", type=Path, default=Path("results/bench"))
    return p


def main(argv: list[str] | None = None) -> Path:
    args = parser().parse_args(argv)
    device = torch.device(args.device)
    skip = set(args.skip)
    rows = []
    for model in args.models:
        defaults = RECURRENT if is_language_model(model) else FEEDFORWARD
        methods = [m for m in (args.methods or defaults) if f"{m}@{model}" not in skip]
        rows += measure(model, args.batch, methods, args.repeats, device)
    env = environment(device)
    env["arguments"] = " ".join(argv if argv is not None else sys.argv[1:])
    frame = pd.DataFrame(rows)
    markdown = to_markdown(frame, env)
    folder = write_table(args.out, device, "iterations", frame, env, markdown)
    print(markdown)
    return folder


if __name__ == "__main__":
    main()
