"""Diagonal curvature estimates for preconditioning (thesis §4.9.3–§4.9.4).

* Empirical Fisher diagonal (Martens 2010's preconditioner): diag(F̄) = (1/C) Σ_c sq(g_c), with g_c the
  gradient of case c's contribution scaled so that the g_c average to ∇h (per-case squared gradients, not
  the square of the mean).
* Unbiased GGN-diagonal estimator (Chapelle & Erhan 2011; thesis Alg. 6 in §4.9.4, with the transpose of the
  proof below it — the algorithm's output line drops it): per case, sq(J_cᵀ S_cᵀ v) with SᵀS = H_L and Rademacher v,
  averaged over cases and samples: E = diag((1/N) Σ Jᵀ H_L J).

For feed-forward stacks of ``nn.Linear`` layers (each run once per case) the empirical-Fisher diagonal takes
one ordinary backward pass: the W block is (g²)ᵀ(a²) summed over cases, with g the per-case output gradients
and a the layer inputs (thesis §4.9.3). Otherwise both need per-case gradients: ``torch.func.vmap`` over cases
of ``torch.func.grad`` of a one-case function
supplied by the problem (:meth:`~secondorder.problems.base.Problem.case_slices` /
:meth:`~secondorder.problems.base.Problem.case_outputs`), in chunks to bound memory. The ℓ2 prior is not
included here (its curvature η is added exactly by the caller).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from secondorder.curvature.params import ParamDict, ParamSpace, detached_params


def _sum_of_squared_case_gradients(
    problem: Any, batch: Any, case_objective: Callable[..., Tensor], extra: tuple[Tensor, ...],
    params: ParamDict, chunk: int,
) -> ParamDict:
    """Σ_c sq(∇_θ φ_c(θ)) for the per-case scalar φ_c = case_objective(θ, *case_slices_c, *extra_c)."""
    slices = problem.case_slices(batch)
    per_case_grad = torch.func.vmap(torch.func.grad(case_objective), in_dims=(None, *([0] * (len(slices) +
                                                                                              len(extra)))))
    total = {k: torch.zeros_like(v) for k, v in params.items()}
    cases = int(slices[0].shape[0])
    for start in range(0, cases, chunk):
        part = [t[start : start + chunk] for t in (*slices, *extra)]
        grads = per_case_grad(params, *part)
        for k in total:
            total[k] += grads[k].pow(2).sum(dim=0)
    return total


def linear_layers_used_once(problem: Any, batch: Any) -> list[tuple[str, nn.Linear]] | None:
    """The model's ``nn.Linear`` layers if they hold every parameter and each runs once per forward pass
    on a feed-forward batch of cases (so per-case weight gradients are single outer products); else None."""
    if not isinstance(batch, tuple):
        return None
    linears = [(name, m) for name, m in problem.model.named_modules() if isinstance(m, nn.Linear)]
    owned = {id(p) for _, m in linears for p in m.parameters()}
    if not linears or any(id(p) not in owned for p in problem.model.parameters() if p.requires_grad):
        return None
    calls = {name: 0 for name, _ in linears}
    handles = [m.register_forward_hook(lambda mod, i, o, name=name: calls.__setitem__(name, calls[name] + 1))
               for name, m in linears]
    try:
        with torch.no_grad():
            problem.model(batch[0][:1])
    finally:
        for h in handles:
            h.remove()
    return linears if all(c == 1 for c in calls.values()) else None


def _linear_empirical_fisher_diagonal(problem: Any, batch: tuple[Tensor, Tensor],
                                      linears: list[tuple[str, nn.Linear]], chunk: int) -> ParamDict:
    """Σ_c sq(g_c a_cᵀ) = (g²)ᵀ(a²) per layer (thesis §4.9.3: sq(A_i) sq(B_{i−1})ᵀ) — one backward pass."""
    inputs: dict[str, Tensor] = {}
    outputs: dict[str, Tensor] = {}

    def keep(name: str):
        def hook(module: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
            inputs[name] = args[0].detach()
            out.retain_grad()
            outputs[name] = out
        return hook

    total = {n: torch.zeros_like(p) for n, p in problem.model.named_parameters()}
    handles = [m.register_forward_hook(keep(name)) for name, m in linears]
    try:
        x_all, y_all = batch
        for start in range(0, x_all.shape[0], chunk):
            x, y = x_all[start : start + chunk], y_all[start : start + chunk]
            with torch.enable_grad():
                z = problem.model(x)
                problem.loss.per_case(z, y).sum().backward(inputs=[outputs[n] for n, _ in linears])
            for name, module in linears:
                g2, a2 = outputs[name].grad.pow(2), inputs[name].pow(2)
                total[f"{name}.weight"] += g2.T @ a2
                if module.bias is not None:
                    total[f"{name}.bias"] += g2.sum(dim=0)
    finally:
        for h in handles:
            h.remove()
    n = problem.cases(batch)
    return {k: v / n for k, v in total.items() if k in dict(problem.model.named_parameters())}


def empirical_fisher_diagonal(problem: Any, batch: Any, params: ParamDict | None = None,
                              chunk: int = 64) -> ParamDict:
    loss = problem.loss
    if params is None:
        linears = linear_layers_used_once(problem, batch)
        if linears is not None:
            return _linear_empirical_fisher_diagonal(problem, batch, linears, max(chunk, 1024))
    params = params if params is not None else detached_params(problem.model)

    def case_loss(p: ParamDict, *case: Tensor) -> Tensor:
        z, y, mask = problem.case_outputs(p, *case)
        return (loss.per_case(z, y) * mask).sum()

    n_cases = int(problem.case_slices(batch)[0].shape[0])
    scale = n_cases / problem.cases(batch)  # g_c = scale · ∇ℓ_c averages to ∇h
    total = _sum_of_squared_case_gradients(problem, batch, case_loss, (), params, chunk)
    return {k: v * (scale**2 / n_cases) for k, v in total.items()}


def ggn_diagonal_estimate(problem: Any, batch: Any, params: ParamDict | None = None, samples: int = 1,
                          generator: torch.Generator | None = None, chunk: int = 64) -> ParamDict:
    params = params if params is not None else detached_params(problem.model)
    loss = problem.loss
    # Each case appears ``samples`` times with its own Rademacher vector: one vectorised pass.
    slices = tuple(t.repeat_interleave(samples, dim=0) for t in problem.case_slices(batch))
    with torch.no_grad():
        z0, y0, _ = torch.func.vmap(lambda *case: problem.case_outputs(params, *case))(*slices)
    v = torch.randint(0, 2, z0.shape, generator=generator, device="cpu").to(z0.device, z0.dtype) * 2 - 1
    flat_z = z0.reshape(-1, z0.shape[-1])
    flat_y = y0.reshape(flat_z.shape[0], *y0.shape[2:]) if loss.needs_targets else None
    u = loss.output_hessian_sqrt_t_vector(flat_z, v.reshape(flat_z.shape), flat_y).reshape(z0.shape)

    def projected_outputs(p: ParamDict, *case_and_u: Tensor) -> Tensor:
        *case, u_case = case_and_u
        z, _, mask = problem.case_outputs(p, *case)
        return (u_case * mask[:, None] * z).sum()

    total = _sum_of_squared_case_gradients(_SlicesOf(problem, slices), None, projected_outputs, (u,), params,
                                           chunk)
    scale = 1.0 / (problem.cases(batch) * samples)
    return {k: t * scale for k, t in total.items()}


class _SlicesOf:
    """Adapter: a problem whose ``case_slices`` are given explicitly."""

    def __init__(self, problem: Any, slices: tuple[Tensor, ...]) -> None:
        self.problem, self.slices = problem, slices

    def case_slices(self, batch: Any) -> tuple[Tensor, ...]:
        return self.slices


def flat_diagonal(space: ParamSpace, diagonal: ParamDict) -> Tensor:
    return space.flatten(diagonal)
