"""Curvature-matrix-vector products on one batch at fixed parameters (thesis §4.3–§4.4).

For outputs z_n = f(x_n; θ) at the scored positions of a batch, N cases and a matching loss L:

* generalised Gauss-Newton  G v = (1/N) Σ_n J_nᵀ H_L(z_n) J_n v  (Schraudolph; thesis eqn 3.3, Alg. 5);
* Monte-Carlo Fisher       F̂ v = (1/N) Σ_n J_nᵀ u_n u_nᵀ J_n v,  u_n = ∇_z L(y_n, z_n), y_n ~ p(y | z_n) — the
  "true" Fisher estimate (or the empirical Fisher with the training targets); for a matching loss its
  expectation is G exactly, which is the test of this estimator;
* exact Hessian            H v = ∇²h(θ) v  (Pearlmutter's R-operator as forward-over-reverse; Alg. 4).

GGN and Fisher products compute J v with forward mode and Jᵀ(·) with reverse mode (``torch.func``). In the
default ``mode="linearize"`` both are built once per (parameters, batch): ``torch.func.linearize`` traces the
forward-mode map and ``torch.func.vjp`` keeps the reverse graph, so each product inside CG re-runs no forward
pass. ``mode="jvp"`` recomputes everything per product (the uncached reference); ``mode="double_backward"``
is the R-op "Gauss-Newton trick" (J v as the derivative of a vjp), kept as an independent cross-check.

The ℓ2 prior (η/2)‖θ‖² of the objective is exactly quadratic, so every operator adds η v on the penalised
parameters (``include_l2``). Structural damping (Martens & Sutskever 2011; thesis §4.6.4) is an extra GGN term
μ (1/N) Σ J_cᵀ H_d J_c v over hidden quantities c: :class:`LinearisedOutputs` serves both.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from secondorder.curvature.params import ParamDict, ParamSpace, detached_params
from secondorder.errors import ConfigError

OutputMap = Callable[[Tensor, Tensor], Tensor]  # (z, w) ↦ M(z) w, row-wise on (n, d)
MODES = ("linearize", "jvp", "double_backward")


class LinearisedOutputs:
    """w ↦ Jᵀ M(z) J w for a function p ↦ z (n, d) at fixed parameters, J its Jacobian."""

    def __init__(self, fn: Callable[[ParamDict], Tensor], params: ParamDict, mode: str = "linearize") -> None:
        if mode not in MODES:
            raise ConfigError(f"curvature mode {mode!r}: must be one of {', '.join(MODES)}")
        self.fn, self.params, self.mode = fn, params, mode
        if mode == "linearize":
            with warnings.catch_warnings():  # linearize's tracer warns about internals it handles itself
                warnings.simplefilter("ignore")
                self.z, self._jvp = torch.func.linearize(fn, params)
            _, self._vjp = torch.func.vjp(fn, params)
        elif mode == "double_backward":
            self.z, self._vjp = torch.func.vjp(fn, params)
            seed = torch.zeros_like(self.z)
            _, self._jvp_of_vjp = torch.func.vjp(self._vjp, seed)  # the transpose of Jᵀ is J
        else:
            self.z = fn(params).detach()
        self.z = self.z.detach()

    def jvp(self, v: ParamDict) -> Tensor:
        if self.mode == "linearize":
            return self._jvp(v)
        if self.mode == "double_backward":
            return self._jvp_of_vjp((v,))[0]
        return torch.func.jvp(self.fn, (self.params,), (v,))[1]

    def vjp(self, w: Tensor) -> ParamDict:
        if self.mode == "jvp":
            return torch.func.vjp(self.fn, self.params)[1](w)[0]
        return self._vjp(w)[0]

    def product(self, v: ParamDict, output_map: OutputMap, scale: float) -> ParamDict:
        w = output_map(self.z, self.jvp(v)) * scale
        return self.vjp(w)


def _add_l2(problem: Any, v: ParamDict, out: ParamDict, include: bool) -> ParamDict:
    if not include or problem.l2 == 0.0:
        return out
    return {k: out[k] + problem.l2 * v[k] if k in problem.l2_names else out[k] for k in out}


def curvature_targets(problem: Any, batch: Any, params: ParamDict) -> Tensor | None:
    """The batch's targets where the loss's output curvature depends on them (non-matching losses), else None."""
    if not getattr(problem.loss, "needs_targets", False):
        return None
    with torch.no_grad():
        return problem.outputs(batch, params)[1]


class CurvatureOperator:
    """Base: a symmetric operator on parameter dicts, with a flat-vector ``mv`` for solvers."""

    def __init__(self, problem: Any) -> None:
        self.problem = problem
        self.space = ParamSpace.of(problem.model)

    def __call__(self, v: ParamDict) -> ParamDict:  # pragma: no cover - overridden
        raise TypeError

    def mv(self, vector: Tensor) -> Tensor:
        return self.space.flatten(self(self.space.unflatten(vector)))


class GGNOperator(CurvatureOperator):
    """G v (+ η v for the ℓ2 prior) on ``batch`` at ``params`` (default: the model's current parameters)."""

    def __init__(self, problem: Any, batch: Any, params: ParamDict | None = None, mode: str = "linearize",
                 include_l2: bool = True) -> None:
        super().__init__(problem)
        self.params = params if params is not None else detached_params(problem.model)
        self.scale = 1.0 / problem.cases(batch)
        self.include_l2 = include_l2
        self.lin = LinearisedOutputs(lambda p: problem.outputs(batch, p)[0], self.params, mode)
        self.output_map = functools.partial(problem.loss.output_hessian_vector,
                                            y=curvature_targets(problem, batch, self.params))

    def __call__(self, v: ParamDict) -> ParamDict:
        out = self.lin.product(v, self.output_map, self.scale)
        return _add_l2(self.problem, v, out, self.include_l2)


class FisherOperator(CurvatureOperator):
    """Monte-Carlo Fisher F̂ v with ``samples`` targets per output drawn from p(y | z) (``targets="sampled"``),
    or the empirical Fisher with the batch's own targets (``targets="empirical"``)."""

    def __init__(self, problem: Any, batch: Any, params: ParamDict | None = None, samples: int = 1,
                 targets: str = "sampled", generator: torch.Generator | None = None, mode: str = "linearize",
                 include_l2: bool = True) -> None:
        super().__init__(problem)
        self.params = params if params is not None else detached_params(problem.model)
        self.scale = 1.0 / (problem.cases(batch) * samples)
        self.include_l2 = include_l2
        self.lin = LinearisedOutputs(lambda p: problem.outputs(batch, p)[0], self.params, mode)
        z = self.lin.z
        loss = problem.loss
        if targets == "empirical":
            repeated, y = z, problem.outputs(batch, self.params)[1]
        elif targets == "sampled":  # all draws at once: (S·n, d)
            repeated = z.repeat(samples, 1)
            y = loss.sample_targets(repeated, generator)
        else:
            raise ConfigError(f"Fisher targets {targets!r}: must be sampled or empirical")
        zz = repeated.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss.per_case(zz, y).sum(), zz)
        self.output_grads = g.reshape(-1, *z.shape)  # (S, n, d): u = ∇_z L(y, z) per draw

    def _output_map(self, z: Tensor, w: Tensor) -> Tensor:
        u = self.output_grads
        return (u * (u * w).sum(dim=-1, keepdim=True)).sum(dim=0)

    def __call__(self, v: ParamDict) -> ParamDict:
        out = self.lin.product(v, self._output_map, self.scale)
        return _add_l2(self.problem, v, out, self.include_l2)


class HessianOperator(CurvatureOperator):
    """Exact H v of the objective h = data loss + ℓ2 prior on ``batch`` (forward-over-reverse)."""

    def __init__(self, problem: Any, batch: Any, params: ParamDict | None = None) -> None:
        super().__init__(problem)
        self.params = params if params is not None else detached_params(problem.model)

        def objective(p: ParamDict) -> Tensor:
            return problem.data_loss(batch, p)

        self._grad = torch.func.grad(objective)

    def __call__(self, v: ParamDict) -> ParamDict:
        out = torch.func.jvp(self._grad, (self.params,), (v,))[1]
        return _add_l2(self.problem, v, out, True)


class StructuralDampingTerm(CurvatureOperator):
    """μ (1/N) Σ J_cᵀ H_d J_c v over the hidden quantities c the problem exposes (thesis §4.6.4).

    ``problem.structural_outputs(batch, params)`` returns the hidden quantities and the matching loss d that
    measures their change (squared error on activities, or cross-entropy on logistic units' pre-activations).
    """

    def __init__(self, problem: Any, batch: Any, weight: float, params: ParamDict | None = None,
                 mode: str = "linearize") -> None:
        super().__init__(problem)
        self.params = params if params is not None else detached_params(problem.model)
        _, self.distance = problem.structural_outputs(batch, self.params)
        self.weight = weight / problem.cases(batch)
        self.lin = LinearisedOutputs(lambda p: problem.structural_outputs(batch, p)[0], self.params, mode)

    def __call__(self, v: ParamDict) -> ParamDict:
        return self.lin.product(v, self.distance.output_hessian_vector, self.weight)
