"""Simple tanh RNN for the pathological long-term-dependency problems (thesis §4.13).

    h_t = tanh(W_in x_t + W_rec h_{t−1} + b_h),   z_t = W_out h_t + b_out,   h_0 = 0,

with the three maps as ``nn.Linear`` shared across time (W_{1,0}, W_{1,1}, W_{2,1} of the thesis's shallow
RNN); 100 hidden units. The thesis does not name the hidden nonlinearity [AMBIG]; tanh is our default
(``activation``), logistic available.

Initialisation (thesis §4.13): each weight matrix is sparse with 15 non-zero incoming connections per unit;
the non-zeros of W_rec and W_out and all biases ~ N(0, 1/15), the non-zeros of W_in ~ N(0, 1). Where a
matrix has fewer than 15 inputs every input is connected.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from secondorder.validation import Check, one_of, positive


@dataclass
class RNNConfig:
    name: str = "rnn"
    hidden_dim: int = 100
    activation: str = "tanh"
    connections: int = 15
    input_std: float = 1.0
    recurrent_std: float = 0.2581988897471611  # √(1/15)

    def check(self) -> list[Check]:
        return [*positive(self, "hidden_dim", "connections", "input_std", "recurrent_std"),
                one_of(self, "activation", ["tanh", "sigmoid"])]


class RecurrentNet(nn.Module):
    """``forward(inputs (B, T, d_in))`` → outputs (B, T, d_out) (pre-activations), state (B, hidden)."""

    def __init__(self, input_dim: int, output_dim: int, cfg: RNNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.input = nn.Linear(input_dim, cfg.hidden_dim, bias=False)
        self.recurrent = nn.Linear(cfg.hidden_dim, cfg.hidden_dim)
        self.output = nn.Linear(cfg.hidden_dim, output_dim)
        self.nonlinearity = torch.tanh if cfg.activation == "tanh" else torch.sigmoid

    def forward(self, inputs: Tensor, state: Tensor | None = None, return_hidden: bool = False):
        """Outputs (B, T, d_out) and the final state; with ``return_hidden`` also (pre-activations,
        activities) of the hidden units, each (B, T, H), for structural damping."""
        h = inputs.new_zeros(inputs.shape[0], self.cfg.hidden_dim) if state is None else state
        drive = self.input(inputs)  # (B, T, H): input contributions for all steps at once
        pre, hidden = [], []
        # unbind, not drive[:, t]: each select's backward would fill a zero tensor of drive's full (B, T, H)
        # shape — O(T²) work that made the backward pass ~15× slower than the forward at T = 100
        for drive_t in drive.unbind(1):
            s = drive_t + self.recurrent(h)
            h = self.nonlinearity(s)
            pre.append(s)
            hidden.append(h)
        activities = torch.stack(hidden, dim=1)
        outputs = self.output(activities)
        if return_hidden:
            return outputs, h, (torch.stack(pre, dim=1), activities)
        return outputs, h


@torch.no_grad()
def sparse_rnn_init_(model: RecurrentNet, generator: torch.Generator) -> None:
    cfg = model.cfg
    for layer, std in ((model.input, cfg.input_std), (model.recurrent, cfg.recurrent_std),
                       (model.output, cfg.recurrent_std)):
        fan_out, fan_in = layer.weight.shape
        weight = torch.zeros(fan_out, fan_in, dtype=torch.float64)
        k = min(cfg.connections, fan_in)
        for row in range(fan_out):  # k distinct incoming connections per unit
            columns = torch.randperm(fan_in, generator=generator)[:k]
            weight[row, columns] = std * torch.randn(k, generator=generator, dtype=torch.float64)
        layer.weight.copy_(weight)
        if layer.bias is not None:
            layer.bias.copy_(cfg.recurrent_std * torch.randn(fan_out, generator=generator, dtype=torch.float64))
