"""Polyak-style iterate averaging (thesis §6.13: ξ = 0.99 "for all methods").

θ̄_k = ξ_k θ̄_{k−1} + (1 − ξ_k) θ_k with ξ_k = min(1 − 1/(k − start + 1), ξ) from iteration ``start`` on (Martens'
code: start 200), so θ̄ equals θ at the first averaged iteration. The trainer evaluates both θ and θ̄ and the
papers report the minimum of the two training errors (thesis §6.13).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


class IterateAverage:
    def __init__(self, model: nn.Module, decay: float, start: int) -> None:
        self.model, self.decay, self.start = model, decay, start
        self.average: list[torch.Tensor] | None = None

    def update(self, iteration: int) -> None:
        """Fold the parameters after update number ``iteration`` (1-based) into the average."""
        if iteration < self.start:
            return
        weight = min(1.0 - 1.0 / (iteration - self.start + 1), self.decay)
        with torch.no_grad():
            params = [p.detach() for p in self.model.parameters()]
            if self.average is None:
                self.average = [p.clone() for p in params]
            else:
                torch._foreach_mul_(self.average, weight)
                torch._foreach_add_(self.average, params, alpha=1.0 - weight)

    @property
    def active(self) -> bool:
        return self.average is not None

    @contextmanager
    def swapped_in(self):
        """Temporarily give the model the averaged parameters."""
        if self.average is None:
            yield
            return
        with torch.no_grad():
            saved = [p.detach().clone() for p in self.model.parameters()]
            for p, a in zip(self.model.parameters(), self.average, strict=True):
                p.copy_(a)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, s in zip(self.model.parameters(), saved, strict=True):
                    p.copy_(s)

    def state_dict(self) -> dict[str, object]:
        return {"average": self.average}

    def load_state_dict(self, state: dict[str, object]) -> None:
        average = state["average"]
        device = next(self.model.parameters()).device
        self.average = None if average is None else [a.to(device) for a in average]
