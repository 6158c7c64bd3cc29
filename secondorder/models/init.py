"""Weight initialisation schemes for ``nn.Linear`` stacks.

* ``sparse`` — Martens (2010) sparse initialisation, as in his HF demo code ([EXT]; the
  thesis only describes the RNN variant, §4.13): each unit receives ``connections`` (15) incoming
  weights drawn N(0, ``std``²) at indices drawn uniformly *with replacement* (a repeated index is simply
  overwritten, as in the MATLAB code), all other weights and all biases 0. A layer with fewer inputs than
  ``connections`` ends up (nearly) dense.
* ``glorot`` — Glorot & Bengio (2010) uniform: U(±scale·√(6 / (fan_in + fan_out))), biases 0.
* ``he`` — He et al. (2015) normal: N(0, scale²·2 / fan_in), biases 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from secondorder.validation import Check, one_of, positive

SCHEMES = ("sparse", "glorot", "he")


@dataclass
class InitConfig:
    scheme: str = "sparse"
    connections: int = 15
    std: float = 1.0
    scale: float = 1.0

    def check(self) -> list[Check]:
        return [one_of(self, "scheme", SCHEMES), *positive(self, "connections", "std", "scale")]


@torch.no_grad()
def sparse_init_(layer: nn.Linear, connections: int, std: float, generator: torch.Generator) -> None:
    fan_out, fan_in = layer.weight.shape
    weight = torch.zeros(fan_out, fan_in, dtype=torch.float64)
    index = torch.randint(fan_in, (fan_out, connections), generator=generator)
    values = std * torch.randn(fan_out, connections, generator=generator, dtype=torch.float64)
    for k in range(connections):  # sequential writes: a repeated index keeps the later value
        weight.scatter_(1, index[:, k : k + 1], values[:, k : k + 1])
    layer.weight.copy_(weight)
    if layer.bias is not None:
        layer.bias.zero_()


@torch.no_grad()
def initialise_(model: nn.Module, cfg: InitConfig, generator: torch.Generator) -> None:
    """Initialise every ``nn.Linear`` in ``model`` (in module order) with ``cfg.scheme``."""
    for layer in model.modules():
        if not isinstance(layer, nn.Linear):
            continue
        fan_out, fan_in = layer.weight.shape
        if cfg.scheme == "sparse":
            sparse_init_(layer, cfg.connections, cfg.std, generator)
            continue
        if cfg.scheme == "glorot":
            bound = cfg.scale * math.sqrt(6.0 / (fan_in + fan_out))
            sample = (2 * torch.rand(fan_out, fan_in, generator=generator, dtype=torch.float64) - 1) * bound
        else:  # he
            std = cfg.scale * math.sqrt(2.0 / fan_in)
            sample = std * torch.randn(fan_out, fan_in, generator=generator, dtype=torch.float64)
        layer.weight.copy_(sample)
        if layer.bias is not None:
            layer.bias.zero_()
