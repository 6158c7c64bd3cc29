"""LSTM language model built from ``nn.Linear`` and elementwise ops.

``torch.func`` cannot differentiate through cuDNN's ``nn.LSTM``, and K-FAC for RNNs needs each gate's weight
matrix as its own Fisher block (Martens, Ba & Johnson 2018, §4). So each layer has four
``nn.Linear`` maps — input, forget, candidate, output gates — acting jointly on a_t = [x_t; h_{t−1}] (the bias
is the homogeneous coordinate), shared across time steps:

    i_t = σ(W_i a_t + b_i),  f_t = σ(W_f a_t + b_f),  g_t = tanh(W_g a_t + b_g),  o_t = σ(W_o a_t + b_o),
    c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t,   h_t = o_t ⊙ tanh(c_t).

The model is embedding → L such layers → a linear read-out of every h_t to vocabulary logits (the softmax is
in the loss). ``cell=cudnn`` swaps the layers for ``nn.LSTM`` (same function and initialisation, faster, for
first-order baselines only); :func:`copy_into_cudnn` maps the weights across (gate order i, f, g, o).
Initialisation: every weight U[−init_scale, init_scale], biases 0 (Zaremba et al. 2014: 0.1 small, 0.05
medium; forget-gate bias 0 as in the TensorFlow reference).

``layer_norm=true`` gives the layer-normalised LSTM of Ba, Kiros & Hinton (2016) used for the K-FAC-RNN paper's
Adam / SGD baselines (§4.1): each gate's pre-activation and the cell state before its tanh are normalised
(LayerNorm with gain and bias). For first-order baselines only — its LayerNorm parameters are no Kronecker block.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from secondorder.validation import Check, one_of, positive

GATES = ("input", "forget", "candidate", "output")
State = list[tuple[Tensor, Tensor]]


@dataclass
class LSTMConfig:
    name: str = "lstm_lm"
    embedding_dim: int = 650
    hidden_dim: int = 650
    layers: int = 2
    cell: str = "linear"
    init_scale: float = 0.05
    layer_norm: bool = False

    def check(self) -> list[Check]:
        return [*positive(self, "embedding_dim", "hidden_dim", "layers", "init_scale"),
                one_of(self, "cell", ["linear", "cudnn"]),
                ("layer_norm", not (self.layer_norm and self.cell == "cudnn"),
                 "needs model.cell=linear (cuDNN's LSTM has no layer normalisation)")]


class LSTMLayer(nn.Module):
    """One LSTM layer; ``gates[k]`` is the ``nn.Linear`` of gate ``GATES[k]`` on [x_t; h_{t−1}]."""

    def __init__(self, input_dim: int, hidden_dim: int, layer_norm: bool = False) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.gates = nn.ModuleList(nn.Linear(input_dim + hidden_dim, hidden_dim) for _ in GATES)
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_dim) for _ in range(len(GATES) + 1)) if layer_norm else None

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x: (B, T, input_dim) → outputs (B, T, hidden_dim) and the final (h, c)."""
        h, c = state
        outputs = []
        for x_t in x.unbind(1):  # one backward for all steps (x[:, t] costs a full-size zero fill per step)
            a = torch.cat([x_t, h], dim=1)
            i, f, g, o = (gate(a) for gate in self.gates)
            if self.norms is not None:
                i, f, g, o = (norm(v) for norm, v in zip(self.norms, (i, f, g, o), strict=False))
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c if self.norms is None else self.norms[-1](c))
            outputs.append(h)
        return torch.stack(outputs, dim=1), (h, c)


class LSTMLanguageModel(nn.Module):
    """Embedding → stacked LSTM → linear read-out; ``forward(tokens, state)`` → (logits (B, T, V), state)."""

    def __init__(self, vocab_size: int, cfg: LSTMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_dim)
        dims = [cfg.embedding_dim] + [cfg.hidden_dim] * cfg.layers
        if cfg.cell == "cudnn":
            self.lstm = nn.LSTM(cfg.embedding_dim, cfg.hidden_dim, cfg.layers, batch_first=True)
        else:
            self.layers = nn.ModuleList(LSTMLayer(dims[k], cfg.hidden_dim, cfg.layer_norm) for k in range(cfg.layers))
        self.readout = nn.Linear(cfg.hidden_dim, vocab_size)

    def initial_state(self, batch_size: int, like: Tensor) -> State:
        zeros = torch.zeros(batch_size, self.cfg.hidden_dim, dtype=like.dtype, device=like.device)
        return [(zeros, zeros) for _ in range(self.cfg.layers)]

    def forward(self, tokens: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        x = self.embedding(tokens)
        if state is None:
            state = self.initial_state(tokens.shape[0], x)
        if self.cfg.cell == "cudnn":
            h0 = torch.stack([h for h, _ in state])
            c0 = torch.stack([c for _, c in state])
            x, (hn, cn) = self.lstm(x, (h0.contiguous(), c0.contiguous()))
            new_state = [(hn[k], cn[k]) for k in range(self.cfg.layers)]
        else:
            new_state = []
            for layer, layer_state in zip(self.layers, state, strict=True):
                x, final = layer(x, layer_state)
                new_state.append(final)
        return self.readout(x), new_state


@torch.no_grad()
def initialise_uniform_(model: nn.Module, scale: float, generator: torch.Generator) -> None:
    """Every parameter ~ U[−scale, scale] except biases (0) and layer-norm gains (1)."""
    for name, p in model.named_parameters():
        if ".norms." in name and name.endswith("weight"):
            p.fill_(1.0)
        elif "bias" in name:
            p.zero_()
        else:
            p.copy_((2 * torch.rand(p.shape, generator=generator, dtype=torch.float64) - 1) * scale)


@torch.no_grad()
def copy_into_cudnn(source: LSTMLanguageModel, target: LSTMLanguageModel) -> None:
    """Give a ``cell=cudnn`` model the weights of a ``cell=linear`` one (same function)."""
    target.embedding.load_state_dict(source.embedding.state_dict())
    target.readout.load_state_dict(source.readout.state_dict())
    for k, layer in enumerate(source.layers):
        input_dim = layer.gates[0].in_features - layer.hidden_dim
        weight = torch.cat([g.weight for g in layer.gates])  # (4H, in + H), gate order i, f, g, o
        getattr(target.lstm, f"weight_ih_l{k}").copy_(weight[:, :input_dim])
        getattr(target.lstm, f"weight_hh_l{k}").copy_(weight[:, input_dim:])
        getattr(target.lstm, f"bias_ih_l{k}").copy_(torch.cat([g.bias for g in layer.gates]))
        getattr(target.lstm, f"bias_hh_l{k}").zero_()
