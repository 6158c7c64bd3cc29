"""``make bench``: the whole benchmark suite for one device, and where the speed goals stand.

    python -m secondorder.bench.suite [--profile quick|full] [--device cuda] [--only curvature iterations …]

Runs, with the profile's settings, :mod:`.curvature` (curvature-vector products vs a gradient),
:mod:`.iterations` (every optimiser's step vs an Adam step, split into parts, peak GPU memory) and
:mod:`.time_to_target` (HF, K-FAC, KFRA and tuned Adam to given training errors) and :mod:`.data_parallel`
(steps per second and bytes per step at 1 and N processes), then writes
``results/bench/<device>/README.md``: the provenance, the issue's four speed goals with the measured value
behind each, and links to the tables. The goals are stated for one H100; on any other device the summary says
so beside each measured value.

Profiles: ``quick`` (the default without CUDA) fits in about ten minutes on a 2-core CPU — CURVES at K = 1000
and 5000, MNIST / FACES / PTB-char at K = 1000, iterations on CURVES and PTB-char (KFLR and HF-on-LSTM left out:
minutes per step on a CPU), the smoke time-to-target profile; ``full`` (the default with CUDA) — every model at
K = 1000 / 5000 / 7500, iterations on all five models, the full time-to-target profile (three seeds per
method: hours on one GPU; run `python -m secondorder.bench.time_to_target --seeds 1` for a first look).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from secondorder.bench import curvature, data_parallel, iterations, time_to_target
from secondorder.bench.timing import device_slug, environment, provenance_line

PROFILES: dict[str, dict[str, list[str]]] = {
    "quick": {
        "curvature": ["--models", "curves", "mnist", "faces", "ptb_char", "--batches", "1000",
                      "--model-batches", "curves=1000,5000", "--repeats", "3"],
        "iterations": ["--models", "curves", "ptb_char", "--batch", "1000", "--repeats", "3",
                       "--skip", "kflr@curves", "hf@ptb_char"],
        "time_to_target": ["--profile", "quick"],
        "data_parallel": ["--ranks", "1", "2", "--model", "curves", "--batch", "1000", "10000"],
    },
    "full": {
        "curvature": ["--models", "curves", "mnist", "faces", "ptb_char", "ptb_word", "--batches", "1000", "5000",
                      "7500", "--repeats", "10"],
        "iterations": ["--models", "curves", "mnist", "faces", "ptb_char", "ptb_word", "--batch", "1000",
                       "--repeats", "5"],
        "time_to_target": ["--profile", "full"],
        "data_parallel": ["--ranks", "1", "2", "4", "8", "--model", "curves", "--batch", "1000", "10000"],
    },
}
PARTS = {"curvature": curvature, "iterations": iterations, "time_to_target": time_to_target,
         "data_parallel": data_parallel}


def _read(folder: Path, name: str) -> pd.DataFrame | None:
    path = folder / f"{name}.csv"
    return pd.read_csv(path) if path.exists() else None


def goals(folder: Path) -> list[tuple[str, str, str]]:
    """(goal, measured, met?) for the four goals, from the tables in ``folder``."""
    out = []
    frame = _read(folder, "curvature")
    if frame is not None:
        autoencoders = frame.model.isin(["curves", "mnist", "faces"])
        rows = frame[(frame.quantity == "ggn_cached") & (frame.K >= 5000) & autoencoders]
        if len(rows):
            worst = rows.loc[rows.ratio_to_gradient.idxmax()]
            measured = ", ".join(f"{r.model} K={r.K}: {r.ratio_to_gradient:.3g}×" for r in rows.itertuples())
            out.append(("cached GGN-vp ≤ 1.2× a gradient (autoencoders, K ≥ 5000)", measured,
                        "yes" if worst.ratio_to_gradient <= 1.2 else f"no (worst {worst.ratio_to_gradient:.3g}×)"))
        rows = frame[(frame.quantity == "ggn_layered_setup") & autoencoders]
        if len(rows):
            worst = rows.ratio_to_gradient.max()
            measured = ", ".join(f"{r.model} K={r.K}: {r.ratio_to_gradient:.3g}×" for r in rows.itertuples())
            out.append(("HF curvature set-up (once per CG run) ≤ 2 gradients (autoencoders)", measured,
                        "yes" if worst <= 2 else f"no (worst {worst:.3g}×)"))
    frame = _read(folder, "iterations")
    if frame is not None:
        rows = frame[frame.method == "kfac"]
        if len(rows):
            measured = ", ".join(f"{r.model} m={r.m}: {r.ratio_to_adam:.3g}×" for r in rows.itertuples())
            worst = rows.ratio_to_adam.max()
            out.append(("K-FAC iteration (inverses every 20, amortised) ≤ 1.5× an Adam step", measured,
                        "yes" if worst <= 1.5 else f"no (worst {worst:.3g}×)"))
    frame = _read(folder, "time_to_target")
    if frame is not None:
        for goal, method, target, limit, speedup in (
                ("RAND+HF on CURVES to train error 0.11 within 15 min", "hf", 0.11, 900.0, None),
                ("K-FAC on CURVES to 0.2 within 1 min and ≥ 5× faster than tuned Adam", "kfac", 0.2, 60.0, 5.0)):
            rows = frame[(frame.problem == "curves") & (frame.method == method) & (frame.target == target)]
            if not len(rows):
                out.append((goal, f"target {target} not in this profile's table", "not measured"))
                continue
            r = rows.iloc[0]
            t = float(r.time_s)
            measured = f"{t:.3g} s" if math.isfinite(t) else "not reached within the budget"
            met = math.isfinite(t) and t <= limit
            if speedup is not None:
                s = float(r.speedup_over_adam)
                bound = r.speedup_bound if isinstance(r.speedup_bound, str) else ""
                measured += f"; speed-up over tuned Adam {bound}{s:.2f}×" if s == s else "; Adam speed-up unknown"
                met = met and s == s and s >= speedup
            out.append((goal, measured, "yes" if met else "no"))
    return out


def write_summary(folder: Path, device: torch.device, profile: str, seconds: dict[str, float]) -> Path:
    env = environment(device)
    on_h100 = "H100" in env["device"]
    lines = [
        f"# Benchmarks on {env['device']} — profile `{profile}`",
        "",
        provenance_line(env),
        f"Written by `make bench` (`python -m secondorder.bench.suite {' '.join(sys.argv[1:])}`); wall-clock per "
        f"part: {', '.join(f'{k} {v:.0f} s' for k, v in seconds.items())}.",
        "",
        "| table | what |",
        "|---|---|",
        "| [curvature.md](curvature.md) | GGN / Fisher / Hessian-vector products vs one gradient evaluation |",
        "| [iterations.md](iterations.md) | every optimiser's step vs one Adam step, split into parts; peak memory |",
        "| [time_to_target.md](time_to_target.md) | HF, K-FAC, KFRA, tuned Adam: time to training errors |",
        "| [data_parallel.md](data_parallel.md) | steps per second and bytes per step at 1 and N processes |",
        "",
        "## Speed goals (issue: Performance)",
        "",
        ("Measured on the goals' hardware (one H100)." if on_h100 else
         "**The goals are stated for one H100; these values were measured on this device instead, so "
         "\"met\" below says only how this device compares.**"),
        "",
        "| goal | measured | met |",
        "|---|---|---|",
    ]
    lines += [f"| {g} | {m} | {ok} |" for g, m, ok in goals(folder)]
    path = folder / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", choices=sorted(PROFILES), default="full" if torch.cuda.is_available() else "quick")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--only", nargs="+", choices=list(PARTS), default=list(PARTS))
    p.add_argument("--out", type=Path, default=Path("results/bench"))
    args = p.parse_args(argv)
    device = torch.device(args.device)
    seconds = {}
    for name in args.only:
        start = time.perf_counter()
        print(f"== bench {name} ({args.profile}) ==", flush=True)
        PARTS[name].main([*PROFILES[args.profile][name], "--device", args.device, "--out", str(args.out)])
        seconds[name] = time.perf_counter() - start
    folder = args.out / device_slug(device)
    summary = write_summary(folder, device, args.profile, seconds)
    print(summary.read_text())
    return folder


if __name__ == "__main__":
    main()
