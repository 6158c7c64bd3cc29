"""Hessian-free optimisation (Martens 2010; thesis ch. 4, Algorithm 3; gaps filled from Martens' released HF code).

One HF iteration k, with θ the parameters and h the objective (ℓ2 prior included):

1. Gradient batch S′ (``gradient_batch``; null = the full training set, as in Martens' code): h(θ), b = −∇h(θ).
2. Preconditioner (§4.9): P = (d + λ + η)^ξ with d the empirical-Fisher diagonal on S′ (Martens 2010; or the
   unbiased GGN-diagonal estimate of Alg. 6), ξ = 0.75, κ = 0 (§4.11; code: (grad2 + λ + weightcost)^¾).
3. Curvature batch S″: chunk k mod c of a fixed random partition of S′ into ``curvature_chunks`` = c parts
   (Martens' "hybrid" mode: gradient on all data, K = |S|/c for curvature; Table 4.2 K = 5000 on CURVES),
   fixed for the whole CG run (§4.2).
4. A v = (B + λ I) v with B the GGN (or the exact Hessian, ``curvature=hessian``) plus η for the ℓ2 prior,
   plus structural damping μ·λ·(1/N) Σ J_cᵀ H_d J_c for recurrent models (§4.6.4; the λ·μ scaling follows
   the widely used Theano HF, configurable).
5. PCG from x₀ = ζ δ_{k−1} (ζ = 0.95, §4.8; δ_{k−1} the previous run's last iterate, as in Martens' code, or
   the backtracked one), progress-based termination and at most ``max_cg_iters`` = 250 (:mod:`.cg`); for the
   RNN problems (``cg_stop_rule=objective_90``, thesis §4.13) CG stops once the reduction of h on the curvature
   batch, checked at the backtracking points, falls below 90 % of the largest reduction seen in this run.
6. CG-backtracking (§4.6.7): from the last stored iterate, walk back through the stored ones while h on S′
   does not get worse; the chosen iterate is the proposal p.
7. Reduction ratio ρ = (h(θ+p) − h(θ)) / (½ pᵀ(B + η)p + ∇hᵀp) on the curvature batch (undamped quadratic;
   code), ρ = −∞ if h rose there; Levenberg–Marquardt (thesis §4.6.5; :mod:`.damping`): ρ > ¾ ⇒ λ ← ⅔λ,
   ρ < ¼ ⇒ λ ← 3⁄2 λ.
8. Armijo backtracking line search on S′ from α = 1 (c = 1e-2, shrink 0.8, ≤ 60 steps; :mod:`.linesearch`),
   θ ← θ + αp.

Robustness: non-positive curvature stops CG; a non-finite quantity in CG, in ρ or in the proposal rejects
the step and raises λ, and leaves no warm start for the next CG run (a warm start that overflows is replaced by
zero in the same iteration); λ stays within [``min_lambda``, ``max_lambda``]. The trainer handles a non-finite h(θ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from secondorder.curvature import (
    GGNOperator,
    HessianOperator,
    ParamSpace,
    StructuralDampingTerm,
    detached_params,
    empirical_fisher_diagonal,
    ggn_diagonal_estimate,
)
from secondorder.curvature.layered import LayeredGaussNewton, supports_layered
from secondorder.curvature.params import ParamDict
from secondorder.curvature.recurrent import RecurrentGaussNewton, supports_bptt
from secondorder.distributed import mean_, place, union_count, world
from secondorder.errors import ConfigError
from secondorder.optim.base import Optimizer, StepCosts, StepResult
from secondorder.optim.cg import STOP_CODES, ObjectiveReductionStop, backtracking_schedule, pcg
from secondorder.optim.damping import LevenbergMarquardt, lm_checks
from secondorder.optim.linesearch import armijo_backtracking
from secondorder.problems.samplers import Sampler
from secondorder.validation import Check, in_range, non_negative, one_of, positive


@dataclass
class HFConfig:
    name: str = "hf"
    curvature: str = "ggn"
    curvature_mode: str = "auto"
    gradient_batch: int | None = None
    curvature_chunks: int = 4
    chunk_seed: int = 0
    initial_lambda: float = 45.0
    lambda_decrease: float = 2.0 / 3.0
    lambda_increase: float | None = 1.5
    rho_low: float = 0.25
    rho_high: float = 0.75
    min_lambda: float | None = 1e-12
    max_lambda: float | None = 1e12
    max_cg_iters: int = 250
    min_cg_iters: int = 1
    cg_tolerance: float = 5e-4
    cg_tolerance_mode: str = "per_step"
    cg_stop_rule: str = "progress"
    cg_init_decay: float = 0.95
    cg_init_from: str = "last"
    cg_sync_every: int = 1
    backtracking: bool = True
    backtrack_first: float = 5.0
    backtrack_growth: float = 1.3
    line_search: bool = True
    line_search_c: float = 1e-2
    line_search_shrink: float = 0.8
    line_search_max_steps: int = 60
    preconditioner: str = "empirical_fisher"
    preconditioner_exponent: float = 0.75
    preconditioner_kappa: float = 0.0
    preconditioner_samples: int = 1
    preconditioner_chunk: int = 64
    structural_damping: float = 0.0
    structural_damping_times_lambda: bool = True

    def check(self) -> list[Check]:
        return [
            one_of(self, "curvature", ["ggn", "hessian"]),
            one_of(self, "curvature_mode", ["auto", "bptt", "layered", "linearize", "jvp", "double_backward"]),
            *positive(self, "gradient_batch", allow_none=True),
            *positive(self, "curvature_chunks", "max_cg_iters", "min_cg_iters", "cg_tolerance",
                      "backtrack_first", "line_search_c", "line_search_max_steps", "preconditioner_samples",
                      "preconditioner_chunk", "cg_sync_every"),
            *lm_checks(self),
            in_range(self, "cg_init_decay", 0.0, 1.0, closed_high=True),
            one_of(self, "cg_tolerance_mode", ["per_step", "window"]),
            one_of(self, "cg_stop_rule", ["progress", "objective_90"]),
            one_of(self, "cg_init_from", ["last", "backtracked"]),
            ("backtrack_growth", self.backtrack_growth > 1.0, "must be > 1"),
            in_range(self, "line_search_shrink", 0.0, 1.0),
            one_of(self, "preconditioner", ["empirical_fisher", "ggn_diagonal", "none"]),
            in_range(self, "preconditioner_exponent", 0.0, 1.0, closed_high=True),
            *non_negative(self, "preconditioner_kappa", "structural_damping"),
        ]


class HessianFree(Optimizer):
    config_class = HFConfig
    stat_names = ("lambda", "rho", "cg_iters", "cg_stop", "cg_chosen_iter", "cg_q", "step_size",
                  "grad_norm")
    # gradient, preconditioner diagonal, every curvature product and every objective value as union means; CG,
    # backtracking and the line search then run identically on every rank
    distributed_ok = True

    def __init__(self, problem: Any, cfg: HFConfig) -> None:
        super().__init__(problem, cfg)
        self.space = ParamSpace.of(problem.model)
        self.damping = LevenbergMarquardt.from_config(cfg)
        self.previous: Tensor | None = None  # δ_{k−1}
        self.schedule = backtracking_schedule(cfg.max_cg_iters, cfg.backtrack_first, cfg.backtrack_growth)
        self.partition: Tensor | None = None
        self._mode()  # a curvature_mode the problem cannot take fails here, before any step
        if world() > 1 and cfg.preconditioner == "ggn_diagonal":
            raise ConfigError("optimizer.preconditioner=ggn_diagonal draws random vectors per case and does not run "
                              "data-parallel yet; use preconditioner=empirical_fisher or none, or one process")

    # ------------------------------------------------------------------ pieces
    def _flat_params(self) -> Tensor:
        return self.space.flatten(detached_params(self.problem.model))

    def _h(self, batch: Any, flat: Tensor) -> float:
        """h on ``batch`` at the flat parameters (the union batch's in a data-parallel run)."""
        with torch.no_grad():
            value = self.problem.objective_at(batch, self.space.unflatten(flat))
        mean_([value], self.problem.cases(batch))
        return float(value)

    def _curvature_batch(self, batch: Any, iteration: int, cases: int) -> Any:
        """The curvature mini-batch: one of ``curvature_chunks`` fixed parts of the gradient batch, in turn; the
        whole batch when it is a task's complete finite set (5-bit memorisation, thesis §4.13)."""
        chunks = self.cfg.curvature_chunks
        if chunks == 1 or getattr(batch, "complete", False):
            return batch
        if self.partition is None or len(self.partition) != cases:
            generator = torch.Generator().manual_seed(self.cfg.chunk_seed)
            self.partition = torch.randperm(cases, generator=generator)
        size = cases // chunks
        k = iteration % chunks
        chunk = self.partition[k * size : (k + 1) * size]  # cases of the (union) gradient batch
        rank, ranks = place()
        if ranks > 1 and len(torch.unique(chunk % ranks)) < ranks:
            raise ConfigError(f"HF's curvature batch of {len(chunk)} cases leaves a process without cases; use a "
                              "larger gradient batch, fewer curvature_chunks or fewer processes")
        return self.problem.subset(batch, chunk[chunk % ranks == rank] // ranks)  # this rank's share of them

    def _preconditioner(self, batch: Any, params: ParamDict, costs: StepCosts) -> Tensor | None:
        cfg = self.cfg
        if cfg.preconditioner == "none":
            return None
        if cfg.preconditioner == "empirical_fisher":
            # at the model's own parameters (= params here), which enables the one-pass nn.Linear path
            diagonal = empirical_fisher_diagonal(self.problem, batch, chunk=cfg.preconditioner_chunk)
            mean_(list(diagonal.values()), int(self.problem.case_slices(batch)[0].shape[0]))
        else:
            diagonal = ggn_diagonal_estimate(self.problem, batch, params, samples=cfg.preconditioner_samples,
                                             chunk=cfg.preconditioner_chunk)
        costs.grad_evals += 1
        return self.space.flatten(diagonal)

    def _mode(self) -> str:
        """The product implementation: ``auto`` takes the closed-form BPTT products on the simple RNN (the same
        numbers, ~10× faster at T = 30; curvature/recurrent.py), the closed-form layered products on
        feed-forward nets of Linear maps and elementwise units (set-up one forward pass instead of a traced
        linearisation; curvature/layered.py) and the cached linearisation elsewhere."""
        mode, ggn = self.cfg.curvature_mode, self.cfg.curvature == "ggn"
        if mode == "auto":
            if ggn and supports_bptt(self.problem):
                return "bptt"
            return "layered" if ggn and supports_layered(self.problem) else "linearize"
        if mode == "bptt" and not (ggn and supports_bptt(self.problem)):
            raise ConfigError("optimizer.curvature_mode=bptt needs optimizer.curvature=ggn and model=rnn (the "
                              "simple RNN of the pathological tasks); use curvature_mode=auto or linearize")
        if mode == "layered" and not (ggn and supports_layered(self.problem)):
            raise ConfigError("optimizer.curvature_mode=layered needs optimizer.curvature=ggn and a feed-forward "
                              "net of Linear maps and sigmoid/tanh/relu/identity units (autoencoder or mlp, "
                              "no normalisation); use curvature_mode=auto or linearize")
        return mode

    def _operator(self, curvature_batch: Any, params: ParamDict, costs: StepCosts):
        cfg, mode = self.cfg, self._mode()
        if mode == "bptt":
            base = RecurrentGaussNewton(self.problem, curvature_batch, params)
            costs.forward_passes += 1
            return base, None
        if mode == "layered":
            base = LayeredGaussNewton(self.problem, curvature_batch, params)
        elif cfg.curvature == "hessian":
            base = HessianOperator(self.problem, curvature_batch, params)
        else:
            base = GGNOperator(self.problem, curvature_batch, params, mode=mode)
        structural = None
        if cfg.structural_damping > 0:  # a feed-forward problem refuses it in one line (no hidden units to damp)
            structural = StructuralDampingTerm(self.problem, curvature_batch, 1.0, params,
                                               mode="linearize" if mode == "layered" else mode)
        costs.forward_passes += 1  # the linearisation's forward pass
        return base, structural

    # ------------------------------------------------------------------ one iteration
    def step(self, iteration: int, sampler: Sampler) -> StepResult:
        cfg, problem = self.cfg, self.problem
        costs = StepCosts()
        batch = sampler.next(cfg.gradient_batch or self._full_batch(sampler))
        theta = self._flat_params()
        params = self.space.unflatten(theta)

        with self.phases("gradient"):
            value_and_grad = torch.func.grad_and_value(lambda p: problem.objective_at(batch, p))
            grad_dict, h0_tensor = value_and_grad(params)
            grad = self.space.flatten(grad_dict)
            h0_tensor = h0_tensor.detach()
            mean_([grad, h0_tensor], problem.cases(batch))
            h0, grad_norm = torch.stack([h0_tensor.detach().to(grad.dtype), grad.norm()]).tolist()
            finite = math.isfinite(h0) and math.isfinite(grad_norm)
        costs.grad_evals += 1
        stats: dict[str, float] = {"lambda": self.lam, "grad_norm": grad_norm}
        if not finite:
            return StepResult(h0 if not math.isfinite(h0) else math.nan, costs, stats)

        with self.phases("statistics"):
            diagonal = self._preconditioner(batch, params, costs)
        curvature_batch = self._curvature_batch(batch, iteration, self._cases(batch))
        with self.phases("linearisation"):
            base, structural = self._operator(curvature_batch, params, costs)
        lam = self.lam
        mu = cfg.structural_damping * (lam if cfg.structural_damping_times_lambda else 1.0)

        curvature_cases = problem.cases(curvature_batch)

        def damped(v: Tensor) -> Tensor:
            if isinstance(base, RecurrentGaussNewton):  # G v and μ D v from one R-pass
                out = base.mv_damped(v, mu)
            else:
                out = base.mv(v)
                if structural is not None:
                    out = out + mu * structural.mv(v)
            mean_([out], curvature_cases)  # the union curvature batch's product: one all-reduce per CG step
            return out + lam * v

        precondition = None
        if diagonal is not None:
            penalty = problem.l2 * self._l2_mask()
            scale = (diagonal + lam + penalty + cfg.preconditioner_kappa).pow(cfg.preconditioner_exponent)

            def precondition(r: Tensor) -> Tensor:
                return r / scale

        x0 = cfg.cg_init_decay * self.previous if self.previous is not None else torch.zeros_like(theta)
        with self.phases("cg"):
            result = self._conjugate_gradient(damped, grad, x0, precondition, curvature_batch, theta, costs)
        costs.curvature_products += result.products
        stats.update(cg_iters=result.iterations, cg_stop=STOP_CODES[result.reason],
                     cg_q=result.q_values[-1])

        # CG-backtracking on the gradient batch: walk back while h does not get worse.
        candidates = result.stored if cfg.backtracking else [(result.iterations, result.x)]
        with self.phases("backtracking"):
            chosen_iter, proposal, h_proposal = self._backtrack(batch, theta, candidates, costs)
        stats["cg_chosen_iter"] = chosen_iter

        with self.phases("damping"):
            rho = self._reduction_ratio(curvature_batch, theta, proposal, grad, base, costs)
        stats["rho"] = rho
        if not (bool(torch.isfinite(proposal).all()) and result.reason != "nonfinite"):
            rho = -math.inf
        self.damping.update(rho)

        rate = 1.0
        if not bool(torch.isfinite(proposal).all()):
            rate = 0.0
        elif cfg.line_search:
            with self.phases("line_search"):
                search = armijo_backtracking(
                    lambda a: self._h(batch, theta + a * proposal), h0, float(torch.dot(grad, proposal)),
                    c=cfg.line_search_c, shrink=cfg.line_search_shrink, max_steps=cfg.line_search_max_steps,
                    h_initial=h_proposal if math.isfinite(h_proposal) else math.inf,
                )
            rate = search.rate
            costs.forward_passes += search.evaluations
        stats["step_size"] = rate
        stats["lambda"] = self.lam
        if rate > 0:
            with self.phases("update"):
                self._set_params(theta + rate * proposal)
        last = proposal if cfg.cg_init_from == "backtracked" else result.x
        # a CG run that overflowed leaves no warm start: its last finite iterate is where it blew up
        self.previous = last if bool(torch.isfinite(last).all()) and result.reason != "nonfinite" else None
        return StepResult(h0, costs, stats)

    def _conjugate_gradient(self, damped: Any, grad: Tensor, x0: Tensor, precondition: Any, curvature_batch: Any,
                            theta: Tensor, costs: StepCosts) -> Any:
        """PCG on the damped quadratic from ``x0`` (step 5); when the warm start itself overflows it (a previous
        run's huge iterate), again from zero — otherwise every later iteration would start there and stall."""
        cfg = self.cfg

        def solve(start: Tensor):
            stop = None
            if cfg.cg_stop_rule == "objective_90":
                stop = ObjectiveReductionStop(lambda x: self._h(curvature_batch, theta + x),
                                              self._h(curvature_batch, theta), set(self.schedule), costs)
            return pcg(damped, -grad, start, precondition=precondition, max_iters=cfg.max_cg_iters,
                       min_iters=cfg.min_cg_iters, tolerance=cfg.cg_tolerance, mode=cfg.cg_tolerance_mode,
                       store_at=self.schedule if cfg.backtracking else [], stop=stop, sync_every=cfg.cg_sync_every)

        result = solve(x0)
        if result.reason == "nonfinite" and result.iterations == 0 and bool(torch.any(x0 != 0)):
            costs.curvature_products += result.products
            result = solve(torch.zeros_like(x0))
        return result

    def _backtrack(self, batch: Any, theta: Tensor, candidates: list[tuple[int, Tensor]],
                   costs: StepCosts) -> tuple[int, Tensor, float]:
        """CG-backtracking (§4.6.7): from the last stored iterate walk back while h on the batch does not get
        worse; returns the chosen iteration, its iterate and h there."""
        chosen_iter, proposal = candidates[-1]
        h_proposal = self._h(batch, theta + proposal)
        costs.forward_passes += 1
        for i, x in reversed(candidates[:-1]):
            h_earlier = self._h(batch, theta + x)
            costs.forward_passes += 1
            if not h_earlier <= h_proposal:
                break
            chosen_iter, proposal, h_proposal = i, x, h_earlier
        return chosen_iter, proposal, h_proposal

    def _reduction_ratio(self, curvature_batch: Any, theta: Tensor, proposal: Tensor, grad: Tensor, base: Any,
                         costs: StepCosts) -> float:
        """ρ on the curvature batch against the undamped quadratic (λ excluded, ℓ2 included)."""
        before = self._h(curvature_batch, theta)
        after = self._h(curvature_batch, theta + proposal)
        costs.forward_passes += 2
        if not math.isfinite(after) or after > before:
            return -math.inf
        product = base.mv(proposal)
        mean_([product], self.problem.cases(curvature_batch))
        predicted = 0.5 * float(torch.dot(proposal, product)) + float(torch.dot(grad, proposal))
        costs.curvature_products += 1
        if predicted >= 0:
            return -math.inf
        return (after - before) / predicted

    @staticmethod
    def _full_batch(sampler: Sampler) -> int:
        """``gradient_batch: null``: the whole training set; a language model's fixed window; otherwise
        (unlimited generated data) the thesis's 10 000 sequences (§4.13)."""
        return getattr(sampler, "n", None) or getattr(sampler, "batch_size", None) or 10_000

    def _cases(self, batch: Any) -> int:
        """Cases of the (union) gradient batch, when it is cut into curvature chunks."""
        if self.cfg.curvature_chunks == 1:
            return 1
        return union_count(int(self.problem.case_slices(batch)[0].shape[0]))

    def _l2_mask(self) -> Tensor:
        masks = {n: torch.full_like(p, 1.0 if n in self.problem.l2_names else 0.0)
                 for n, p in detached_params(self.problem.model).items()}
        return self.space.flatten(masks)

    @torch.no_grad()
    def _set_params(self, flat: Tensor) -> None:
        values = self.space.unflatten(flat)
        for name, p in self.problem.model.named_parameters():
            if name in values:
                p.copy_(values[name])

    @property
    def lam(self) -> float:
        """The current Tikhonov damping λ (held by the Levenberg–Marquardt rule)."""
        return self.damping.lam

    def state_dict(self) -> dict[str, Any]:
        return {**self.damping.state_dict(), "previous": None if self.previous is None else self.previous.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.damping.load_state_dict(state)
        previous = state["previous"]
        device = next(self.problem.model.parameters()).device
        self.previous = None if previous is None else previous.to(device)
