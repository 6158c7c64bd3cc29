"""Parameter dictionaries and the flat vectors that CG works with.

Curvature operators act on dicts ``{name: tensor}`` shaped like the model's parameters (what ``torch.func``
transforms take); solvers such as CG want flat vectors. :class:`ParamSpace` converts between the two in the
model's parameter order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

ParamDict = dict[str, Tensor]


@dataclass(frozen=True)
class ParamSpace:
    """Names and shapes of a model's trainable parameters, in ``named_parameters()`` order."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]

    @classmethod
    def of(cls, model: nn.Module) -> ParamSpace:
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        return cls(tuple(n for n, _ in named), tuple(p.shape for _, p in named))

    @property
    def numel(self) -> int:
        return sum(s.numel() for s in self.shapes)

    def flatten(self, tensors: ParamDict) -> Tensor:
        return torch.cat([tensors[n].reshape(-1) for n in self.names])

    def unflatten(self, vector: Tensor) -> ParamDict:
        out, offset = {}, 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            size = shape.numel()
            out[name] = vector[offset : offset + size].view(shape)
            offset += size
        return out


def detached_params(model: nn.Module) -> ParamDict:
    """The model's trainable parameters as a dict of detached tensors (sharing storage)."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
