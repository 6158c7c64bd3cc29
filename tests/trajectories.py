"""Fixed-seed reference trajectories: the behaviour-preservation check for refactors.

Each entry of :data:`REFERENCE_RUNS` is a tiny ``train`` run (float64, CPU, a few iterations that exercise the
method's refreshes, damping adaptation and step-size rules). ``python -m tests.trajectories --write``
records their ``metrics.csv`` (every column but ``wall_time_s``) under ``tests/golden/``;
``python -m tests.trajectories`` re-runs them and reports the largest relative difference per run.
``tests/test_trajectories.py`` does the same comparison in the test suite.

The references were recorded on the 2-core CPU that CI uses, with two intra-op threads: the thread count changes
the order of floating-point reductions (up to ~5e-4 relative in HF's trajectory with one thread), so the runs
here always use ``REFERENCE_THREADS`` threads.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
IGNORED_COLUMNS = ("wall_time_s",)
REFERENCE_THREADS = 2

_COMMON = ("trainer.device=cpu", "trainer.dtype=float64", "trainer.progress=false", "trainer.log_every=1",
           "seed=3")
_TINY_CURVES = ("dataset=curves", "dataset.version=1", "dataset.n_train=256", "dataset.n_test=128",
                "model.encoder_dims=[784,24,6]", "trainer.eval_batch_size=100")  # recorded on CURVES generator v1
_TINY_CLASSIFIER = ("dataset=mnist_5k_class", "model.dims=[784,20,10]")
_TINY_LM = ("dataset=ptb_char", "dataset.bptt=12", "dataset.batch_size=6", "optimizer.batch_size=6",
            "dataset.eval_train_tokens=600", "dataset.eval_tokens=600", "model.hidden_dim=12",
            "model.embedding_dim=8")

REFERENCE_RUNS: dict[str, tuple[str, ...]] = {
    "adam": ("optimizer=adam", *_TINY_CURVES, "dataset.batch_size=32", "trainer.max_steps=12",
             "trainer.eval_every=4"),
    "hf": ("optimizer=hf", *_TINY_CURVES, "optimizer.max_cg_iters=30", "trainer.max_steps=5",
           "trainer.eval_every=1"),
    "kfac": ("optimizer=kfac", *_TINY_CURVES, "optimizer.batch_size=64", "optimizer.inverse_period=5",
             "optimizer.gamma_period=5", "objective.l2=1e-5", "trainer.max_steps=16", "trainer.eval_every=4"),
    "kfac_tridiag": ("optimizer=kfac_tridiag", *_TINY_CURVES, "optimizer.batch_size=64",
                     "optimizer.inverse_period=5", "optimizer.gamma_period=5", "objective.l2=1e-5",
                     "trainer.max_steps=11", "trainer.eval_every=4"),
    "kfra": ("optimizer=kfra", *_TINY_CURVES, "optimizer.batch_size=64", "optimizer.gamma_period=5",
             "objective.l2=1e-5", "trainer.max_steps=11", "trainer.eval_every=4"),
    "kflr": ("optimizer=kflr", *_TINY_CLASSIFIER, "optimizer.batch_size=64", "optimizer.gamma_period=5",
             "trainer.max_steps=11", "trainer.eval_every=4"),
    "ncg": ("optimizer=ncg", *_TINY_CURVES, "optimizer.batch_size=128", "trainer.max_steps=6",
            "trainer.eval_every=2"),
    "kfac_rnn": ("optimizer=kfac_rnn", *_TINY_LM, "optimizer.inverse_period=4", "trainer.max_steps=9",
                 "trainer.eval_every=3"),
}


def run_reference(name: str, out_dir: Path, data_dir: Path | None = None, train=None) -> pd.DataFrame:
    """Run one reference run into ``out_dir`` and return its metrics without the timing columns."""
    if train is None:
        from secondorder.cli import train
    run_dir = out_dir / name
    args = [*_COMMON, *REFERENCE_RUNS[name], f"run_dir={run_dir}"]
    if data_dir is not None:
        args.append(f"data_dir={data_dir}")
    threads = torch.get_num_threads()
    torch.set_num_threads(REFERENCE_THREADS)
    try:
        train(args)
    except SystemExit as exc:
        if exc.code:
            raise RuntimeError(f"reference run {name} failed with exit code {exc.code}") from None
    finally:
        torch.set_num_threads(threads)
    return pd.read_csv(run_dir / "metrics.csv").drop(columns=list(IGNORED_COLUMNS))


def largest_difference(reference: pd.DataFrame, current: pd.DataFrame) -> float:
    """The largest relative difference between two metrics tables (∞ when their shapes or columns differ;
    NaN in the same place counts as equal)."""
    if list(reference.columns) != list(current.columns) or reference.shape != current.shape:
        return float("inf")
    a, b = reference.to_numpy(dtype=float), current.to_numpy(dtype=float)
    both_nan = np.isnan(a) & np.isnan(b)
    same = (a == b) | both_nan
    if same.all():
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.abs(a - b) / np.maximum(np.abs(a), np.abs(b))
    relative[same] = 0.0
    return float(np.nan_to_num(relative, nan=np.inf).max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.trajectories", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="record the references under tests/golden/")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("names", nargs="*", default=list(REFERENCE_RUNS))
    args = parser.parse_args(argv)
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.names:
            metrics = run_reference(name, Path(tmp), args.data_dir)
            golden = GOLDEN_DIR / f"{name}.csv"
            if args.write:
                GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
                metrics.to_csv(golden, index=False, float_format="%.17g")
                print(f"{name}: wrote {golden} ({len(metrics)} rows)")
                continue
            difference = largest_difference(pd.read_csv(golden), metrics)
            worst = max(worst, difference)
            print(f"{name}: largest relative difference {difference:.3g}")
    return 0 if worst <= 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
