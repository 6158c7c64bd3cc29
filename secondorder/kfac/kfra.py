"""KFRA: Kronecker factors of the block-diagonal Gauss-Newton by a deterministic backward recursion
(Botev, Ritter & Barber 2017, §3.5 and Algorithm 1 in App. H).

For a feed-forward chain h_λ = W_λ ā_{λ−1}, a_λ = f_λ(h_λ), output h_L with the matching loss:

    𝒢̃_L = (1/N) Σ_n ℋ_L(h_L⁽ⁿ⁾)                       (batch mean of the output Hessian, exact)
    𝒢̃_{λ−1} = (W_λᵀ 𝒢̃_λ W_λ) ⊙ ((1/N) F′_{λ−1}ᵀ F′_{λ−1}),  F′_{λ−1} = f′(h_{λ−1}) (N × d_{λ−1})   (Algorithm 1)
    Q̃_λ = (1/N) Σ_n ā_{λ−1} ā_{λ−1}ᵀ                    (the K-FAC Ā, bias coordinate included)

W_λ excludes the bias column (the appended 1 does not depend on h_{λ−1}). For one case (N = 1) this is exact
(App. D.4). KFLR (§3.4) is the exact 𝔼[𝒢_λ], which is K-FAC's statistics pass with the exact expectation over
targets (:func:`secondorder.kfac.factors.collect_statistics` with ``targets="exact"``): both are written once.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from secondorder.distributed import mean_
from secondorder.errors import ConfigError
from secondorder.kfac.layers import LinearLayers
from secondorder.losses import MatchingLoss

# f′ as a function of (pre-activation h, activation a = f(h))
DERIVATIVES: dict[type, Callable[[Tensor, Tensor], Tensor]] = {
    nn.Sigmoid: lambda h, a: a * (1 - a),
    nn.Tanh: lambda h, a: 1 - a * a,
    nn.ReLU: lambda h, a: (h > 0).to(h.dtype),
    nn.Identity: lambda h, a: torch.ones_like(h),
}


def activations_after(model: nn.Module, layers: LinearLayers) -> list[nn.Module]:
    """For a ``nn.Sequential`` chain: the elementwise module that follows each hidden Linear layer."""
    if not isinstance(model, nn.Sequential):
        raise ConfigError("KFRA needs a feed-forward nn.Sequential of Linear layers and elementwise activations")
    children = list(model)
    out = []
    for linear in layers.modules[:-1]:
        index = next(i for i, m in enumerate(children) if m is linear)
        follower = children[index + 1] if index + 1 < len(children) else None
        if isinstance(follower, nn.Linear) or follower is None:
            follower = nn.Identity()
        if type(follower) not in DERIVATIVES:
            raise ConfigError(f"KFRA: no derivative for activation {type(follower).__name__}")
        out.append(follower)
    return out


@torch.no_grad()
def kfra_statistics(layers: LinearLayers, activations: list[nn.Module], run_forward, loss: MatchingLoss,
                    cross: bool = False) -> dict[str, list[Tensor]]:
    """Q̃ (= Ā) and 𝒢̃ for every layer from one forward pass over the batch."""
    if cross:
        raise ConfigError("KFRA gives block-diagonal factors only (use approximation=blockdiag)")
    with layers.capture():
        z, y = run_forward()
        inputs = [a.detach() for a in layers.inputs]
        pre = [o.detach() for o in layers.outputs]
    n = z.shape[0]
    A = [a.T @ a / n for a in inputs]
    top = loss.mean_output_hessian(z.detach(), y)
    slopes = []  # (1/N) F′_{λ−1}ᵀ F′_{λ−1} below each layer λ = L … 2
    for i in range(len(layers) - 1, 0, -1):
        h = pre[i - 1]
        act = activations[i - 1]
        derivative = DERIVATIVES[type(act)](h, act(h))
        slopes.append(derivative.T @ derivative / n)
    mean_([*A, top, *slopes], n)  # every batch mean of the recursion is the union's in a data-parallel run
    G: list[Tensor] = [top]
    for i, slope in zip(range(len(layers) - 1, 0, -1), slopes, strict=True):
        weight = layers.modules[i].weight.detach()
        G.insert(0, (weight.T @ G[0] @ weight) * slope)
    return {"A": A, "G": G}
