"""Closed-form Gauss-Newton products of layered feed-forward nets (thesis §4.3–§4.4, Alg. 5; Schraudolph 2002).

For a net built as ``nn.Sequential`` of ``nn.Linear`` maps s_i = W_i a_{i−1} + b_i and elementwise units
a_i = φ_i(s_i) (the autoencoders of Table 4.2 and the MLP classifiers), a direction v = (V_i, v_i) moves the
outputs by the R-operator (Pearlmutter 1994):

    R s_i = V_i a_{i−1} + v_i + W_i R a_{i−1},   R a_i = φ_i′(s_i) ⊙ R s_i,   R a_0 = 0,

and z's change is J v = R s_L. The GGN product G v = (1/N) Jᵀ H_L J v maps R z through the loss's output
curvature to w and back-propagates it: with g_L = w, g_i ← φ_i′ ⊙ g_i, ∂W_i = g_iᵀ a_{i−1}, ∂b_i = Σ_n g_i,
g_{i−1} = g_i W_i.

The set-up is one forward pass that keeps each layer's input a_{i−1} and slope φ′(s_i) — about a third of a
gradient — where ``torch.func.linearize`` traces the whole forward-mode graph (tens of gradients' worth on a
CPU: ``results/bench/cpu/curvature.md``). One product is four matrix products per layer, as a gradient's three
plus one. The generic :class:`~secondorder.curvature.products.GGNOperator` stays as the oracle
(tests/test_curvature_layered.py) and serves every other model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from secondorder.curvature.params import ParamDict, detached_params
from secondorder.curvature.products import CurvatureOperator, _add_l2
from secondorder.problems.supervised import SupervisedProblem

UNITS = (nn.Sigmoid, nn.Tanh, nn.ReLU, nn.Identity)


def layered_modules(model: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """The (name, module) chain of a plain ``nn.Sequential`` of Linear maps and elementwise units, else None."""
    if not isinstance(model, nn.Sequential) or type(model).forward is not nn.Sequential.forward:
        return None
    chain = list(model.named_children())
    if not chain or not all(isinstance(module, (nn.Linear, *UNITS)) for _, module in chain):
        return None
    if len(dict(model.named_parameters())) != sum(
            1 + (module.bias is not None) for _, module in chain if isinstance(module, nn.Linear)):
        return None
    return chain


def supports_layered(problem: Any) -> bool:
    """True for a supervised problem whose outputs are its layered net's output on the inputs."""
    return (isinstance(problem, SupervisedProblem) and type(problem).outputs is SupervisedProblem.outputs
            and layered_modules(problem.model) is not None)


def _slope(unit: nn.Module, s: Tensor, a: Tensor) -> Tensor | None:
    """φ′(s) from the pre-activation s and the activity a = φ(s); None for the identity."""
    if isinstance(unit, nn.Sigmoid):
        return a * (1 - a)
    if isinstance(unit, nn.Tanh):
        return 1 - a * a
    if isinstance(unit, nn.ReLU):
        return (s > 0).to(s.dtype)
    return None


class LayeredGaussNewton(CurvatureOperator):
    """G v (+ η v for the ℓ2 prior) of a layered net on ``batch`` at ``params`` (default: the model's own)."""

    def __init__(self, problem: Any, batch: tuple[Tensor, Tensor], params: ParamDict | None = None,
                 include_l2: bool = True) -> None:
        super().__init__(problem)
        chain = layered_modules(problem.model)
        if chain is None or not supports_layered(problem):
            raise TypeError("LayeredGaussNewton needs a supervised problem on an nn.Sequential of Linear maps "
                            "and elementwise units; use GGNOperator")
        self.params = params if params is not None else detached_params(problem.model)
        self.include_l2 = include_l2
        self.scale = 1.0 / problem.cases(batch)
        inputs, targets = batch
        # One forward pass: (name, weight, has bias, layer input) per Linear map, the slope per unit.
        self._steps: list[tuple[str, Any]] = []
        a = inputs
        with torch.no_grad():
            for name, module in chain:
                if isinstance(module, nn.Linear):
                    weight = self.params[f"{name}.weight"].detach()
                    bias = self.params.get(f"{name}.bias")
                    self._steps.append(("linear", (name, weight, bias is not None, a)))
                    a = a @ weight.T if bias is None else torch.addmm(bias.detach(), a, weight.T)
                else:
                    s, a = a, module(a)
                    slope = _slope(module, s, a)
                    if slope is not None:
                        self._steps.append(("unit", slope))
        self.z = a
        loss = problem.loss
        y = targets if getattr(loss, "needs_targets", False) else None
        self._output_map = lambda z, w: loss.output_hessian_vector(z, w, y=y)

    def jvp(self, v: ParamDict) -> Tensor:
        """J v = R z: the R-operator's forward pass."""
        r: Tensor | None = None
        for kind, step in self._steps:
            if kind == "unit":
                r = step * r if r is not None else None
                continue
            name, weight, has_bias, a = step
            drive = a @ v[f"{name}.weight"].T
            if has_bias:
                drive = drive + v[f"{name}.bias"]
            r = drive if r is None else torch.addmm(drive, r, weight.T)
        assert r is not None
        return r

    def vjp(self, w: Tensor) -> ParamDict:
        """Jᵀ w: back-propagation of an output-space w (n, d_out) through the stored slopes."""
        out: ParamDict = {}
        first = next(i for i, (kind, _) in enumerate(self._steps) if kind == "linear")
        for i in range(len(self._steps) - 1, first - 1, -1):
            kind, step = self._steps[i]
            if kind == "unit":
                w = w * step
                continue
            name, weight, has_bias, a = step
            out[f"{name}.weight"] = w.T @ a
            if has_bias:
                out[f"{name}.bias"] = w.sum(0)
            if i > first:
                w = w @ weight
        return {name: out[name] for name in self.params}

    def __call__(self, v: ParamDict) -> ParamDict:
        w = self._output_map(self.z, self.jvp(v)) * self.scale
        return _add_l2(self.problem, v, self.vjp(w), self.include_l2)
