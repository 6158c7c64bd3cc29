"""The exact-Fisher pieces of K-FAC's step re-scaling (Martens & Grosse 2015, §6.4 and §7; thesis §6.6.4).

K-FAC chooses the step δ = αΔ + μδ₀ in the span of the proposal Δ and the previous step δ₀ by minimising the
damped quadratic model with the *exact* Fisher F (not its Kronecker approximation):

    [α; μ] = −[uᵢᵀ F uⱼ + (λ + η) uᵢᵀuⱼ]⁻¹ [∇hᵀ uᵢ],   uᵢ ∈ {Δ, δ₀}.

uᵀFv = (1/n) Σ_cases (J u)ᵀ F_R (J v) needs only Jacobian-vector products J u of the network outputs z
(Martens & Grosse 2015, App. C: F = Jᵀ F_R J, with F_R the Fisher of the predictive distribution in z, i.e. the
output Hessian of the matching loss). :func:`output_jvps` computes J u for all directions in one forward pass;
:func:`quadratic_terms` assembles the 2×2 (or 1×1) system's pieces. The solve itself is
:func:`secondorder.optim.kfac.solve_step_coefficients`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from secondorder.curvature.params import ParamDict
from secondorder.distributed import mean_


def output_jvps(problem: Any, batch: Any, params: ParamDict, directions: list[ParamDict]) -> tuple[Tensor,
                                                                                                    list[Tensor]]:
    """The outputs z = f(θ) on ``batch`` and J u for every direction u, with one forward pass.

    The tangents are batched by ``vmap`` over ``jvp`` (the primal computation does not depend on the tangent,
    so it runs once): the same numbers as one ``torch.func.jvp`` per direction, for one forward pass instead of
    one per direction. ``problem.outputs(batch, params)`` must return (z, targets).
    """
    def outputs(p: ParamDict) -> Tensor:
        return problem.outputs(batch, p)[0]

    if len(directions) == 1:
        z, jv = torch.func.jvp(outputs, (params,), (directions[0],))
        return z, [jv]
    stacked = {n: torch.stack([d[n] for d in directions]) for n in params}
    z, jvs = torch.func.vmap(lambda t: torch.func.jvp(outputs, (params,), (t,)), out_dims=(None, 0))(stacked)
    return z, list(jvs.unbind(0))


def quadratic_terms(vectors: list[Tensor], jvs: list[Tensor], hvs: list[Tensor], grad_flat: Tensor,
                    n_fisher: int) -> tuple[Tensor, Tensor, Tensor]:
    """[uᵢᵀ F uⱼ], [uᵢᵀ uⱼ] and [∇hᵀ uᵢ] for the flat directions uᵢ, in float64 on the host.

    ``jvs[i]`` = J uᵢ and ``hvs[i]`` = F_R J uᵢ (summed over this rank's ``n_fisher`` cases), so
    uᵢᵀ F uⱼ = Σ (J uᵢ) ⊙ (F_R J uⱼ) / n_fisher; the Gram matrix is symmetrised. Everything is computed on the
    device and moved in one transfer (one synchronisation instead of one per entry).
    """
    r = len(vectors)
    gram = torch.stack([(jvs[i] * hvs[j]).sum() for i in range(r) for j in range(r)]) / n_fisher
    mean_([gram], n_fisher)  # over the union's Fisher cases in a data-parallel run (the rest is replicated)
    dots = torch.stack([vectors[i] @ vectors[j] for i in range(r) for j in range(r)])
    rhs = torch.stack([grad_flat @ u for u in vectors])
    packed = torch.cat([gram, dots, rhs]).to("cpu", torch.float64)
    gram, dots, rhs = packed[: r * r].view(r, r), packed[r * r : 2 * r * r].view(r, r), packed[2 * r * r :]
    return 0.5 * (gram + gram.T), dots, rhs
