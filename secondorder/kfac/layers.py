"""Per-layer helper for K-FAC: finds a network's ``nn.Linear`` layers and captures their statistics.

Kept apart from the optimiser's maths (in the spirit of gpauloski's ``modules.py``). For layer i with
s_i = W_i ā_{i−1} (ā the input with a homogeneous coordinate 1 appended when the layer has a bias — the bias
is the last column of [W | b], thesis §2.1) it records, during a statistics pass:

* ā_{i−1} from the forward pass (hook on the layer's input);
* g_i = 𝒟s_i, the per-case derivative of the loss with respect to the layer's output pre-activation, from
  a backward pass of Σ_cases L (so no batch-size factor is needed).

Layer order is the order of the forward calls; each layer must run exactly once per forward pass
(feed-forward stacks; K-FAC for recurrent weights is the RNN issue's).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from secondorder.errors import ConfigError


class LinearLayers:
    """The ``nn.Linear`` layers of a model in forward order, with block ↔ parameter conversions."""

    def __init__(self, model: nn.Module, probe: Callable[[], object]) -> None:
        named = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
        owned = {id(p) for _, m in named for p in m.parameters()}
        stray = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in owned]
        if not named or stray:
            raise ConfigError(f"K-FAC here supports networks of nn.Linear layers only; {stray[0] if stray else 'no'} "
                              "parameter outside them (use an autoencoder or MLP model)")
        order: list[str] = []
        handles = [m.register_forward_hook(lambda mod, i, o, name=name: order.append(name)) for name, m in named]
        try:
            with torch.no_grad():
                probe()
        finally:
            for h in handles:
                h.remove()
        if sorted(order) != sorted(name for name, _ in named) or len(order) != len(set(order)):
            raise ConfigError("K-FAC needs every nn.Linear layer to run exactly once per forward pass")
        modules = dict(named)
        self.names = order
        self.modules = [modules[n] for n in order]
        self.inputs: list[Tensor | None] = [None] * len(order)
        self.grads: list[Tensor | None] = [None] * len(order)
        self.outputs: list[Tensor | None] = [None] * len(order)

    def __len__(self) -> int:
        return len(self.modules)

    def has_bias(self, i: int) -> bool:
        return self.modules[i].bias is not None

    # ------------------------------------------------------------------ blocks [W | b]
    def to_blocks(self, tensors: dict[str, Tensor]) -> list[Tensor]:
        """Per layer the matrix [W | b] (d_out × (d_in + 1)), or W without bias, from a parameter-shaped dict."""
        blocks = []
        for name, module in zip(self.names, self.modules, strict=True):
            weight = tensors[f"{name}.weight"]
            blocks.append(torch.cat([weight, tensors[f"{name}.bias"][:, None]], dim=1)
                          if module.bias is not None else weight)
        return blocks

    def from_blocks(self, blocks: list[Tensor]) -> dict[str, Tensor]:
        out = {}
        for name, module, block in zip(self.names, self.modules, blocks, strict=True):
            if module.bias is not None:
                out[f"{name}.weight"], out[f"{name}.bias"] = block[:, :-1], block[:, -1]
            else:
                out[f"{name}.weight"] = block
        return out

    # ------------------------------------------------------------------ capture
    @contextmanager
    def capture(self):
        """Record ā (homogeneous) in the forward pass and keep the outputs for g in the backward pass."""
        def forward_hook(index: int):
            def hook(module: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
                a = args[0].detach()
                if module.bias is not None:
                    a = torch.cat([a, torch.ones_like(a[:, :1])], dim=1)
                self.inputs[index] = a
                self.outputs[index] = out
            return hook

        handles = [m.register_forward_hook(forward_hook(i)) for i, m in enumerate(self.modules)]
        try:
            yield self
        finally:
            for h in handles:
                h.remove()

    def backward_grads(self, scalar: Tensor, retain_graph: bool = False) -> list[Tensor]:
        """g_i = ∂scalar/∂s_i for every layer (per case when ``scalar`` is a sum over cases)."""
        outputs = [o for o in self.outputs if o is not None]
        if len(outputs) != len(self.modules):
            raise RuntimeError("capture() must wrap a forward pass before backward_grads()")
        return list(torch.autograd.grad(scalar, outputs, retain_graph=retain_graph))
