"""Nonlinear conjugate gradient fine-tuning, the "NCG" of thesis Table 4.3 (Hinton & Salakhutdinov 2006).

H&S fine-tuned with Carl Rasmussen's ``minimize``: Polak–Ribière conjugate directions with a line search
that extrapolates (cubic, at most ×``extrapolation`` = 3 the step) until the slope condition fails, then
interpolates (cubic, or quadratic when the far point is worse than the start) until the strong Wolfe–Powell
conditions hold: f(x + t s) ≤ f(x) + ρ t f′(x; s) and |f′(x + t s; s)| ≤ −σ f′(x; s) with σ = 0.1, ρ = σ/2; at
most ``max_evaluations`` = 20 evaluations per line search; new points kept ``interval`` = 0.1 of the bracket away
from its ends; the next initial step is the last one times the slope ratio, capped at ``max_slope_ratio`` = 10;
if a search fails, restart along steepest descent, and give up after two failures in a row. Their
``backprop.m`` ran 3 line searches on each batch of 1000 cases (10 mini-batches of 100) for 200 epochs, each
call starting afresh; one iteration here is one such call. This module is our implementation of that method.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from secondorder.curvature.params import ParamSpace, detached_params
from secondorder.optim.base import Optimizer, StepCosts, StepResult
from secondorder.problems.samplers import Sampler
from secondorder.validation import Check, in_range, positive

TINY = 1e-300


@dataclass
class NCGConfig:
    name: str = "ncg"
    batch_size: int = 1000
    line_searches: int = 3
    interval: float = 0.1
    extrapolation: float = 3.0
    max_evaluations: int = 20
    max_slope_ratio: float = 10.0
    sigma: float = 0.1
    rho: float = 0.05

    def check(self) -> list[Check]:
        return [
            *positive(self, "batch_size", "line_searches", "max_evaluations", "max_slope_ratio"),
            in_range(self, "interval", 0.0, 0.5),
            ("extrapolation", self.extrapolation > 1, "must be > 1"),
            in_range(self, "sigma", 0.0, 1.0),
            ("rho", 0 < self.rho < self.sigma, "must lie in (0, sigma)"),
        ]


@dataclass
class MinimizeResult:
    x: Tensor
    value: float
    evaluations: int
    line_searches: int


def _extrapolated_step(t1: float, f1: float, d1: float, t2: float, f2: float, d2: float, cfg: NCGConfig) -> float:
    """The next trial step while extrapolating: the minimiser of the cubic through (t1, f1, d1) and (t2, f2, d2),
    kept within [t2 + interval·(t2 − t1), extrapolation·t2] (at most ×``extrapolation``, never too close to t2)."""
    A = 6 * (f1 - f2) + 3 * (d2 + d1) * (t2 - t1)
    B = 3 * (f2 - f1) - (2 * d1 + d2) * (t2 - t1)
    disc = B * B - A * d1 * (t2 - t1)
    candidate = t1 - d1 * (t2 - t1) ** 2 / (B + math.sqrt(disc)) if disc >= 0 and B + math.sqrt(disc) != 0 \
        else math.nan
    if not math.isfinite(candidate) or candidate < 0 or candidate > t2 * cfg.extrapolation:
        return t2 * cfg.extrapolation
    if candidate < t2 + cfg.interval * (t2 - t1):
        return t2 + cfg.interval * (t2 - t1)
    return candidate


def _interpolated_step(t2: float, f2: float, d2: float, t4: float, f4: float, d4: float, f0: float,
                       cfg: NCGConfig) -> float:
    """The next trial step inside the bracket [t2, t4]: quadratic interpolation when the far point is worse than
    the start (f4 > f0), cubic otherwise; bisection if that fails; kept ``interval`` of the bracket from its ends."""
    if f4 > f0:
        denominator = f4 - f2 - d2 * (t4 - t2)
        step = t2 - (0.5 * d2 * (t4 - t2) ** 2) / denominator if denominator != 0 else math.nan
    else:
        A = 6 * (f2 - f4) / (t4 - t2) + 3 * (d4 + d2)
        B = 3 * (f4 - f2) - (2 * d2 + d4) * (t4 - t2)
        disc = B * B - A * d2 * (t4 - t2) ** 2
        step = t2 + (math.sqrt(disc) - B) / A if disc >= 0 and A != 0 else math.nan
    if not math.isfinite(step):
        step = (t2 + t4) / 2
    return max(min(step, t4 - cfg.interval * (t4 - t2)), t2 + cfg.interval * (t4 - t2))


class _LineSearch:
    """One Wolfe–Powell line search along s from x, where f(x) = f0, ∇f(x) = g0 and the slope is d0 = g0ᵀs < 0;
    at most ``max_evaluations`` evaluations. Keeps the best point seen, for when the search fails."""

    def __init__(self, fun: Callable[[Tensor], tuple[float, Tensor]], x: Tensor, s: Tensor, f0: float, g0: Tensor,
                 d0: float, cfg: NCGConfig) -> None:
        self.fun, self.x, self.s, self.cfg = fun, x, s, cfg
        self.f0, self.g0, self.d0 = f0, g0, d0
        self.budget = cfg.max_evaluations
        self.evaluations = 0
        self.best = (x, f0, g0)

    def evaluate(self, step: float) -> tuple[float, Tensor, bool]:
        self.budget -= 1
        self.evaluations += 1
        f, g = self.fun(self.x + step * self.s)
        ok = math.isfinite(f) and bool(torch.isfinite(g).all())
        if ok and f < self.best[1]:
            self.best = (self.x + step * self.s, f, g)
        return f, g, ok

    def too_high(self, step: float, f: float) -> bool:
        """The sufficient-decrease condition f ≤ f0 + ρ t d0 fails."""
        return f > self.f0 + step * self.cfg.rho * self.d0

    def succeeded(self, step: float, f: float, d: float) -> bool:
        """Both strong Wolfe–Powell conditions hold at the step."""
        return abs(d) < -self.cfg.sigma * self.d0 and f < self.f0 + step * self.cfg.rho * self.d0

    def extrapolate(self, step: float) -> tuple[float, float, Tensor, float]:
        """Grow the step (halving it towards the origin after a non-finite evaluation) until the slope condition
        fails, the value rises too much or the budget is spent; returns (t, f, g, slope) there."""
        while True:
            f3, g3, ok = self.f0, self.g0, False
            while not ok and self.budget > 0:
                f3, g3, ok = self.evaluate(step)
                if not ok:
                    step = step / 2  # bisect towards the last good point, the origin
            d3 = float(g3 @ self.s) if ok else math.inf
            if d3 > self.cfg.sigma * self.d0 or self.too_high(step, f3) or self.budget == 0:
                return step, f3, g3, d3
            step = _extrapolated_step(0.0, self.f0, self.d0, step, f3, d3, self.cfg)

    def interpolate(self, step: float, f3: float, g3: Tensor, d3: float) -> tuple[float, float, Tensor, float]:
        """Shrink the bracket [t2, t4] (t2 from the origin) until the Wolfe–Powell conditions hold or the budget
        is spent; returns (t, f, g, slope) at the last point evaluated."""
        t2, f2, d2 = 0.0, self.f0, self.d0
        t4 = f4 = d4 = None
        while (abs(d3) > -self.cfg.sigma * self.d0 or self.too_high(step, f3)) and self.budget > 0:
            if d3 > 0 or self.too_high(step, f3):
                t4, f4, d4 = step, f3, d3
            else:
                t2, f2, d2 = step, f3, d3
            if t4 is None:
                break
            step = _interpolated_step(t2, f2, d2, t4, f4, d4, self.f0, self.cfg)
            f3, g3, ok = self.evaluate(step)
            if not ok:
                f3, d3 = math.inf, math.inf
                continue
            d3 = float(g3 @ self.s)
        return step, f3, g3, d3


def minimize(fun: Callable[[Tensor], tuple[float, Tensor]], x: Tensor, line_searches: int,
             cfg: NCGConfig) -> MinimizeResult:
    """Polak–Ribière CG with Wolfe–Powell line searches, started from steepest descent at ``x``."""
    f0, g0 = fun(x)
    evaluations, searches, failed_before = 1, 0, False
    s = -g0
    d0 = float(-(s @ s))
    step = 1.0 / (1.0 - d0)
    while searches < line_searches:
        searches += 1
        search = _LineSearch(fun, x, s, f0, g0, d0, cfg)
        step, f3, g3, d3 = search.interpolate(*search.extrapolate(step))
        evaluations += search.evaluations
        if search.succeeded(step, f3, d3):
            x, f0 = x + step * s, f3
            s = (float(g3 @ g3 - g0 @ g3) / max(float(g0 @ g0), TINY)) * s - g3  # Polak–Ribière
            g0 = g3
            previous_slope, d0 = d0, float(g0 @ s)  # the ratio of the old and new initial slopes
            if d0 > 0:  # not a descent direction: steepest descent
                s = -g0
                d0 = float(-(s @ s))
            step = step * min(cfg.max_slope_ratio, previous_slope / (d0 - TINY))
            failed_before = False
        else:
            x, f0, g0 = search.best  # the best point seen
            if failed_before:
                break
            s = -g0
            d0 = float(-(s @ s))
            step = 1.0 / (1.0 - d0)
            failed_before = True
    return MinimizeResult(x, f0, evaluations, searches)


class NonlinearCG(Optimizer):
    config_class = NCGConfig
    stat_names = ("evaluations", "line_searches")

    def __init__(self, problem: Any, cfg: NCGConfig) -> None:
        super().__init__(problem, cfg)
        self.space = ParamSpace.of(problem.model)

    def step(self, iteration: int, sampler: Sampler) -> StepResult:
        batch = sampler.next(self.cfg.batch_size)
        value_and_grad = torch.func.grad_and_value(lambda p: self.problem.objective_at(batch, p))

        def fun(flat: Tensor) -> tuple[float, Tensor]:
            grad, value = value_and_grad(self.space.unflatten(flat))
            return float(value), self.space.flatten(grad).detach()

        x0 = self.space.flatten(detached_params(self.problem.model)).clone()
        h0 = float(self.problem.objective_at(batch, self.space.unflatten(x0)).detach())
        with self.phases("line_search"):  # NCG's work is its line searches (gradient + value per evaluation)
            result = minimize(fun, x0, self.cfg.line_searches, self.cfg)
        with torch.no_grad(), self.phases("update"):
            values = self.space.unflatten(result.x)
            for name, p in self.problem.model.named_parameters():
                p.copy_(values[name])
        return StepResult(h0, StepCosts(grad_evals=result.evaluations, forward_passes=1),
                          {"evaluations": result.evaluations, "line_searches": result.line_searches})

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None
