"""Backtracking line search with the Armijo condition (thesis §4.6.8, the sufficient-decrease condition).

Start at α = ``initial`` and multiply by ``shrink`` (β; the thesis leaves it open, Martens' code uses 0.8)
until h(θ + αp) ≤ h(θ) + c α ∇hᵀp, with c = 1e-2, at most ``max_steps`` times (60 in the code); if no α is
accepted, or p is not a descent direction (∇hᵀp ≥ 0), the step is rejected (α = 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class LineSearchResult:
    rate: float
    value: float
    evaluations: int


def armijo_backtracking(
    h: Callable[[float], float],
    h0: float,
    slope: float,
    *,
    c: float = 1e-2,
    shrink: float = 0.8,
    max_steps: int = 60,
    initial: float = 1.0,
    h_initial: float | None = None,
) -> LineSearchResult:
    """``h(α)`` evaluates the objective at θ + αp; ``h_initial`` reuses a known h(initial)."""
    if not slope < 0:
        return LineSearchResult(0.0, h0, 0)
    rate, evaluations = initial, 0
    for step in range(max_steps + 1):
        if step == 0 and h_initial is not None:
            value = h_initial
        else:
            value = h(rate)
            evaluations += 1
        if math.isfinite(value) and value <= h0 + c * rate * slope:
            return LineSearchResult(rate, value, evaluations)
        rate *= shrink
    return LineSearchResult(0.0, h0, evaluations)
