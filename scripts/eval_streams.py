"""Perplexity of a finished language-model run's checkpoint on the same text read as different numbers of streams.

    python scripts/eval_streams.py RUN_DIR [data_dir=…] [--streams 10 50 200] [--split train_eval|valid|test]
                                   [--carried]

Evaluation reads a text as ``dataset.eval_batch_size`` parallel streams with the recurrent state carried through
each (10 streams: 10 000 tokens each for a 100 000-token prefix), while training reads 200 streams in windows of 35
tokens. A model whose recurrent dynamics are unstable over long state chains scores far worse with few long
streams than with many short ones; a stable one scores about the same. Prints one line per stream count.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from omegaconf import OmegaConf

from secondorder.checkpoint import load_checkpoint
from secondorder.composition import compose_run
from secondorder.problems import build_problem


def overrides_of(run_dir: Path) -> list[str]:
    """The run's dataset, model and objective settings as overrides of the default composition."""
    config = OmegaConf.load(run_dir / "config.yaml")
    out = [f"dataset={config.dataset.name}", f"model={config.dataset.name}"]  # model configs are named by dataset
    for group in ("dataset", "model", "objective"):
        for key, value in OmegaConf.to_container(config[group]).items():
            if key != "name" and not isinstance(value, (dict, list)):
                out.append(f"{group}.{key}={'null' if value is None else value}")
    return out


@torch.no_grad()
def carried_versus_zero_state(run_dir: Path, state: dict, overrides: list[str]) -> None:
    """The mean cross-entropy of the training window after the checkpoint, its streams starting from the state
    training carried into it and from zeros: a large gap means the model relies on a state its own dynamics from
    zero do not reach."""
    run = compose_run([*overrides_of(run_dir), "trainer.device=cpu", *overrides])
    problem = build_problem(run, torch.device("cpu"), torch.float32)
    problem.model.load_state_dict(state["model"])
    sampler = problem.make_sampler(seed=0)
    sampler.load_state_dict(state["sampler"])
    batch = sampler.next(sampler.batch_size)
    for label, start in (("carried state", batch.state), ("zero state", None)):
        logits, _ = problem.model(batch.inputs, start)
        ce = float(problem.loss.per_case(logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1)).mean())
        print(f"{run_dir.name}: next training window ({batch.inputs.shape[0]} streams × {batch.inputs.shape[1]} "
              f"tokens) from the {label}: cross-entropy {ce:.4f} nats", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--streams", type=int, nargs="*", default=[10, 50, 200])
    p.add_argument("--split", default="train_eval", choices=["train_eval", "valid", "test"])
    p.add_argument("--carried", action="store_true",
                   help="also the next training window's loss from the checkpoint's carried state and from zeros")
    p.add_argument("overrides", nargs="*", help="further overrides, e.g. data_dir=…")
    args = p.parse_args(argv)
    state = load_checkpoint(args.run_dir)
    if state is None:
        raise SystemExit(f"{args.run_dir} holds no checkpoint")
    if args.carried:
        carried_versus_zero_state(args.run_dir, state, args.overrides)
    for streams in args.streams:
        run = compose_run([*overrides_of(args.run_dir), f"dataset.eval_batch_size={streams}", "trainer.device=cpu",
                           *args.overrides])
        problem = build_problem(run, torch.device("cpu"), torch.float32)
        problem.model.load_state_dict(state["model"])
        problem.model.eval()
        ce = problem.mean_cross_entropy(problem.streams[args.split])
        tokens = len(problem.streams[args.split]) // streams
        print(f"{args.run_dir.name}: {streams} streams of {tokens} tokens — cross-entropy {ce:.4f} nats, "
              f"perplexity {math.exp(min(ce, 700.0)):.1f} (iteration {state['iteration']})", flush=True)


if __name__ == "__main__":
    main()
