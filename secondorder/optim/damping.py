"""Levenberg–Marquardt adaptation of the Tikhonov damping λ — one rule for HF, K-FAC, KFRA/KFLR and K-FAC-RNN.

After a step δ, the reduction ratio

    ρ = (h(θ + δ) − h(θ)) / (M(δ) − M(0))

compares the objective's actual change with the change the quadratic model M predicted. A small ρ means the
model is too optimistic, so the trust placed in it shrinks (λ grows); a large ρ means the model is reliable,
so λ shrinks:

    ρ < ρ_low   ⇒  λ ← λ · increase     (or λ / decrease when no increase factor is given)
    ρ > ρ_high  ⇒  λ ← λ · decrease
    otherwise      λ unchanged;

a NaN ρ (or a rejected, non-finite step: :meth:`LevenbergMarquardt.fail`) counts as a failure and raises λ,
and λ stays within the optional bounds [λ_min, λ_max].

The papers' constants (``conf/optimizer/*.yaml`` carries them):

- HF (Martens 2010; thesis §4.6.5, eq. 4.9): ρ_low = ¼, ρ_high = ¾, decrease ⅔, increase 3⁄2, every iteration,
  with bounds as a safety net.
- K-FAC (Martens & Grosse 2015, §6.5): ρ_low = ¼, ρ_high = ¾, decrease ω₁ = (19/20)^{T₁}, increase 1/ω₁ applied
  as a division by ω₁, every T₁ = 5 iterations.
- KFRA / KFLR (Botev et al. 2017, App. C.3.1, eq. 42): ρ_low = ρ_high = 0.75 (the text's literal rule),
  decrease ω_τ = 0.95⁵, increase 1/ω_τ, every 5 iterations.
- K-FAC for RNNs (Martens, Ba & Johnson 2018) reports a fixed, grid-searched λ; the rule is an option there
  (``lambda_period``), off by default.

The arithmetic is exactly the one each method used before this helper existed (``λ · 1.5`` and
``λ / ω₁`` are different floating-point operations from ``λ · (1/ω₁)``), so runs keep their trajectories.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from secondorder.validation import Check


@dataclass
class LevenbergMarquardt:
    """The damping λ and the Levenberg–Marquardt rule that adapts it (see the module docstring).

    ``increase=None`` raises λ by *dividing* by ``decrease`` (K-FAC, KFRA); ``min_lambda`` / ``max_lambda``
    of None leave that side unbounded.
    """

    lam: float
    decrease: float
    increase: float | None = None
    rho_low: float = 0.25
    rho_high: float = 0.75
    min_lambda: float | None = None
    max_lambda: float | None = None

    @classmethod
    def from_config(cls, cfg: Any) -> LevenbergMarquardt:
        """From a config with the shared names ``initial_lambda``, ``lambda_decrease``, ``lambda_increase``,
        ``rho_low``, ``rho_high``, ``min_lambda`` and ``max_lambda``."""
        return cls(lam=cfg.initial_lambda, decrease=cfg.lambda_decrease, increase=cfg.lambda_increase,
                   rho_low=cfg.rho_low, rho_high=cfg.rho_high, min_lambda=cfg.min_lambda,
                   max_lambda=cfg.max_lambda)

    def update(self, rho: float) -> float:
        """Apply the rule for reduction ratio ``rho``; returns the new λ."""
        if rho < self.rho_low or math.isnan(rho):
            return self.fail()
        if rho > self.rho_high:
            lam = self.lam * self.decrease
            self.lam = lam if self.min_lambda is None else max(lam, self.min_lambda)
        return self.lam

    def fail(self) -> float:
        """Raise λ as for a poor ρ: the step was rejected (non-finite proposal or ratio)."""
        lam = self.lam / self.decrease if self.increase is None else self.lam * self.increase
        self.lam = lam if self.max_lambda is None else min(lam, self.max_lambda)
        return self.lam

    def state_dict(self) -> dict[str, float]:
        return {"lambda": float(self.lam)}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.lam = float(state["lambda"])


def lm_checks(cfg: Any) -> list[Check]:
    """The value rules every optimiser with LM damping shares (one rule for all: ρ_low ≤ ρ_high is allowed,
    KFRA uses ρ_low = ρ_high = 0.75)."""
    return [
        ("initial_lambda", cfg.initial_lambda > 0, "must be > 0"),
        ("lambda_decrease", 0.0 < cfg.lambda_decrease < 1.0, "must lie in (0, 1)"),
        ("lambda_increase", cfg.lambda_increase is None or cfg.lambda_increase > 1.0,
         "must be > 1 (or null: divide by lambda_decrease)"),
        ("rho_low", cfg.rho_low <= cfg.rho_high, f"must be <= rho_high={cfg.rho_high}"),
        ("min_lambda", cfg.min_lambda is None or cfg.min_lambda >= 0, "must be >= 0 (or null: no bound)"),
        ("max_lambda", cfg.max_lambda is None or cfg.max_lambda > 0, "must be > 0 (or null: no bound)"),
        ("max_lambda", cfg.min_lambda is None or cfg.max_lambda is None or cfg.min_lambda <= cfg.max_lambda,
         "must be >= min_lambda"),
    ]
