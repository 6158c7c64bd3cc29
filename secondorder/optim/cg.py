"""Preconditioned conjugate gradient for HF (thesis Alg. 2, §4.2, §4.6.7).

Minimises q(x) = ½ xᵀAx − bᵀx for a symmetric operator A (the damped curvature) from an initial x₀:

    r₀ = A x₀ − b;  y₀ = P⁻¹ r₀;  p₀ = −y₀
    αᵢ = rᵢᵀyᵢ / pᵢᵀApᵢ;  xᵢ₊₁ = xᵢ + αᵢpᵢ;  rᵢ₊₁ = rᵢ + αᵢApᵢ;  yᵢ₊₁ = P⁻¹rᵢ₊₁
    βᵢ₊₁ = rᵢ₊₁ᵀyᵢ₊₁ / rᵢᵀyᵢ;  pᵢ₊₁ = −yᵢ₊₁ + βᵢ₊₁pᵢ

with one product Apᵢ per iteration and the quadratic's value tracked for free, q(xᵢ) = ½ (rᵢ − b)ᵀxᵢ (thesis §4.2).
The scalars each iteration decides on (pᵢᵀApᵢ, rᵢᵀyᵢ, q(xᵢ₊₁), rᵢ₊₁ᵀyᵢ₊₁) reach the host in a single transfer,
so on a GPU the loop synchronises once per iteration rather than once per test — or once per ``sync_every``
iterations, running ahead and replaying the decisions (same result; see :func:`pcg`).

Termination (Martens 2010; thesis §4.2, eq. 4.2): with window k = max(10, ⌈0.1 i⌉), stop after iteration i when
i > k, q(x_{i−k}) < 0 and (q(xᵢ) − q(x_{i−k})) / q(xᵢ) < threshold, where threshold is ``tolerance`` (the
thesis's literal s_j < 1e-4, ``mode="window"``) or k · ``tolerance`` (Martens' code, 5e-4 average progress
per step, ``mode="per_step"``); always at ``max_iters``. It also stops on non-positive curvature pᵀAp ≤ 0
(the code's bail-out) and on non-finite values (returning the last finite iterate).

Iterates are stored at i = ⌈first · growthʲ⌉ (5, 7, 9, 11, 15, 19, 25, 32, …; Martens' code) and at the end,
for CG-backtracking.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

STOP_CODES = {"progress": 0, "max_iters": 1, "negative_curvature": 2, "nonfinite": 3, "converged": 4}


def backtracking_schedule(max_iters: int, first: float = 5.0, growth: float = 1.3) -> list[int]:
    """Iteration counts at which CG stores its iterate: ⌈first · growthʲ⌉, j = 0, 1, … (distinct, ≤ max)."""
    steps, j = [], 0
    while True:
        i = math.ceil(first * growth**j - 1e-9)
        if i > max_iters:
            return steps
        if not steps or i > steps[-1]:
            steps.append(i)
        j += 1


def progress_stop(i: int, q: list[float], tolerance: float, mode: str) -> bool:
    """Martens' progress-based rule on the tracked values q[0..i] (q[j] = q(x_j))."""
    k = max(10, math.ceil(0.1 * i))
    if i <= k or q[i - k] >= 0 or q[i] >= 0:
        return False
    threshold = tolerance * k if mode == "per_step" else tolerance
    return (q[i] - q[i - k]) / q[i] < threshold


@dataclass
class CGResult:
    x: Tensor
    iterations: int
    reason: str
    q_values: list[float]
    stored: list[tuple[int, Tensor]] = field(default_factory=list)
    products: int = 0


class ObjectiveReductionStop:
    """Martens & Sutskever's RNN rule (thesis §4.13): stop CG "once the magnitude of the reduction in the
    objective decreased below 90 % of the maximum so far obtained during the CG run". The thesis does not say
    which objective or how often: here h on the curvature batch, at the iterations in ``checkpoints`` (the
    backtracking schedule, where the iterates are kept anyway) [choice]. Each check costs one forward pass."""

    def __init__(self, objective_at: Callable[[Tensor], float], h0: float, checkpoints: set[int],
                 costs: object | None = None, fraction: float = 0.9) -> None:
        self.objective_at, self.h0, self.checkpoints = objective_at, h0, checkpoints
        self.costs, self.fraction = costs, fraction
        self.best = 0.0
        self.reductions: list[tuple[int, float]] = []

    def __call__(self, i: int, q: list[float], x: Tensor) -> bool:
        if i not in self.checkpoints:
            return False
        reduction = self.h0 - self.objective_at(x)
        if self.costs is not None:
            self.costs.forward_passes += 1
        self.reductions.append((i, reduction))
        if not math.isfinite(reduction):
            return True
        self.best = max(self.best, reduction)
        return self.best > 0 and reduction < self.fraction * self.best


def pcg(
    A: Callable[[Tensor], Tensor],
    b: Tensor,
    x0: Tensor,
    *,
    precondition: Callable[[Tensor], Tensor] | None = None,
    max_iters: int = 250,
    min_iters: int = 1,
    tolerance: float = 5e-4,
    mode: str = "per_step",
    store_at: list[int] | None = None,
    stop: Callable[[int, list[float], Tensor], bool] | None = None,
    sync_every: int = 1,
) -> CGResult:
    """Run PCG; ``stop(i, q, x_i)`` replaces the progress rule when given (e.g. the RNN 90 % rule).

    ``sync_every`` = s: run s iterations ahead without looking at their scalars (so a GPU's queue never drains
    while the host decides), fetch the scalars of all s in one transfer, then take the decisions iteration by
    iteration as the one-at-a-time loop would; iterations computed past a stop are discarded (their products
    are still counted — the work was done). The returned iterates, q values and stopping reason are the same
    for every s; s = 1 synchronises once per iteration. Memory: s copies of (x, r, p).
    """
    apply_p = precondition or (lambda r: r)
    store = set(store_at or [])
    products = 0
    x = x0.clone()
    if bool(torch.any(x0 != 0)):
        r = A(x) - b
        products += 1
    else:
        r = -b.clone()
    y = apply_p(r)
    p = -y
    ry = torch.dot(r, y)
    q = [float(0.5 * torch.dot(r - b, x))]
    stored: list[tuple[int, Tensor]] = []
    reason, i = "max_iters", 0
    if not math.isfinite(q[0]):  # the start overflows the quadratic: offer the zero step only
        zero = torch.zeros_like(x0)
        return CGResult(zero, 0, "nonfinite", [0.0], [(0, zero)], products)
    finished = False
    while i < max_iters and not finished:
        block = _look_ahead(A, apply_p, b, x, r, p, ry, min(sync_every, max_iters - i))
        products += len(block)
        values = torch.stack([entry[0] for entry in block]).tolist()  # the one device-to-host transfer
        for (curvature_value, ry_value, q_next, ry_next_value), entry in zip(values, block, strict=True):
            finished = True
            failure = _breakdown(curvature_value, ry_value, q_next)
            if failure is not None:
                reason = failure
                break
            _, x, r, p_next, ry_next = entry
            i += 1
            q.append(q_next)
            if i in store:
                stored.append((i, x.clone()))
            if ry_next_value == 0:
                reason = "converged"
                break
            p, ry = p_next, ry_next
            if i >= min_iters and (stop(i, q, x) if stop is not None else progress_stop(i, q, tolerance, mode)):
                reason = "progress"
                break
            finished = False
    if not stored or stored[-1][0] != i:
        stored.append((i, x.clone()))
    return CGResult(x, i, reason, q, stored, products)


def _look_ahead(A: Callable[[Tensor], Tensor], apply_p: Callable[[Tensor], Tensor], b: Tensor, x: Tensor,
                r: Tensor, p: Tensor, ry: Tensor, steps: int) -> list[tuple[Tensor, Tensor, Tensor, Tensor, Tensor]]:
    """``steps`` PCG iterations from (x, r, p, rᵀy) without any host synchronisation: for each, the scalars the
    decisions need — pᵀAp, rᵀy, q(x_{j+1}) = ½ (r_{j+1} − b)ᵀx_{j+1}, r_{j+1}ᵀy_{j+1} — stacked on the device,
    and x_{j+1}, r_{j+1}, p_{j+1}, r_{j+1}ᵀy_{j+1}. One curvature product per iteration."""
    block = []
    for _ in range(steps):
        Ap = A(p)
        curvature = torch.dot(p, Ap)
        alpha = ry / curvature
        x_next = x + alpha * p
        r_next = r + alpha * Ap
        y_next = apply_p(r_next)
        ry_next = torch.dot(r_next, y_next)
        p_next = -y_next + (ry_next / ry) * p
        block.append((torch.stack([curvature, ry, 0.5 * torch.dot(r_next - b, x_next), ry_next]),
                      x_next, r_next, p_next, ry_next))
        x, r, p, ry = x_next, r_next, p_next, ry_next
    return block


def _breakdown(curvature: float, ry: float, q_next: float) -> str | None:
    """Why an iteration cannot be taken (non-finite scalars, or pᵀAp ≤ 0), or None when it can."""
    if not (math.isfinite(curvature) and math.isfinite(ry)):
        return "nonfinite"
    if curvature <= 0:
        return "negative_curvature"
    if not math.isfinite(q_next):
        return "nonfinite"
    return None
