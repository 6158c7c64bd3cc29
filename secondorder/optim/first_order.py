"""First-order baselines: SGD, classical momentum, Nesterov momentum, Adam.

All minimise the same objective h(θ) (ℓ2 prior included, see :mod:`secondorder.problems.base`) on one
mini-batch of ``batch_size`` per step, with an optional learning-rate halving period T
(:func:`~secondorder.optim.schedules.halved_every`; the grid of Botev et al. 2017, §5.1, footnote 11) and an
optional step decay (:func:`~secondorder.optim.schedules.step_decayed`; the word-PTB schedule of Martens, Ba &
Johnson 2018, §4).

* SGD and Adam are ``torch.optim.SGD`` / ``torch.optim.Adam`` (the same algorithms).
* Classical momentum follows thesis eqn 3.5 (§3.4.1): v_k = μ v_{k−1} − α ∇h(θ_{k−1}),
  θ_k = θ_{k−1} + v_k.
* Nesterov's accelerated gradient in the form of Sutskever et al. (2013):
  v_k = μ_k v_{k−1} − α ∇h(θ_{k−1} + μ_k v_{k−1}), θ_k = θ_{k−1} + v_k, with μ_k from the increasing schedule
  (:func:`~secondorder.optim.schedules.sutskever_momentum`) or constant. These two are written out here
  rather than taken from ``torch.optim.SGD``, whose momentum buffer is scaled differently when α or μ change
  over time (it would not be the algorithm the papers ran under a schedule). Errors are evaluated at θ, not
  at the look-ahead point.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import torch

from secondorder.distributed import mean_
from secondorder.optim.base import Optimizer, StepCosts, StepResult
from secondorder.optim.schedules import decay_checks, learning_rate, sutskever_momentum
from secondorder.problems.samplers import Sampler
from secondorder.validation import Check, in_range, one_of, positive


@dataclass
class SGDConfig:
    name: str = "sgd"
    lr: float = 0.01
    batch_size: int = 250
    lr_halving_period: int | None = None
    lr_decay: float = 1.0  # step decay r every lr_decay_every iterations from lr_decay_from (schedules.step_decayed)
    lr_decay_every: int | None = None
    lr_decay_from: int = 0

    def check(self) -> list[Check]:
        return [*positive(self, "lr", "batch_size"),
                *positive(self, "lr_halving_period", "lr_decay_every", allow_none=True), *decay_checks(self)]


@dataclass
class MomentumConfig:
    name: str = "momentum"
    lr: float = 0.01
    batch_size: int = 250
    lr_halving_period: int | None = None
    lr_decay: float = 1.0  # step decay r every lr_decay_every iterations from lr_decay_from (schedules.step_decayed)
    lr_decay_every: int | None = None
    lr_decay_from: int = 0
    momentum: float = 0.9
    momentum_schedule: str = "constant"
    schedule_period: int = 250

    def check(self) -> list[Check]:
        return [
            *positive(self, "lr", "batch_size", "schedule_period"),
            *positive(self, "lr_halving_period", "lr_decay_every", allow_none=True),
            *decay_checks(self),
            in_range(self, "momentum", 0.0, 1.0),
            one_of(self, "momentum_schedule", ["constant", "sutskever"]),
        ]


@dataclass
class NesterovConfig(MomentumConfig):
    name: str = "nesterov"
    momentum: float = 0.99
    momentum_schedule: str = "sutskever"


@dataclass
class AdamConfig:
    name: str = "adam"
    lr: float = 1e-3
    batch_size: int = 250
    lr_halving_period: int | None = None
    lr_decay: float = 1.0  # step decay r every lr_decay_every iterations from lr_decay_from (schedules.step_decayed)
    lr_decay_every: int | None = None
    lr_decay_from: int = 0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def check(self) -> list[Check]:
        return [
            *positive(self, "lr", "batch_size", "eps"),
            *positive(self, "lr_halving_period", "lr_decay_every", allow_none=True),
            *decay_checks(self),
            in_range(self, "beta1", 0.0, 1.0),
            in_range(self, "beta2", 0.0, 1.0),
        ]


def _batch_objective(opt: Optimizer, sampler: Sampler) -> torch.Tensor:
    """Draw a mini-batch, compute h on it and its gradient into ``.grad``; return h (detached). In a data-parallel
    run both are this rank's shard means, turned into the union batch's (one all-reduce, weighted by cases)."""
    batch = sampler.next(opt.cfg.batch_size)
    for p in opt.params:
        p.grad = None
    loss = opt.problem.objective(batch)
    loss.backward()
    loss = loss.detach()
    mean_([*(p.grad for p in opt.params), loss], opt.problem.cases(batch))
    return loss


class _TorchOptimizer(Optimizer):
    """A ``torch.optim`` optimiser with our learning-rate schedule."""

    stat_names = ("lr",)
    batch_statistics_ok = True
    distributed_ok = True

    @abstractmethod
    def _make(self) -> torch.optim.Optimizer:
        """The wrapped ``torch.optim`` instance over ``self.params``."""

    def __init__(self, problem: Any, cfg: Any) -> None:
        super().__init__(problem, cfg)
        self.inner = self._make()

    def step(self, iteration: int, sampler: Sampler) -> StepResult:
        lr = learning_rate(self.cfg, iteration)
        for group in self.inner.param_groups:
            group["lr"] = lr
        with self.phases("gradient"):
            loss = _batch_objective(self, sampler)
        with self.phases("update"):
            self.inner.step()
        return StepResult(float(loss), StepCosts(grad_evals=1), {"lr": lr})

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)


class SGD(_TorchOptimizer):
    config_class = SGDConfig

    def _make(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.params, lr=self.cfg.lr)


class Adam(_TorchOptimizer):
    config_class = AdamConfig

    def _make(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            self.params, lr=self.cfg.lr, betas=(self.cfg.beta1, self.cfg.beta2), eps=self.cfg.eps
        )


class Momentum(Optimizer):
    """Classical (heavy-ball) momentum, thesis eqn 3.5; Nesterov when ``lookahead`` is set."""

    config_class = MomentumConfig
    stat_names = ("lr", "momentum")
    lookahead = False
    distributed_ok = True

    def __init__(self, problem: Any, cfg: Any) -> None:
        super().__init__(problem, cfg)
        self.velocity = [torch.zeros_like(p) for p in self.params]

    def momentum_at(self, iteration: int) -> float:
        if self.cfg.momentum_schedule == "sutskever":
            return sutskever_momentum(iteration, self.cfg.momentum, self.cfg.schedule_period)
        return self.cfg.momentum

    @torch.no_grad()
    def _shift(self, scale: float) -> None:
        torch._foreach_add_(self.params, self.velocity, alpha=scale)

    def step(self, iteration: int, sampler: Sampler) -> StepResult:
        lr = learning_rate(self.cfg, iteration)
        mu = self.momentum_at(iteration)
        if self.lookahead:
            self._shift(mu)  # gradient at the look-ahead point θ + μ v
        with torch.enable_grad(), self.phases("gradient"):
            loss = _batch_objective(self, sampler)
        with torch.no_grad(), self.phases("update"):
            if self.lookahead:
                self._shift(-mu)
            grads = [p.grad for p in self.params]
            torch._foreach_mul_(self.velocity, mu)
            torch._foreach_add_(self.velocity, grads, alpha=-lr)
            torch._foreach_add_(self.params, self.velocity)
        return StepResult(float(loss), StepCosts(grad_evals=1), {"lr": lr, "momentum": mu})

    def state_dict(self) -> dict[str, Any]:
        return {"velocity": [v.clone() for v in self.velocity]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for v, saved in zip(self.velocity, state["velocity"], strict=True):
            v.copy_(saved)


class Nesterov(Momentum):
    """Nesterov's accelerated gradient (Sutskever et al. 2013 form), increasing-μ schedule by default."""

    config_class = NesterovConfig
    lookahead = True
