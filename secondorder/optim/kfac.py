"""K-FAC (Martens & Grosse 2015; thesis ch. 6, Algorithm 7 of §6.9), block-diagonal or
block-tridiagonal, with the paper's damping, re-scaling, momentum and statistics machinery.

Iteration k = 1, 2, …:

1. Mini-batch S′ of size m_k = min(⌊m₁ exp((k−1)/b)⌋, |S|), b such that m reaches |S| at iteration
   ``batch_full_at`` = 500 (thesis §6.13), or a fixed m. Gradient ∇h and h(θ) on S′ (ℓ2 prior η included).
2. Statistics pass on S₁ = the first ⌈τ₁ m⌉ cases (τ₁ = 1/8, §6.8): forward, targets sampled from the
   model's predictive distribution, backward; fold Ā, G (and the cross factors) into their running averages
   with ε_k = min(1 − 1/k, 0.95) (:mod:`secondorder.kfac.factors`).
3. γ candidates: {γ} or, every T₂ = 20 iterations, {max(ω₂γ, γ_min), γ, min(γ/ω₂, γ_max)} with
   ω₂ = (19/20)^{T₂/2} (§6.6.6; bounds from Martens' code, γ_min = √η, γ_max = 1).
4. Inverse refresh at k ≤ 3 and every T₃ = 20 iterations (:mod:`secondorder.kfac.inverses`).
5. For each candidate: proposal Δ = −F̆⁻¹∇h; (α, μ) minimising the exact-F damped quadratic over span{Δ, δ₀}
   (§6.7), with uᵀFv = mean over S₂ of (Ju)ᵀ F_R (Jv) from Jacobian-vector products (thesis App. B.3; S₂ = the
   first ⌈τ₂ m⌉ cases, τ₂ = 1 as in Martens' code — the thesis used 1/4 but had to revert to 1 in some
   settings, §6.8):

       [α; μ] = −[[ΔᵀFΔ + (λ+η)‖Δ‖², ΔᵀFδ₀ + (λ+η)Δᵀδ₀], [·, δ₀ᵀFδ₀ + (λ+η)‖δ₀‖²]]⁻¹ [∇hᵀΔ; ∇hᵀδ₀],

   δ = αΔ + μδ₀ and the model's predicted change M(δ) = ½∇hᵀδ (§6.6.5). Without momentum (or at k = 1,
   δ₀ = 0) only α. The candidate with the lowest M(δ) wins.
6. Every T₁ = 5 iterations: ρ = (h(θ+δ) − h(θ)) / M(δ) on S′ (−∞ if h rose, as in the code); Levenberg–Marquardt
   (§6.5; :mod:`.damping`): ρ > ¾ ⇒ λ ← ω₁λ, ρ < ¼ ⇒ λ ← λ/ω₁, ω₁ = (19/20)^{T₁} (§6.6.5); initial λ = 150.
7. θ ← θ + δ; δ₀ ← δ.

A non-finite proposal is rejected (no step, λ raised, momentum reset). Polyak averaging of the iterates
(ξ = 0.99, §6.13) is the trainer's ``trainer.polyak_decay``.

KFRA and KFLR (Botev, Ritter & Barber 2017, App. C and Algorithm 1 in App. H) are the same iteration
with other settings, so they are configurations of this class (``conf/optimizer/kfra.yaml``, ``kflr.yaml``):
``factors=kfra`` (the deterministic recursion of :mod:`secondorder.kfac.kfra`) or ``kflr`` (the exact expected
pre-activation GN, i.e. K-FAC statistics with the exact expectation over targets) on the whole batch,
factors recomputed and inverted every iteration, optional running average 0.9, no momentum, α* from the full
GN quadratic (τ₂ = 1), τ (our λ) by LM every 5 iterations with the text's literal 0.75 / 0.75 thresholds,
γ greedy every 20 iterations by ω_γ = 0.95²⁰ with γ entering the factors as √(γ + η) (``gamma_form=kfra``),
fixed batch 1000, iterate averaging β_t = min(0.95, 1 − 1/t).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from secondorder.curvature.params import ParamDict, detached_params
from secondorder.curvature.products import curvature_targets
from secondorder.distributed import local_count, mean_, union_count, world
from secondorder.errors import ConfigError
from secondorder.kfac.factors import KroneckerFactors, collect_statistics
from secondorder.kfac.inverses import (
    BlockDiagonalInverse,
    BlockTridiagonalInverse,
    CholeskyBlockDiagonal,
    KroneckerInverse,
)
from secondorder.kfac.kfra import activations_after, kfra_statistics
from secondorder.kfac.layers import LinearLayers
from secondorder.kfac.rescaling import output_jvps, quadratic_terms
from secondorder.optim.base import Optimizer, StepCosts, StepResult, all_finite
from secondorder.optim.damping import LevenbergMarquardt, lm_checks
from secondorder.problems.samplers import Sampler
from secondorder.validation import Check, in_range, one_of, positive

log = logging.getLogger(__name__)


@dataclass
class KFACConfig:  # names kfac, kfac_tridiag, kfra, kflr: one algorithm, the YAML sets the variant
    name: str = "kfac"
    approximation: str = "blockdiag"
    momentum: bool = True
    initial_lambda: float = 150.0
    lambda_period: int = 5
    lambda_decrease: float = 0.95**5
    lambda_increase: float | None = None
    rho_low: float = 0.25
    rho_high: float = 0.75
    min_lambda: float | None = None
    max_lambda: float | None = None
    initial_gamma: float | None = None
    gamma_period: int = 20
    gamma_decay: float = 0.95**10
    gamma_min: float | None = None
    gamma_max: float | None = 1.0
    inverse_period: int = 20
    parallel_inverses: str = "spread"  # data-parallel runs: spread | every_rank (see choose_inverse)
    stats_fraction: float = 0.125
    fisher_fraction: float = 1.0
    stats_decay: float = 0.95
    stats_decay_ramp: bool = True
    factors: str = "kfac"
    gamma_form: str = "kfac"
    batch_schedule: str = "exponential"
    batch_size: int = 1000
    batch_full_at: int = 500
    seed: int = 0

    def check(self) -> list[Check]:
        return [
            one_of(self, "approximation", ["blockdiag", "tridiag"]),
            one_of(self, "parallel_inverses", ["spread", "every_rank"]),
            *positive(self, "lambda_period", "gamma_period", "inverse_period", "batch_size", "batch_full_at"),
            *lm_checks(self),
            *positive(self, "initial_gamma", "gamma_max", allow_none=True),
            ("gamma_min", self.gamma_min is None or self.gamma_min >= 0, "must be >= 0 (or null: √η)"),
            in_range(self, "gamma_decay", 0.0, 1.0),
            ("gamma_period", self.gamma_period % self.inverse_period == 0,
             "must be a multiple of inverse_period (thesis §6.6.6)"),
            in_range(self, "stats_fraction", 0.0, 1.0, closed_high=True),
            in_range(self, "fisher_fraction", 0.0, 1.0, closed_high=True),
            ("stats_fraction", self.stats_fraction > 0, "must be > 0"),
            ("fisher_fraction", self.fisher_fraction > 0, "must be > 0"),
            in_range(self, "stats_decay", 0.0, 1.0),
            one_of(self, "factors", ["kfac", "empirical", "kflr", "kfra"]),
            one_of(self, "gamma_form", ["kfac", "kfra"]),
            ("factors", not (self.factors == "kfra" and self.approximation == "tridiag"),
             "kfra gives block-diagonal factors only: use approximation=blockdiag"),
            one_of(self, "batch_schedule", ["exponential", "fixed"]),
        ]


def batch_size_at(k: int, cfg: KFACConfig, n_train: int | None) -> int:
    """m_k = min(⌊m₁ exp((k−1)/b)⌋, |S|) with b = (k_full − 1)/ln(|S|/m₁) (thesis §6.13; code floors)."""
    if cfg.batch_schedule == "fixed" or n_train is None:
        return cfg.batch_size if n_train is None else min(cfg.batch_size, n_train)
    if n_train <= cfg.batch_size:
        return n_train
    b = (cfg.batch_full_at - 1) / math.log(n_train / cfg.batch_size)
    return min(math.floor(cfg.batch_size * math.exp((k - 1) / b) + 1e-9), n_train)


def solve_step_coefficients(gram: Tensor, dots: Tensor, rhs: Tensor, damping: float) -> tuple[Tensor, float]:
    """Minimise the damped quadratic over the span of the directions: returns the coefficients and M(δ).

    ``gram`` = [uᵢᵀ F uⱼ], ``dots`` = [uᵢᵀ uⱼ], ``rhs`` = [∇hᵀ uᵢ]; M = gram + damping · dots.
    """
    M = gram + damping * dots
    try:
        coefficients = -torch.linalg.solve(M, rhs)
    except (RuntimeError, torch.linalg.LinAlgError):
        coefficients = -torch.linalg.lstsq(M, rhs[:, None]).solution[:, 0]
    return coefficients, 0.5 * float(rhs @ coefficients)


class KFAC(Optimizer):
    config_class = KFACConfig
    compile_ok = False  # its statistics come from module hooks (trainer.compile)
    distributed_ok = True  # gradient, factor statistics, the re-scaling's Gram and ρ's objective: union means
    stat_names = ("lambda", "gamma", "alpha", "mu", "rho", "batch_size", "model_change")

    def __init__(self, problem: Any, cfg: KFACConfig) -> None:
        super().__init__(problem, cfg)
        device = next(problem.model.parameters()).device
        self.device = device
        probe_sampler = problem.make_sampler(seed=0)
        probe = probe_sampler.next(2)
        self.layers = LinearLayers(problem.model, lambda: problem.outputs(probe))
        self.tridiagonal = cfg.approximation == "tridiag"
        self.factors = KroneckerFactors(len(self.layers), cross=self.tridiagonal, max_decay=cfg.stats_decay,
                                        ramp=cfg.stats_decay_ramp)
        self.activations = activations_after(problem.model, self.layers) if cfg.factors == "kfra" else []
        self.inverse = choose_inverse(cfg)
        eta = problem.l2
        self.damping = LevenbergMarquardt.from_config(cfg)
        # γ enters the factors as γ itself (K-FAC, thesis §6.6.6) or as √(γ + η) (KFRA, App. C eq. 36); the
        # default start gives the same damping either way: √(λ₀ + η).
        default_gamma = math.sqrt(self.lam + eta) if cfg.gamma_form == "kfac" else self.lam
        self.gamma = cfg.initial_gamma if cfg.initial_gamma is not None else default_gamma
        self.gamma_min = cfg.gamma_min if cfg.gamma_min is not None else (math.sqrt(eta) if eta > 0 else 1e-8)
        self.gamma_max = cfg.gamma_max if cfg.gamma_max is not None else math.inf
        self.previous: ParamDict | None = None  # δ₀
        self.generator = torch.Generator(device=device).manual_seed(cfg.seed)

    @property
    def lam(self) -> float:
        """The current Tikhonov damping λ (held by the Levenberg–Marquardt rule, :mod:`.damping`)."""
        return self.damping.lam

    @lam.setter
    def lam(self, value: float) -> None:
        self.damping.lam = value

    # ------------------------------------------------------------------ pieces
    def _gradient(self, batch: Any) -> tuple[float, ParamDict]:
        """h and ∇h on the batch (the union batch's in a data-parallel run: one all-reduce)."""
        names = [n for n, p in self.problem.model.named_parameters() if p.requires_grad]
        params = [p for p in self.problem.model.parameters() if p.requires_grad]
        h = self.problem.objective(batch)
        grads = [g.detach() for g in torch.autograd.grad(h, params)]
        h = h.detach()
        mean_([*grads, h], self.problem.cases(batch))
        return float(h), dict(zip(names, grads, strict=True))

    def _first_cases(self, batch: Any, union: int, fraction: float) -> Any:
        """The first ⌈fraction · m⌉ cases of the (union) batch of m cases — on this rank, its share of them."""
        first = max(1, math.ceil(fraction * union))
        if first < world():
            raise ConfigError(f"K-FAC's subset of {first} cases (a fraction {fraction:g} of a batch of {union}) "
                              f"cannot feed {world()} processes; use a larger batch or fewer processes")
        return self.problem.subset(batch, torch.arange(local_count(first)))

    def _gamma_candidates(self, k: int) -> list[float]:
        if k % self.cfg.gamma_period != 0:
            return [self.gamma]
        w = self.cfg.gamma_decay
        return [max(w * self.gamma, self.gamma_min), self.gamma, min(self.gamma / w, self.gamma_max)]

    def _damping_scale(self, gamma: float) -> float:
        """The factor damping: πγ and γ/π (K-FAC) or ω√(γ+η) and √(γ+η)/ω (KFRA)."""
        return gamma if self.cfg.gamma_form == "kfac" else math.sqrt(gamma + self.problem.l2)

    def _proposal(self, gradient_blocks: list[Tensor], gamma: float) -> list[Tensor]:
        """Δ = −F̆⁻¹∇h with the factor damping of γ (the back-end counts its own decompositions)."""
        with self.phases("proposal"):
            return [-u for u in self.inverse.apply(gradient_blocks, self._damping_scale(gamma))]

    # ------------------------------------------------------------------ one iteration
    def step(self, iteration: int, sampler: Sampler) -> StepResult:
        cfg, problem = self.cfg, self.problem
        k = iteration + 1
        costs = StepCosts()
        m = batch_size_at(k, cfg, getattr(sampler, "n", None))
        batch = sampler.next(m)
        with self.phases("gradient"):
            h0, grad = self._gradient(batch)
            finite = math.isfinite(h0) and all_finite(grad.values())
        costs.grad_evals += 1
        stats: dict[str, float] = {"batch_size": m, "lambda": self.lam, "gamma": self.gamma, "rho": math.nan}
        if not finite:
            return StepResult(h0 if not math.isfinite(h0) else math.nan, costs, stats)

        union = union_count(int(problem.case_slices(batch)[0].shape[0]))
        stats_batch = self._first_cases(batch, union, cfg.stats_fraction)
        fisher_batch = self._first_cases(batch, union, cfg.fisher_fraction)
        with self.phases("statistics"):
            if cfg.factors == "kfra":
                estimates = kfra_statistics(self.layers, self.activations, lambda: problem.outputs(stats_batch),
                                            problem.loss)
            else:
                targets = {"kfac": "sampled", "empirical": "empirical", "kflr": "exact"}[cfg.factors]
                estimates = collect_statistics(self.layers, lambda: problem.outputs(stats_batch), problem.loss,
                                               targets, self.generator, self.tridiagonal)
            self.factors.update(estimates)
        costs.grad_evals += 1

        inversions_before = self.inverse.inversions
        if k <= 3 or k % cfg.inverse_period == 0:
            matrices = self.factors.matrices()
            if getattr(self.inverse, "refreshes", 1) == 0:  # a long first step on a big model: say what it does
                blocks = [m for m in (*matrices["A"], *matrices["G"]) if m is not None]
                largest = max(m.shape[-1] for m in blocks)
                log.info("K-FAC: inverting %d Kronecker factors (the largest %d × %d), again every %d iterations",
                         len(blocks), largest, largest, cfg.inverse_period)
            with self.phases("inverses"):
                self.inverse.refresh(matrices)
        params = detached_params(problem.model)
        gradient_blocks = self.layers.to_blocks(grad)
        grad_flat = torch.cat([g.reshape(-1) for g in grad.values()])
        damping = self.lam + problem.l2
        n_fisher = problem.cases(fisher_batch)
        use_momentum = cfg.momentum and self.previous is not None

        # Proposals for every candidate γ, then one batched Jacobian-vector pass for them and δ₀.
        candidates = []
        for gamma in self._gamma_candidates(k):
            candidates.append((gamma, self.layers.from_blocks(self._proposal(gradient_blocks, gamma))))
        costs.inversions += self.inverse.inversions - inversions_before
        with self.phases("rescaling"):
            y_fisher = curvature_targets(problem, fisher_batch, params)
            directions = [delta for _, delta in candidates] + ([self.previous] if use_momentum else [])
            z, jvs = output_jvps(problem, fisher_batch, params, directions)
            costs.curvature_products += len(directions)
            hvs = [problem.loss.output_hessian_vector(z, jv, y_fisher) for jv in jvs]
            flats = [torch.cat([d[n].reshape(-1) for n in grad]) for d in directions]
            best = None
            for i, (gamma, delta) in enumerate(candidates):
                pick = [i, len(candidates)] if use_momentum else [i]
                terms = quadratic_terms([flats[j] for j in pick], [jvs[j] for j in pick], [hvs[j] for j in pick],
                                        grad_flat, n_fisher)
                coefficients, change = solve_step_coefficients(*terms, damping)
                if best is None or change < best[0]:
                    best = (change, gamma, coefficients, delta)

        change, gamma, coefficients, delta = best
        self.gamma = gamma
        alpha = float(coefficients[0])
        mu = float(coefficients[1]) if len(coefficients) > 1 else 0.0
        with self.phases("update"):
            step = {n: alpha * delta[n] + (mu * self.previous[n] if use_momentum else 0.0) for n in grad}
            finite = math.isfinite(change) and all_finite(step.values())
        stats.update(gamma=gamma, alpha=alpha, mu=mu, model_change=change)

        if not finite:
            self.damping.fail()
            self.previous = None
            stats["lambda"] = self.lam
            return StepResult(h0, costs, stats)

        if k % cfg.lambda_period == 0:
            with torch.no_grad(), self.phases("damping"):
                moved = {n: params[n] + step[n] for n in params}
                moved_objective = problem.objective_at(batch, moved)
                mean_([moved_objective], problem.cases(batch))
                h1 = float(moved_objective)
            costs.forward_passes += 1
            rho = -math.inf if (not math.isfinite(h1) or h1 > h0 or change >= 0) else (h1 - h0) / change
            stats["rho"] = rho
            self.damping.update(rho)
        stats["lambda"] = self.lam

        with torch.no_grad(), self.phases("update"):
            for name, p in problem.model.named_parameters():
                if name in step:
                    p.add_(step[name])
        self.previous = step
        return StepResult(h0, costs, stats)

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain values only (the inverse back-end's own state included)."""
        return {"lambda": self.lam, "gamma": self.gamma, "previous": self.previous,
                "factors": self.factors.state_dict(), "generator": self.generator.get_state(),
                "inverse": self.inverse.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lam, self.gamma = state["lambda"], state["gamma"]
        prev = state["previous"]
        self.previous = None if prev is None else {k: v.to(self.device) for k, v in prev.items()}
        self.factors.load_state_dict(state["factors"], self.device)
        self.generator.set_state(state["generator"])
        self.inverse.load_state_dict(state["inverse"], self.device)


def choose_inverse(cfg: KFACConfig) -> KroneckerInverse:
    """The inverse back-end for a configuration, chosen once: block-tridiagonal F̂⁻¹ for
    ``approximation=tridiag``; Cholesky solves when the factors are fresh every iteration (``inverse_period=1``:
    KFRA/KFLR, where eigendecompositions reused across iterations would not pay off); otherwise
    eigendecompositions refreshed every ``inverse_period`` iterations — in a data-parallel run spread over the ranks
    by layer (``parallel_inverses=spread``: each rank decomposes its share and broadcasts it) or done by every rank
    (``every_rank``); the tridiagonal back-end's decompositions and the Cholesky back-end's factorisations and
    solves likewise."""
    spread = cfg.parallel_inverses == "spread"
    if cfg.approximation == "tridiag":
        return BlockTridiagonalInverse(spread=spread)
    if cfg.inverse_period == 1:
        return CholeskyBlockDiagonal(spread=spread)
    return BlockDiagonalInverse(spread=spread)
