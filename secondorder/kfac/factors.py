"""Kronecker-factor statistics (thesis §6.5).

Per layer i: Ā_{i−1,i−1} = E[ā_{i−1} ā_{i−1}ᵀ] and G_{i,i} = E[g_i g_iᵀ]; for the block-tridiagonal inverse
also the cross moments Ā_{i−1,i} = E[ā_{i−1} ā_iᵀ] and G_{i,i+1} = E[g_i g_{i+1}ᵀ]. Expectations are averages
over the statistics cases; g comes from a backward pass with targets **sampled from the model's predictive
distribution** (the true Fisher; one draw per case, §6.5) — ``targets="empirical"`` uses the training targets
(the empirical Fisher, for comparison only), and ``targets="exact"`` takes the exact expectation over y through
H_L = SᵀS (one backward pass per output dimension: for tests on small outputs).

Running averages: new = ε · old + (1 − ε) · estimate with ε_k = min(1 − 1/k, ``max_decay`` = 0.95) (§6.5), so
the first update (k = 1, ε = 0) initialises them; with ``ramp=False`` ε is ``max_decay`` from k = 2 on (KFRA's
constant 0.9; ``max_decay = 0`` keeps only the current batch). Each update is symmetrised.
"""

from __future__ import annotations

import torch
from torch import Tensor

from secondorder.distributed import gather_cases, mean_, own_cases
from secondorder.kfac.layers import LinearLayers


class KroneckerFactors:
    def __init__(self, layers: int, cross: bool, max_decay: float = 0.95, ramp: bool = True) -> None:
        self.cross = cross
        self.max_decay = max_decay
        self.ramp = ramp
        self.A: list[Tensor | None] = [None] * layers  # A[i] = Ā_{i−1,i−1}, input side of layer i
        self.G: list[Tensor | None] = [None] * layers
        self.A_cross: list[Tensor | None] = [None] * max(layers - 1, 0)  # Ā_{i−1,i}
        self.G_cross: list[Tensor | None] = [None] * max(layers - 1, 0)  # G_{i,i+1}
        self.updates = 0

    @staticmethod
    def estimates(inputs: list[Tensor], grads: list[list[Tensor]], cross: bool) -> dict[str, list[Tensor]]:
        """Batch estimates from inputs ā (per layer, cases × dims) and g (per draw, per layer)."""
        n = inputs[0].shape[0]
        draws = len(grads)
        A = [a.T @ a / n for a in inputs]
        G = [sum(g[i].T @ g[i] for g in grads) / (n * draws) for i in range(len(inputs))]
        out = {"A": A, "G": G}
        if cross:
            # Ā_{i−1,i} pairs the inputs of layers i and i+1; the homogeneous coordinate stays in both.
            out["A_cross"] = [inputs[i].T @ inputs[i + 1] / n for i in range(len(inputs) - 1)]
            out["G_cross"] = [sum(g[i].T @ g[i + 1] for g in grads) / (n * draws) for i in range(len(inputs) - 1)]
        return out

    def update(self, estimates: dict[str, list[Tensor]]) -> float:
        """Fold a batch's estimates into the running averages; returns the ε used."""
        self.updates += 1
        k = self.updates
        decay = min(1.0 - 1.0 / k, self.max_decay) if self.ramp or k == 1 else self.max_decay

        def fold(old: Tensor | None, new: Tensor, symmetric: bool) -> Tensor:
            new = 0.5 * (new + new.T) if symmetric else new
            return new.clone() if old is None else decay * old + (1.0 - decay) * new

        self.A = [fold(o, e, True) for o, e in zip(self.A, estimates["A"], strict=True)]
        self.G = [fold(o, e, True) for o, e in zip(self.G, estimates["G"], strict=True)]
        if self.cross:
            self.A_cross = [fold(o, e, False) for o, e in zip(self.A_cross, estimates["A_cross"], strict=True)]
            self.G_cross = [fold(o, e, False) for o, e in zip(self.G_cross, estimates["G_cross"], strict=True)]
        return decay

    def matrices(self) -> dict[str, list[Tensor | None]]:
        """The current running averages by name — what an inverse back-end's ``refresh`` takes
        (:mod:`secondorder.kfac.inverses`)."""
        return {"A": self.A, "G": self.G, "A_cross": self.A_cross, "G_cross": self.G_cross}

    def state_dict(self) -> dict[str, object]:
        """Lists of tensors (``None`` before the first update) and the update count: loads with
        ``weights_only=True``."""
        return {**{key: list(value) for key, value in self.matrices().items()}, "updates": self.updates}

    def load_state_dict(self, state: dict[str, object], device: torch.device) -> None:
        def move(items: list) -> list:
            return [None if t is None else t.to(device) for t in items]

        self.A, self.G = move(state["A"]), move(state["G"])
        self.A_cross, self.G_cross = move(state["A_cross"]), move(state["G_cross"])
        self.updates = int(state["updates"])


def collect_statistics(layers: LinearLayers, run_forward, loss, targets: str,
                       generator: torch.Generator | None, cross: bool) -> dict[str, list[Tensor]]:
    """One statistics pass: forward with capture, then the backward pass(es) that give g.

    ``run_forward()`` returns the network outputs z (n, d) for the statistics cases and their training
    targets y (used only with ``targets="empirical"``). In a data-parallel run the sampled targets are drawn at
    the union's shape, as one process would draw them, each rank keeping its own rows, and the estimates are the
    union's means (:mod:`secondorder.distributed`; nothing changes on one process).
    """
    with layers.capture():
        z, y = run_forward()
        inputs = list(layers.inputs)
        if targets == "sampled":
            y_s = own_cases(loss.sample_targets(gather_cases(z.detach()), generator))
            grads = [layers.backward_grads(loss.per_case(z, y_s).sum())]
        elif targets == "empirical":
            grads = [layers.backward_grads(loss.per_case(z, y).sum())]
        else:  # exact expectation over y: E[g gᵀ] = Σ_k g⁽ᵏ⁾g⁽ᵏ⁾ᵀ with g⁽ᵏ⁾ backpropagated from row k of S
            grads = []
            zd = z.detach()
            for k in range(z.shape[1]):
                unit = torch.zeros_like(zd)
                unit[:, k] = 1.0
                direction = loss.output_hessian_sqrt_t_vector(zd, unit, y)  # Sᵀ e_k per case
                grads.append(layers.backward_grads((z * direction).sum(), retain_graph=k < z.shape[1] - 1))
            estimates = KroneckerFactors.estimates([a.detach() for a in inputs], grads, cross)
            estimates["G"] = [g * len(grads) for g in estimates["G"]]  # a sum over k, not a mean over draws
            if cross:
                estimates["G_cross"] = [g * len(grads) for g in estimates["G_cross"]]
            return union_means(estimates, z.shape[0])
    return union_means(KroneckerFactors.estimates([a.detach() for a in inputs], grads, cross), z.shape[0])


def union_means(estimates: dict[str, list[Tensor]], cases: int) -> dict[str, list[Tensor]]:
    """The union batch's means from this rank's means over its ``cases`` (one all-reduce; as is on one process)."""
    mean_([t for values in estimates.values() for t in values], cases)
    return estimates
