"""Timings for before/after comparisons of the speed work, written against APIs that older commits also have,
so two checkouts can be compared on the same machine, interleaved (CPU times drift between runs):

* mean K-FAC step time (fixed batch 1000, 3 windows of 20 steps after 3 warm-up steps) on the CURVES and MNIST
  autoencoders with random inputs;
* the HF-RNN setting (``experiment=hf_rnn``, addition task, T = 100, 2 500 sequences): one gradient and one
  cached GGN-vector product (median of 3).

    git worktree add /tmp/old <commit>
    PYTHONPATH=/tmp/old .venv/bin/python scripts/time_before_after.py old   # imports the old tree
    PYTHONPATH=. .venv/bin/python scripts/time_before_after.py new
"""

import statistics
import sys
import time

import torch

from secondorder.composition import compose_run
from secondorder.curvature import GGNOperator, detached_params
from secondorder.data.splits import DataSplits
from secondorder.losses import get_loss
from secondorder.metrics import reconstruction_sse
from secondorder.models import AutoencoderConfig, build_model
from secondorder.optim.kfac import KFAC, KFACConfig
from secondorder.problems import ObjectiveConfig, SupervisedProblem, build_problem

torch.manual_seed(0)


def problem(name: str) -> SupervisedProblem:
    dims = {"curves": [784, 400, 200, 100, 50, 25, 6], "mnist": [784, 1000, 500, 250, 30]}[name]
    model = build_model(AutoencoderConfig(encoder_dims=dims), seed=0)
    x = torch.rand(4000, 784, generator=torch.Generator().manual_seed(0))
    data = DataSplits(name, x, x, x, x, "random", "random inputs", True)
    return SupervisedProblem(model, get_loss("sigmoid_bce"), data, reconstruction_sse, ObjectiveConfig(l2=1e-5))


out = []
for name in ["curves", "mnist"]:
    p = problem(name)
    opt = KFAC(p, KFACConfig(batch_schedule="fixed", batch_size=1000))
    sampler = p.make_sampler(seed=0)
    for k in range(3):
        opt.step(k, sampler)
    windows = []
    k = 3
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(20):
            opt.step(k, sampler)
            k += 1
        windows.append((time.perf_counter() - start) / 20)
    out.append(f"kfac {name}: median {statistics.median(windows):.4f} s/step, windows {[round(w, 4) for w in windows]}")


def median_seconds(fn, repeats: int = 3) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


run = compose_run(["experiment=hf_rnn", "dataset=addition", "dataset.T=100"])
rnn = build_problem(run, torch.device("cpu"), torch.float32)
batch = rnn.make_sampler(seed=0).next(2500)
params = detached_params(rnn.model)
v = {k: torch.randn_like(t) for k, t in params.items()}
ggn = GGNOperator(rnn, batch, params)
gradient_s = median_seconds(lambda: rnn.objective(batch).backward())
out.append(f"rnn addition T=100, 2500 sequences: gradient {gradient_s:.3f} s, "
           f"cached GGN product {median_seconds(lambda: ggn(v)):.3f} s")
print(sys.argv[1] if len(sys.argv) > 1 else "", *out, sep="\n  ")
