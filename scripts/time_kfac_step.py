"""Mean K-FAC step time (fixed batch 1000, 3 windows of 20 steps after 3 warm-up steps) on the CURVES and
MNIST autoencoders with random inputs — written against APIs that older commits also have, so two checkouts
can be compared on the same machine, interleaved (CPU times drift between runs):

    git worktree add /tmp/old <commit>
    PYTHONPATH=/tmp/old .venv/bin/python scripts/time_kfac_step.py old   # imports the old tree
    PYTHONPATH=. .venv/bin/python scripts/time_kfac_step.py new
"""

import statistics
import sys
import time

import torch

from secondorder.data.splits import DataSplits
from secondorder.losses import get_loss
from secondorder.metrics import reconstruction_sse
from secondorder.models import AutoencoderConfig, build_model
from secondorder.optim.kfac import KFAC, KFACConfig
from secondorder.problems import ObjectiveConfig, SupervisedProblem

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
print(sys.argv[1] if len(sys.argv) > 1 else "", *out, sep="\n  ")
