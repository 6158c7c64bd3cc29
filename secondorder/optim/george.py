"""George's factorised methods (M.Sc. thesis 2017, §6.3.2, §6.4; signs corrected):
centred gradient descent (Algorithm 2) and the Amortised Covariance Preconditioner (ACP, Algorithm 3).

For a layer a = W h + b with per-example pre-activation gradients gᵢ = ∇_{aᵢ} l and inputs hᵢ (batch mean h̄):

* **Centred GD** (Alg. 2, as descent): W ← W − λ (1/n) Σᵢ gᵢ (hᵢ − h̄)ᵀ, b ← b − λ (1/n) Σᵢ gᵢ. The printed
  algorithm adds the step (gradient ascent, a sign typo; the final version negates it).
* **ACP** (Alg. 3; eqs 6.3.3/6.3.4): the input-side factor A = E[(h;1)(h;1)ᵀ] ⊗ αI, so the preconditioned
  direction is ΔW = (1/α)(1/n) Σᵢ gᵢ (hᵢ − h̄)ᵀ C⁻¹ and Δb = (1/α)(1/n) Σᵢ gᵢ [− ΔW h̄ with ``bias_correction``,
  which Alg. 3 omits and the text says "did not change much"], then θ ← θ − λ·Δ. C, the biased covariance of a
  layer's inputs, comes from a separate statistics batch of ``stats_batch_size`` = 200 every ``stats_period`` =
  100 updates (§6.6.2) and is damped: (C + (ε/α) I)⁻¹ (the final version's shortcut, default) or the exact
  damped block inverse (``damping_form=exact``: C_δ = E[hhᵀ] + δI − mmᵀ/s, s = 1 + δ, δ = ε/α; W-direction
  (1/α)(1/n)Σ g (h − m/s)ᵀ C_δ⁻¹, b-direction ((1/α)ḡ − ΔW m)/s; our derivation, §6.4.2 states only the damped factor).
  α is fixed (``alpha``; "acp_fixedalpha") or the heuristic α = max over the batch and outputs of gᵢⱼ²
  (§6.4.2), per layer. [choice] The damping's α is the heuristic's value on the statistics batch (fixed until the
  next refresh); the step's 1/α uses the current batch. The ℓ2 prior's gradient η θ is added unpreconditioned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from secondorder.kfac.layers import LinearLayers
from secondorder.optim.base import Optimizer, StepCosts, StepResult
from secondorder.optim.schedules import halved_every
from secondorder.problems.samplers import Sampler
from secondorder.validation import Check, non_negative, one_of, positive


@dataclass
class CenteredSGDConfig:
    name: str = "centered_sgd"
    lr: float = 0.01
    batch_size: int = 200
    lr_halving_period: int | None = None

    def check(self) -> list[Check]:
        return [*positive(self, "lr", "batch_size"), *positive(self, "lr_halving_period", allow_none=True)]


@dataclass
class ACPConfig:
    name: str = "acp"
    lr: float = 0.01
    batch_size: int = 200
    lr_halving_period: int | None = None
    alpha: float | None = None
    damping: float = 1e-3
    damping_form: str = "shortcut"
    stats_period: int = 100
    stats_batch_size: int = 200
    bias_correction: bool = False

    def check(self) -> list[Check]:
        return [
            *positive(self, "lr", "batch_size", "stats_period", "stats_batch_size"),
            *positive(self, "lr_halving_period", "alpha", allow_none=True),
            *non_negative(self, "damping"),
            one_of(self, "damping_form", ["shortcut", "exact"]),
        ]


def layer_statistics(problem: Any, layers: LinearLayers, batch: Any, need_grads: bool):
    """One forward (+ backward of the summed per-case loss) with capture: inputs h (without the homogeneous
    coordinate) and per-example pre-activation gradients g for every layer, and the batch's mean objective."""
    with layers.capture():
        z, y = problem.outputs(batch)
        per_case = problem.loss.per_case(z, y)
        inputs = [a[:, :-1] if m.bias is not None else a for a, m in zip(layers.inputs, layers.modules, strict=True)]
        grads = layers.backward_grads(per_case.sum()) if need_grads else None
    return inputs, grads, float(per_case.detach().mean())


def centred_direction(g: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """(1/n) Σ gᵢ (hᵢ − h̄)ᵀ and (1/n) Σ gᵢ."""
    n = g.shape[0]
    return g.T @ (h - h.mean(dim=0)) / n, g.mean(dim=0)


def acp_direction(g: Tensor, h: Tensor, c_inverse: Tensor, alpha: float, bias_correction: bool,
                  mean: Tensor | None = None, s: float = 1.0) -> tuple[Tensor, Tensor]:
    """ACP's preconditioned direction (before −λ): eqs 6.3.3 / 6.3.4, or the exact damped form when ``mean``
    (the statistics batch's m) and ``s`` = 1 + δ are given."""
    n = g.shape[0]
    centre = h.mean(dim=0) if mean is None else mean / s
    dW = (g.T @ (h - centre) / n) @ c_inverse / alpha
    db = g.mean(dim=0) / alpha
    if mean is not None:
        return dW, (db - dW @ mean) / s
    if bias_correction:
        db = db - dW @ h.mean(dim=0)
    return dW, db


class CenteredSGD(Optimizer):
    config_class = CenteredSGDConfig
    compile_ok = False  # its statistics come from module hooks (trainer.compile)
    stat_names = ("lr",)

    def __init__(self, problem: Any, cfg: Any) -> None:
        super().__init__(problem, cfg)
        probe = problem.make_sampler(seed=0).next(2)
        self.layers = LinearLayers(problem.model, lambda: problem.outputs(probe))

    def _directions(self, inputs: list[Tensor], grads: list[Tensor]) -> list[tuple[Tensor, Tensor]]:
        return [centred_direction(g, h) for h, g in zip(inputs, grads, strict=True)]

    def _apply(self, directions: list[tuple[Tensor, Tensor]], lr: float) -> None:
        eta = self.problem.l2
        with torch.no_grad():
            for (name, module), (dW, db) in zip(zip(self.layers.names, self.layers.modules, strict=True), directions,
                                                strict=True):
                decay_w = eta * module.weight if f"{name}.weight" in self.problem.l2_names else 0.0
                module.weight.sub_(lr * (dW + decay_w))
                if module.bias is not None:
                    decay_b = eta * module.bias if f"{name}.bias" in self.problem.l2_names else 0.0
                    module.bias.sub_(lr * (db + decay_b))

    def step(self, iteration: int, sampler: Sampler) -> StepResult:
        lr = halved_every(self.cfg.lr, self.cfg.lr_halving_period, iteration)
        batch = sampler.next(self.cfg.batch_size)
        with self.phases("gradient"):
            inputs, grads, loss = layer_statistics(self.problem, self.layers, batch, need_grads=True)
        with self.phases("proposal"):
            directions = self._directions(inputs, grads)
        with self.phases("update"):
            self._apply(directions, lr)
        h = loss + float(self.problem.l2_penalty().detach())
        return StepResult(h, StepCosts(grad_evals=1), {"lr": lr})

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


class ACP(CenteredSGD):
    config_class = ACPConfig
    stat_names = ("lr", "alpha_mean", "refreshed")

    def __init__(self, problem: Any, cfg: Any) -> None:
        super().__init__(problem, cfg)
        self.inverses: list[Tensor] | None = None
        self.means: list[Tensor] | None = None
        self.s: list[float] = []
        self.updates = 0

    @staticmethod
    def heuristic_alpha(g: Tensor) -> float:
        """α = max over cases and outputs of the squared per-example pre-activation gradient (George 2017, §6.4.2)."""
        return float(g.pow(2).max()) or 1.0

    def _refresh(self, sampler: Sampler, costs: StepCosts) -> None:
        cfg = self.cfg
        batch = sampler.next(cfg.stats_batch_size)
        inputs, grads, _ = layer_statistics(self.problem, self.layers, batch, need_grads=cfg.alpha is None)
        costs.forward_passes += 1
        if grads is not None:
            costs.grad_evals += 1
        self.inverses, self.means, self.s = [], [], []
        for i, h in enumerate(inputs):
            alpha = cfg.alpha if cfg.alpha is not None else self.heuristic_alpha(grads[i])
            delta = cfg.damping / alpha
            m = h.mean(dim=0)
            eye = torch.eye(h.shape[1], dtype=torch.float64, device=h.device)
            hd = h.to(torch.float64)
            if cfg.damping_form == "exact":
                s = 1.0 + delta
                matrix = hd.T @ hd / h.shape[0] + delta * eye - torch.outer(m, m).to(torch.float64) / s
            else:
                s = 1.0
                centred = hd - hd.mean(dim=0)
                matrix = centred.T @ centred / h.shape[0] + delta * eye
            self.inverses.append(torch.linalg.pinv(matrix, hermitian=True).to(h.dtype))
            self.means.append(m)
            self.s.append(s)
        costs.inversions += len(inputs)

    def _preconditioned(self, inputs: list[Tensor], grads: list[Tensor]) -> tuple[list[Tensor], list[float]]:
        """Each layer's ACP direction and the α it used."""
        cfg = self.cfg
        directions, alphas = [], []
        for i, (h, g) in enumerate(zip(inputs, grads, strict=True)):
            alpha = cfg.alpha if cfg.alpha is not None else self.heuristic_alpha(g)
            alphas.append(alpha)
            if cfg.damping_form == "exact":
                directions.append(acp_direction(g, h, self.inverses[i], alpha, False, self.means[i], self.s[i]))
            else:
                directions.append(acp_direction(g, h, self.inverses[i], alpha, cfg.bias_correction))
        return directions, alphas

    def step(self, iteration: int, sampler: Sampler) -> StepResult:
        cfg = self.cfg
        costs = StepCosts()
        refreshed = self.inverses is None or self.updates % cfg.stats_period == 0
        if refreshed:
            with self.phases("inverses"):
                self._refresh(sampler, costs)
        lr = halved_every(cfg.lr, cfg.lr_halving_period, iteration)
        batch = sampler.next(cfg.batch_size)
        with self.phases("gradient"):
            inputs, grads, loss = layer_statistics(self.problem, self.layers, batch, need_grads=True)
        costs.grad_evals += 1
        with self.phases("proposal"):
            directions, alphas = self._preconditioned(inputs, grads)
        with self.phases("update"):
            self._apply(directions, lr)
        self.updates += 1
        h_value = loss + float(self.problem.l2_penalty().detach())
        return StepResult(h_value, costs, {"lr": lr, "alpha_mean": sum(alphas) / len(alphas),
                                          "refreshed": float(refreshed)})

    def state_dict(self) -> dict[str, Any]:
        return {"inverses": self.inverses, "means": self.means, "s": self.s, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = next(self.problem.model.parameters()).device
        self.inverses = None if state["inverses"] is None else [t.to(device) for t in state["inverses"]]
        self.means = None if state["means"] is None else [t.to(device) for t in state["means"]]
        self.s, self.updates = list(state["s"]), int(state["updates"])
