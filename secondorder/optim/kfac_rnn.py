"""K-FAC for recurrent networks (Martens, Ba & Johnson, ICLR 2018, §3.5 and §4).

One iteration on a batch of m sequences of length T:

1. One forward pass recording every block's inputs and outputs (:class:`~secondorder.kfac.sequence_layers.
   SequenceLayers`); the gradient ∇h of the objective; a second backward pass of the summed loss at targets
   *sampled from the model* (the Fisher, §2.2) gives the g_t.
2. Exponentially decayed averages of A₀, A₁, G₀, G₁ (decay ε_k = min(1 − 1/k, ``stats_decay``), as K-FAC).
3. Every ``inverse_period`` iterations (and at k ≤ 3) the pre-processing of pseudo-code C.3 for the chosen
   approximation (``approximation``: indep = eqn 6, option1 = eqn 8, option2 = eqn 9) with factored Tikhonov
   damping λ on V₀ (:class:`~secondorder.kfac.temporal.TemporalInverse`). The paper ran it asynchronously and
   used stale results (§4); a synchronous period stands in for that staleness.
4. v = F̂⁻¹ ĝ per block, where ĝ = (N/m)∇h is the gradient of the *per-sequence* summed loss (the Fisher is
   that of a sequence; N is the number of cases the objective averages over — tokens for language models).
5. Step size: Ba et al. (2017) §5, adopted by the paper (§4) — the update is rescaled so that its
   quadratic-model size stays within a trust region C: c = min(1, √(C / (η² ĝᵀv))), with ĝᵀv = vᵀF̂v
   (TF K-FAC's ``_update_clip_coeff``). Then momentum: u ← μu + c v, θ ← θ − η u.

The paper reports no values for η, C, μ, λ or the statistics decay (all grid-searched, §4): the defaults in
``conf/optimizer/kfac_rnn.yaml`` are our choices, marked there. Logged per iteration: ``clip`` (c),
``psi_max`` (largest |ψ̂| product, option1, or σ_max(Ψ̂), option2, over blocks) and ``clipped`` (spectral-bound
guards that fired; the paper's App. B.2 bound rules them out in exact arithmetic).

λ is fixed, as in the paper (a grid-searched constant). ``lambda_period = T`` (off by default, null) adds the
Levenberg–Marquardt rule of K-FAC (Martens & Grosse 2015, §6.5; :mod:`.damping`) as an extension: every T
iterations, on the iteration's batch, with δ = −η u the step about to be taken,

    ρ = (h(θ + δ) − h(θ)) / M(δ),   M(δ) = ∇hᵀδ + ½ δᵀFδ + ½ l₂‖δ‖²   (ρ = −∞ if h rose or M(δ) ≥ 0),

with F the exact Fisher (= GGN for the matching losses) of h on the batch, from one Jacobian-vector product
(δᵀFδ = (1/N) Σ (Jδ)ᵀ H_L (Jδ), as K-FAC's re-scaling computes it), and l₂ = ``objective.l2``, the ℓ2 prior on
the penalised parameters (η is the learning rate here). This step is not the
minimiser of a quadratic model (it is clipped, scaled by η and carries momentum), so K-FAC's shortcut
M(δ) = ½∇hᵀδ does not apply: M is evaluated at δ, and without λ (λ is a factored damping of the per-sequence
Fisher, not a λI added to the Fisher of h; HF's ρ likewise leaves λ out). The new λ takes effect at the next
inverse refresh. Cost: one forward pass and one Jacobian-vector product every T iterations; logged: ``lambda``
and ``rho``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from secondorder.curvature.params import detached_params
from secondorder.curvature.products import curvature_targets
from secondorder.distributed import draw_for_sequences, mean_, union_count
from secondorder.kfac.sequence_layers import SequenceLayers
from secondorder.kfac.temporal import APPROXIMATIONS, Factor, TemporalInverse, refresh_all
from secondorder.optim.base import Optimizer, StepCosts, StepResult, all_finite
from secondorder.optim.damping import LevenbergMarquardt, lm_checks
from secondorder.optim.schedules import decay_checks, learning_rate
from secondorder.problems.samplers import Sampler
from secondorder.validation import Check, in_range, one_of, positive


@dataclass
class KFACRNNConfig:
    name: str = "kfac_rnn"
    approximation: str = "option2"
    batch_size: int = 250
    lr: float = 0.1
    lr_decay: float = 1.0  # η's step decay r every lr_decay_every iterations from lr_decay_from (word PTB, §4)
    lr_decay_every: int | None = None
    lr_decay_from: int = 0
    momentum: float = 0.9
    trust_region: float = 0.01
    initial_lambda: float = 1e-2
    lambda_period: int | None = None
    lambda_decrease: float = 0.95**5
    lambda_increase: float | None = None
    rho_low: float = 0.25
    rho_high: float = 0.75
    min_lambda: float | None = None
    max_lambda: float | None = None
    stats_decay: float = 0.95
    inverse_period: int = 20
    max_dense_factor: int = 4096
    parallel_inverses: str = "spread"  # data-parallel runs: spread (each layer's refresh on one rank) | every_rank
    seed: int = 0

    def check(self) -> list[Check]:
        return [one_of(self, "approximation", list(APPROXIMATIONS)),
                one_of(self, "parallel_inverses", ["spread", "every_rank"]),
                *positive(self, "batch_size", "lr", "trust_region", "inverse_period", "max_dense_factor"),
                *positive(self, "lambda_period", "lr_decay_every", allow_none=True), *lm_checks(self),
                *decay_checks(self),
                in_range(self, "momentum", 0.0, 1.0), in_range(self, "stats_decay", 0.0, 1.0)]


def _fold(old: Factor | None, new: Factor, decay: float) -> Factor:
    if old is None:
        return new
    c1 = None if new.c1 is None else decay * old.c1 + (1 - decay) * new.c1
    return Factor(decay * old.c0 + (1 - decay) * new.c0, c1, new.diagonal)


class KFACRNN(Optimizer):
    config_class = KFACRNNConfig
    compile_ok = False  # its statistics come from module hooks (trainer.compile)
    distributed_ok = True  # gradient, the lag-0 / lag-1 factor statistics and ρ's terms: union means
    stat_names = ("lr", "clip", "psi_max", "clipped")

    def __init__(self, problem: Any, cfg: KFACRNNConfig) -> None:
        super().__init__(problem, cfg)
        self.layers = SequenceLayers(problem.model, cfg.max_dense_factor)
        self.names = [n for n, p in problem.model.named_parameters() if p.requires_grad]
        self.A: list[Factor | None] = [None] * len(self.layers.blocks)
        self.G: list[Factor | None] = [None] * len(self.layers.blocks)
        self.inverses = [TemporalInverse(cfg.approximation) for _ in self.layers.blocks]
        self.length = 1
        self.updates = 0
        self.velocity: dict[str, Tensor] | None = None
        self.refreshed_with: tuple[list[Factor | None], list[Factor | None], int] | None = None
        self.damping = LevenbergMarquardt.from_config(cfg)
        self.refreshed_lambda = cfg.initial_lambda  # the λ of the inverses in use
        if cfg.lambda_period is not None:
            self.stat_names = (*KFACRNN.stat_names, "lambda", "rho")
        device = next(problem.model.parameters()).device
        self.generator = torch.Generator(device=device).manual_seed(cfg.seed)

    # ------------------------------------------------------------------ statistics and gradient
    def gradient_and_statistics(self, batch: Any) -> tuple[Tensor, dict[str, Tensor], int]:
        """h and ∇h on the batch, with the lag-0 / lag-1 factor statistics of targets sampled from the model folded
        into the running averages (one forward and two backward passes); returns (h, ∇h, m), m the sequences.

        In a data-parallel run h, ∇h and the factor statistics (means over the sequences) become the union's
        (:func:`~secondorder.distributed.mean_`), the targets are drawn at the union's shape, and m is the union's
        number of sequences."""
        problem = self.problem
        with self.phases("gradient"):
            with self.layers.capture():
                z, y = problem.outputs(batch)
            h = problem.loss.per_case(z, y).sum() / problem.cases(batch) + problem.l2_penalty()
            grads = [g.detach() for g in torch.autograd.grad(h, self.params, retain_graph=True)]
        with self.phases("statistics"):
            sampled = draw_for_sequences(lambda union: problem.loss.sample_targets(union, self.generator),
                                         z.detach(), batch.mask)
            outputs = self.layers.outputs()
            output_grads = torch.autograd.grad(problem.loss.per_case(z, sampled).sum(), outputs,
                                               allow_unused=True)
            output_grads = [torch.zeros_like(o) if g is None else g
                            for o, g in zip(outputs, output_grads, strict=True)]
            A, G, m, T = self.layers.statistics(list(output_grads))
            h = h.detach()
            mean_([*grads, h], problem.cases(batch))
            unique = {id(t): t for f in (*A, *G) for t in (f.c0, f.c1) if t is not None}  # gates share one A
            mean_(list(unique.values()), m)
            m = union_count(m)
            self.updates += 1
            decay = min(1.0 - 1.0 / self.updates, self.cfg.stats_decay)
            self.A = [_fold(old, new, decay) for old, new in zip(self.A, A, strict=True)]
            self.G = [_fold(old, new, decay) for old, new in zip(self.G, G, strict=True)]
            self.length = T
        return h, dict(zip(self.names, grads, strict=True)), m

    # ------------------------------------------------------------------ one iteration
    def step(self, iteration: int, sampler: Sampler) -> StepResult:
        cfg, problem = self.cfg, self.problem
        k = iteration + 1
        costs = StepCosts()
        batch = sampler.next(cfg.batch_size)
        h, grad, m = self.gradient_and_statistics(batch)
        costs.grad_evals += 2  # the gradient and the sampled-target backward pass share one forward pass
        stats: dict[str, float] = {"lambda": self.damping.lam, "rho": math.nan, "lr": learning_rate(cfg, iteration),
                                   "clip": math.nan,
                                   "psi_max": math.nan, "clipped": 0}
        if not (math.isfinite(float(h)) and all_finite(grad.values())):
            return StepResult(float(h) if not math.isfinite(float(h)) else math.nan, costs, stats)
        if k <= 3 or k % cfg.inverse_period == 0:
            self.refreshed_with = (list(self.A), list(self.G), self.length)  # factors are replaced, never mutated
            self.refreshed_lambda = self.damping.lam
            with self.phases("inverses"):
                self._refresh()
            costs.inversions += 2 * len(self.inverses)
        scale = union_count(problem.cases(batch)) / m  # ĝ: gradient of the per-sequence summed loss
        direction: dict[str, Tensor] = {}
        with self.phases("proposal"):
            for block, inverse in zip(self.layers.blocks, self.inverses, strict=True):
                direction.update(block.split(inverse.apply(scale * block.gradient_matrix(grad))))
        with self.phases("rescaling"):  # one host transfer for ĝᵀv (was one per parameter tensor)
            quadratic = float(torch.stack([(scale * grad[n] * direction[n]).sum() for n in self.names]).sum())
            lr = learning_rate(cfg, iteration)
            clip = min(1.0, math.sqrt(cfg.trust_region / (lr**2 * quadratic))) if quadratic > 0 else 1.0
        if self.velocity is None:
            self.velocity = {n: torch.zeros_like(g) for n, g in grad.items()}
        with torch.no_grad(), self.phases("update"):
            for name in self.names:
                self.velocity[name].mul_(cfg.momentum).add_(direction[name], alpha=clip)
        if cfg.lambda_period is not None and k % cfg.lambda_period == 0:
            stats["rho"] = self.reduction_ratio(batch, float(h), grad, costs, lr)
            stats["lambda"] = self.damping.update(stats["rho"])
        with torch.no_grad(), self.phases("update"):
            for name, p in zip(self.names, self.params, strict=True):
                p.sub_(lr * self.velocity[name])
        ranges = [inv.psi_range[1] for inv in self.inverses if not math.isnan(inv.psi_range[1])]
        stats.update(lr=lr, clip=clip, psi_max=max(ranges) if ranges else math.nan,
                     clipped=sum(inv.clipped for inv in self.inverses))
        return StepResult(float(h), costs, stats)

    def reduction_ratio(self, batch: Any, h0: float, grad: dict[str, Tensor], costs: StepCosts,
                        lr: float | None = None) -> float:
        """ρ = (h(θ+δ) − h(θ)) / M(δ) for the step δ = −η u about to be taken, M(δ) = ∇hᵀδ + ½δᵀFδ + ½l₂‖δ‖²
        with the exact Fisher of h on the batch (see the module docstring); −∞ when h rose or M(δ) ≥ 0."""
        problem = self.problem
        params = detached_params(problem.model)
        step = {n: -((self.cfg.lr if lr is None else lr) * self.velocity[n]) for n in self.names}
        with self.phases("damping"):
            with torch.no_grad():
                moved = problem.objective_at(batch, {n: params[n] + step[n] for n in self.names})
            z, jv = torch.func.jvp(lambda p: problem.outputs(batch, p)[0], (params,), (step,))
            fisher = (jv * problem.loss.output_hessian_vector(z, jv, curvature_targets(problem, batch, params)))
            fisher = fisher.sum() / problem.cases(batch)
            mean_([moved, fisher], problem.cases(batch))  # the union's h(θ+δ) and δᵀFδ (data-parallel runs)
            h1 = float(moved)
            penalised = [step[n].pow(2).sum() for n in self.names if n in problem.l2_names]
            penalty = problem.l2 * torch.stack(penalised).sum() if penalised and problem.l2 else 0.0
            slope = torch.stack([(grad[n] * step[n]).sum() for n in self.names]).sum()
            change = float(slope + 0.5 * (fisher + penalty))
        costs.forward_passes += 1
        costs.curvature_products += 1
        if not math.isfinite(h1) or h1 > h0 or not change < 0:
            return -math.inf
        return (h1 - h0) / change

    def _refresh(self) -> None:
        A_list, G_list, length = self.refreshed_with
        if self.cfg.parallel_inverses == "spread":
            refresh_all(self.inverses, A_list, G_list, self.refreshed_lambda, [length], [1.0])
        else:
            for inverse, A, G in zip(self.inverses, A_list, G_list, strict=True):
                inverse.refresh(A, G, self.refreshed_lambda, [length], [1.0])

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        def pack(factors: list[Factor | None]) -> list[Any]:
            return [None if f is None else (f.c0, f.c1, f.diagonal) for f in factors]

        refreshed = None if self.refreshed_with is None else (
            pack(self.refreshed_with[0]), pack(self.refreshed_with[1]), self.refreshed_with[2])
        return {"A": pack(self.A), "G": pack(self.G), "length": self.length, "updates": self.updates,
                "velocity": self.velocity, "generator": self.generator.get_state(), "refreshed_with": refreshed,
                "damping": self.damping.state_dict(), "refreshed_lambda": self.refreshed_lambda}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        def unpack(items: list[Any]) -> list[Factor | None]:
            return [None if f is None else Factor(*f) for f in items]

        self.A, self.G = unpack(state["A"]), unpack(state["G"])
        self.length, self.updates = state["length"], state["updates"]
        self.velocity = state["velocity"]
        self.generator.set_state(state["generator"])
        if "damping" in state:  # checkpoints from before LM damping hold the fixed λ of the config
            self.damping.load_state_dict(state["damping"])
            self.refreshed_lambda = state["refreshed_lambda"]
        refreshed = state["refreshed_with"]
        if refreshed is not None:  # the inverses in use are rebuilt from the factors they were computed from
            self.refreshed_with = (unpack(refreshed[0]), unpack(refreshed[1]), refreshed[2])
            self._refresh()
