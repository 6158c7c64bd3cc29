"""Closed-form Gauss-Newton products of the simple RNN by backpropagation through time (thesis §4.13, §4.6.4).

For :class:`~secondorder.models.rnn.RecurrentNet`, h_t = φ(s_t), s_t = W_in x_t + W_rec h_{t−1} + b,
z_t = W_out h_t + b_out, a direction v = (V_in, V_rec, v_b, V_out, v_out) moves the network by the R-operator
(Pearlmutter 1994; the forward pass of Martens & Sutskever 2011, §3):

    R s_t = V_in x_t + V_rec h_{t−1} + v_b + W_rec R h_{t−1},   R h_t = φ′(s_t) ⊙ R s_t,   R h_0 = 0,
    R z_t = V_out h_t + v_out + W_out R h_t.

The GGN product is G v = (1/N) Jᵀ H_L J v: the output curvature H_L maps R z_t to w_t at the scored steps, and
back-propagating w through time gives Jᵀ w. Structural damping (§4.6.4) adds μ (1/N) J_cᵀ H_d J_c v for the
hidden units c (activities under squared error, or a logistic net's pre-activations under cross-entropy): the
same R-pass gives J_c v, and its image under H_d enters the same backward pass at h_t (or s_t). One product is
two loops of T small matrix products — the generic :class:`~secondorder.curvature.products.GGNOperator`
(``torch.func.linearize``) replays the autograd graph of every step instead, and with structural damping runs
a second linearisation; both stay as the oracle (tests/test_curvature.py).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from secondorder.curvature.params import ParamDict, detached_params
from secondorder.curvature.products import CurvatureOperator, _add_l2, curvature_targets
from secondorder.models.rnn import RecurrentNet

NAMES = ("input.weight", "recurrent.weight", "recurrent.bias", "output.weight", "output.bias")


def supports_bptt(problem: Any) -> bool:
    """True for a sequence problem on :class:`RecurrentNet` (the closed-form products apply)."""
    return isinstance(problem.model, RecurrentNet) and hasattr(problem, "structural_outputs")


class RecurrentGaussNewton(CurvatureOperator):
    """G v (+ η v for the ℓ2 prior) of a :class:`RecurrentNet` on ``batch``, with ``mv_damped`` adding the
    structural-damping term μ D v from the same R-pass (:func:`structural` gives D alone)."""

    def __init__(self, problem: Any, batch: Any, params: ParamDict | None = None, include_l2: bool = True) -> None:
        super().__init__(problem)
        self.params = params if params is not None else detached_params(problem.model)
        self.include_l2 = include_l2
        p = {name: self.params[name].detach() for name in NAMES}
        self.w_rec, self.w_out = p["recurrent.weight"], p["output.weight"]
        self.logistic = problem.model.cfg.activation == "sigmoid"
        self.cases = problem.cases(batch)
        with torch.no_grad():
            x = batch.inputs.to(self.w_rec.dtype)
            outputs, _, (pre, hidden) = problem.call_model(self.params, batch.inputs, None, True)
        self.x, self.h = x, hidden.detach()                                        # (B, T, d_in), (B, T, H)
        self.h_prev = torch.cat([torch.zeros_like(self.h[:, :1]), self.h[:, :-1]], dim=1)
        self.slope = self.h * (1 - self.h) if self.logistic else 1 - self.h * self.h  # φ′(s_t)
        self.mask = batch.mask
        self.z = outputs.detach()[self.mask]
        loss = problem.loss
        targets = curvature_targets(problem, batch, self.params)
        self._output_map = lambda z, w: loss.output_hessian_vector(z, w, y=targets)
        _, self.distance = problem.structural_outputs(batch, self.params)
        self.c = (pre.detach() if self.logistic else self.h).reshape(-1, self.h.shape[-1])

    # ------------------------------------------------------------------ the two passes
    def _forward(self, v: ParamDict) -> tuple[Tensor, Tensor, Tensor]:
        """(R s, R h, R z) for all steps, each (B, T, ·)."""
        drive = self.x @ v["input.weight"].T + self.h_prev @ v["recurrent.weight"].T + v["recurrent.bias"]
        rs, rh = [], []
        r_h = torch.zeros_like(drive[:, 0])
        for t, (drive_t, slope_t) in enumerate(zip(drive.unbind(1), self.slope.unbind(1), strict=True)):
            r_s = drive_t + r_h @ self.w_rec.T if t else drive_t
            r_h = slope_t * r_s
            rs.append(r_s)
            rh.append(r_h)
        r_s, r_h = torch.stack(rs, dim=1), torch.stack(rh, dim=1)
        r_z = self.h @ v["output.weight"].T + v["output.bias"] + r_h @ self.w_out.T
        return r_s, r_h, r_z

    def _backward(self, w_z: Tensor | None, w_c: Tensor | None) -> ParamDict:
        """Jᵀ of the injections w_z at the outputs (B, T, d_out) and w_c at the hidden units (B, T, H)."""
        grad_h = w_z @ self.w_out if w_z is not None else torch.zeros_like(self.h)
        grad_s_direct = None
        if w_c is not None:
            if self.logistic:
                grad_s_direct = w_c
            else:
                grad_h = grad_h + w_c
        deltas = []
        delta = None
        for t in range(self.h.shape[1] - 1, -1, -1):
            g = grad_h[:, t] if delta is None else grad_h[:, t] + delta @ self.w_rec
            delta = self.slope[:, t] * g
            if grad_s_direct is not None:
                delta = delta + grad_s_direct[:, t]
            deltas.append(delta)
        delta_s = torch.stack(deltas[::-1], dim=1).flatten(0, 1)                    # (B·T, H)
        hidden = self.h.flatten(0, 1)
        out = {"input.weight": delta_s.T @ self.x.flatten(0, 1),
               "recurrent.weight": delta_s.T @ self.h_prev.flatten(0, 1),
               "recurrent.bias": delta_s.sum(0)}
        if w_z is None:
            out["output.weight"] = torch.zeros_like(self.w_out)
            out["output.bias"] = torch.zeros_like(self.params["output.bias"])
        else:
            flat = w_z.flatten(0, 1)
            out["output.weight"] = flat.T @ hidden
            out["output.bias"] = flat.sum(0)
        return out

    def _output_injection(self, r_z: Tensor) -> Tensor:
        w = torch.zeros_like(r_z)
        w[self.mask] = self._output_map(self.z, r_z[self.mask]) / self.cases
        return w

    def _structural_injection(self, r_s: Tensor, r_h: Tensor, weight: float) -> Tensor:
        rc = (r_s if self.logistic else r_h).reshape(self.c.shape)
        return (self.distance.output_hessian_vector(self.c, rc) * (weight / self.cases)).reshape(self.h.shape)

    # ------------------------------------------------------------------ products
    def __call__(self, v: ParamDict) -> ParamDict:
        _, _, r_z = self._forward(v)
        return _add_l2(self.problem, v, self._backward(self._output_injection(r_z), None), self.include_l2)

    def structural(self, v: ParamDict) -> ParamDict:
        """D v = (1/N) Σ J_cᵀ H_d J_c v (the :class:`StructuralDampingTerm` at weight 1)."""
        r_s, r_h, _ = self._forward(v)
        return self._backward(None, self._structural_injection(r_s, r_h, 1.0))

    def mv_damped(self, vector: Tensor, mu: float) -> Tensor:
        """(G + η + μ D) v for a flat v in one R-pass and one backward pass."""
        v = self.space.unflatten(vector)
        r_s, r_h, r_z = self._forward(v)
        w_c = self._structural_injection(r_s, r_h, mu) if mu else None
        return self.space.flatten(_add_l2(self.problem, v, self._backward(self._output_injection(r_z), w_c),
                                          self.include_l2))
