"""First-order baselines against their update formulas, written out independently on a tiny problem."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from secondorder.data.splits import DataSplits
from secondorder.losses import SquaredError
from secondorder.metrics import reconstruction_sse
from secondorder.optim import build_optimizer
from secondorder.optim.first_order import AdamConfig, MomentumConfig, NesterovConfig, SGDConfig
from secondorder.optim.schedules import halved_every, sutskever_momentum
from secondorder.problems import EpochSampler, ObjectiveConfig, SupervisedProblem


def tiny_problem(l2: float = 0.0) -> SupervisedProblem:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 5, generator=g, dtype=torch.float64)
    y = torch.randn(16, 3, generator=g, dtype=torch.float64)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    data = DataSplits("toy", x, y, x, y, "test", "toy", True)
    return SupervisedProblem(model, SquaredError(), data, reconstruction_sse, ObjectiveConfig(l2=l2))


def gradient_at(problem: SupervisedProblem, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor):
    """∇h at the given parameter values (a functional oracle, independent of the optimiser code)."""
    names = [n for n, _ in problem.model.named_parameters()]
    ps = [p.detach().clone().requires_grad_(True) for p in params]
    out = torch.func.functional_call(problem.model, dict(zip(names, ps, strict=True)), (x,))
    h = problem.loss(out, y) + 0.5 * problem.l2 * sum((p**2).sum() for p in ps)
    return torch.autograd.grad(h, ps)


def replay_batches(problem: SupervisedProblem, seed: int, batch_size: int, steps: int):
    sampler = EpochSampler(problem.data.train_inputs, problem.data.train_targets, seed)
    return [sampler.next(batch_size) for _ in range(steps)]


def run(problem: SupervisedProblem, cfg: object, steps: int) -> list[torch.Tensor]:
    opt = build_optimizer(cfg, problem)
    sampler = EpochSampler(problem.data.train_inputs, problem.data.train_targets, seed=11)
    for k in range(steps):
        opt.step(k, sampler)
    return [p.detach().clone() for p in problem.model.parameters()]


@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_sgd_is_theta_minus_lr_gradient_with_halving(l2: float) -> None:
    problem = tiny_problem(l2)
    theta = [p.detach().clone() for p in problem.model.parameters()]
    cfg = SGDConfig(lr=0.1, batch_size=4, lr_halving_period=2)
    for k, (x, y) in enumerate(replay_batches(problem, 11, 4, 5)):
        grads = gradient_at(problem, theta, x, y)
        theta = [t - 0.1 * 0.5 ** (k // 2) * g for t, g in zip(theta, grads, strict=True)]
    for got, want in zip(run(problem, cfg, 5), theta, strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize(
    "cfg",
    [
        MomentumConfig(lr=0.05, batch_size=4, momentum=0.9, lr_halving_period=3),
        NesterovConfig(lr=0.05, batch_size=4, momentum=0.99, momentum_schedule="sutskever", schedule_period=2),
        NesterovConfig(lr=0.05, batch_size=4, momentum=0.9, momentum_schedule="constant"),
    ],
)
def test_momentum_and_nesterov_follow_their_recurrences(cfg: MomentumConfig) -> None:
    """v_k = μ_k v_{k−1} − α_k ∇h(θ_{k−1} [+ μ_k v_{k−1} for Nesterov]); θ_k = θ_{k−1} + v_k."""
    problem = tiny_problem(0.01)
    theta = [p.detach().clone() for p in problem.model.parameters()]
    velocity = [torch.zeros_like(t) for t in theta]
    nesterov = cfg.name == "nesterov"
    for k, (x, y) in enumerate(replay_batches(problem, 11, 4, 7)):
        mu = sutskever_momentum(k, cfg.momentum, cfg.schedule_period) if cfg.momentum_schedule == "sutskever" \
            else cfg.momentum
        lr = halved_every(cfg.lr, cfg.lr_halving_period, k)
        point = [t + mu * v for t, v in zip(theta, velocity, strict=True)] if nesterov else theta
        grads = gradient_at(problem, point, x, y)
        velocity = [mu * v - lr * g for v, g in zip(velocity, grads, strict=True)]
        theta = [t + v for t, v in zip(theta, velocity, strict=True)]
    for got, want in zip(run(problem, cfg, 7), theta, strict=True):
        torch.testing.assert_close(got, want)


def test_adam_matches_torch_adam() -> None:
    problem = tiny_problem(0.01)
    reference = copy.deepcopy(problem.model)
    torch_adam = torch.optim.Adam(reference.parameters(), lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    for x, y in replay_batches(problem, 11, 4, 6):
        torch_adam.zero_grad()
        out = reference(x)
        h = problem.loss(out, y) + 0.5 * 0.01 * sum((p**2).sum() for p in reference.parameters())
        h.backward()
        torch_adam.step()
    got = run(problem, AdamConfig(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6, batch_size=4), 6)
    for a, b in zip(got, reference.parameters(), strict=True):
        torch.testing.assert_close(a, b.detach())


def test_sutskever_schedule_values() -> None:
    assert sutskever_momentum(0, 0.999) == 0.5
    assert sutskever_momentum(249, 0.999) == 0.5
    assert sutskever_momentum(250, 0.999) == 0.75
    assert sutskever_momentum(750, 0.999) == 0.875
    assert sutskever_momentum(500, 0.999) == pytest.approx(1 - 2 ** (-1 - 1.584962500721156))
    assert sutskever_momentum(10**7, 0.99) == 0.99


def test_halving_schedule() -> None:
    assert [halved_every(1.0, 3, k) for k in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    assert halved_every(0.3, None, 10**6) == 0.3


def test_step_reports_loss_costs_and_stats() -> None:
    problem = tiny_problem()
    opt = build_optimizer(NesterovConfig(batch_size=4), problem)
    sampler = EpochSampler(problem.data.train_inputs, problem.data.train_targets, seed=0)
    x, y = replay_batches(problem, 0, 4, 1)[0]
    expected = float(problem.objective((x, y)).detach())
    result = opt.step(0, sampler)
    assert result.loss == pytest.approx(expected)
    assert result.costs.grad_evals == 1 and result.costs.curvature_products == 0
    assert set(result.stats) == set(opt.stat_names) == {"lr", "momentum"}
    assert sampler.examples_seen == 4


def test_sampler_covers_each_epoch_without_replacement_and_resumes_exactly() -> None:
    x = torch.arange(10.0)[:, None]
    sampler = EpochSampler(x, x, seed=3)
    first_epoch = torch.cat([sampler.next(3)[0] for _ in range(3)]).flatten()
    assert len(set(first_epoch.tolist())) == 9  # 3 batches of 3 from 10 cases, tail skipped
    state = sampler.state_dict()
    ahead = [sampler.next(3)[0] for _ in range(5)]
    clone = EpochSampler(x, x, seed=999)
    clone.load_state_dict(state)
    assert all(torch.equal(a, clone.next(3)[0]) for a in ahead)
    assert sampler.next(50)[0] is x  # a batch as large as the set is the set


def test_step_decay_multiplies_the_halving_schedule() -> None:
    """η_t = η · r^(⌊(t − t₀)/T⌋ + 1) from t₀ on (Zaremba's ×0.8 per epoch after the sixth, which the K-FAC-RNN
    word model's "decaying schedule" follows here), times the halving schedule when both are set."""
    from secondorder.optim.schedules import learning_rate, step_decayed

    assert [step_decayed(1.0, 0.8, 10, 60, t) for t in (0, 59, 60, 69, 70, 85)] == pytest.approx(
        [1.0, 1.0, 0.8, 0.8, 0.64, 0.512])
    assert step_decayed(1.0, 0.8, None, 0, 10_000) == 1.0
    both = SGDConfig(lr=1.0, lr_halving_period=100, lr_decay=0.5, lr_decay_every=50, lr_decay_from=100)
    assert learning_rate(both, 99) == 1.0 and learning_rate(both, 100) == 0.25 and learning_rate(both, 150) == 0.125
    bad = {c[0] for c in SGDConfig(lr_decay=1.5, lr_decay_from=-1, lr_decay_every=0).check() if not c[1]}
    assert bad == {"lr_decay", "lr_decay_from", "lr_decay_every"}
