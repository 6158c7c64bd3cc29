"""A small memory-augmented LSTM for the K-FAC-RNN paper's repeated-copy task (§4.2): an LSTM controller
with an external memory it reads and writes by content — a reduced DNC (Graves et al. 2016).

Per step t, with memory M_{t−1} ∈ R^{N×W} and the previous read vector r_{t−1}:

    a_t = [x_t; r_{t−1}; h_{t−1}];  LSTM gates (four nn.Linear on a_t, as :mod:`secondorder.models.lstm`) → h_t
    ξ_t = interface(h_t) = (k^w, β^w, e, v, k^r, β^r)          (one nn.Linear; β = 1 + softplus, e = σ)
    w^w = softmax(β^w · cos(k^w, M_{t−1}[i]))_i;   M_t = M_{t−1} ⊙ (1 − w^w eᵀ) + w^w vᵀ        (erase, then add)
    w^r = softmax(β^r · cos(k^r, M_t[i]))_i;       r_t = M_tᵀ w^r
    y_t = readout([h_t; r_t])

Everything trainable is an ``nn.Linear``, so K-FAC for RNNs preconditions the controller's weights and the
read/write interface weights — what the paper preconditions (§4.2). Not the full DNC: one read and one write
head, content addressing only (no usage-based allocation, no temporal link matrix); the paper gives no sizes
(§4.2), ours are in ``conf/model/dnc_copy.yaml`` [choices]. The memory starts at a small constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from secondorder.validation import Check, positive


@dataclass
class MemoryLSTMConfig:
    name: str = "memory_lstm"
    hidden_dim: int = 64
    memory_slots: int = 16
    word_size: int = 16
    init_scale: float = 0.1

    def check(self) -> list[Check]:
        return list(positive(self, "hidden_dim", "memory_slots", "word_size", "init_scale"))


class MemoryLSTM(nn.Module):
    """``forward(inputs (B, T, d_in))`` → outputs (B, T, d_out), final controller state."""

    def __init__(self, input_dim: int, output_dim: int, cfg: MemoryLSTMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        H, W = cfg.hidden_dim, cfg.word_size
        self.gates = nn.ModuleList(nn.Linear(input_dim + W + H, H) for _ in range(4))
        self.interface = nn.Linear(H, 4 * W + 2)
        self.readout = nn.Linear(H + W, output_dim)

    @staticmethod
    def _address(memory: Tensor, key: Tensor, strength: Tensor) -> Tensor:
        similarity = F.cosine_similarity(memory, key[:, None, :], dim=2, eps=1e-6)  # (B, N)
        return torch.softmax(strength * similarity, dim=1)

    def forward(self, inputs: Tensor, state: object = None) -> tuple[Tensor, Tensor]:
        B = inputs.shape[0]
        H, N, W = self.cfg.hidden_dim, self.cfg.memory_slots, self.cfg.word_size
        h = inputs.new_zeros(B, H)
        c = inputs.new_zeros(B, H)
        read = inputs.new_zeros(B, W)
        memory = inputs.new_full((B, N, W), 1e-3)
        outputs = []
        for x_t in inputs.unbind(1):  # one backward for all steps (inputs[:, t] would fill zeros per step)
            a = torch.cat([x_t, read, h], dim=1)
            i, f, g, o = (gate(a) for gate in self.gates)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            xi = self.interface(h)
            write_key, erase, add, read_key = xi[:, :W], torch.sigmoid(xi[:, W:2 * W]), xi[:, 2 * W:3 * W], \
                xi[:, 3 * W:4 * W]
            write_strength, read_strength = 1 + F.softplus(xi[:, -2:-1]), 1 + F.softplus(xi[:, -1:])
            w_write = self._address(memory, write_key, write_strength)
            memory = memory * (1 - w_write[:, :, None] * erase[:, None, :]) + w_write[:, :, None] * add[:, None, :]
            w_read = self._address(memory, read_key, read_strength)
            read = (w_read[:, :, None] * memory).sum(dim=1)
            outputs.append(self.readout(torch.cat([h, read], dim=1)))
        return torch.stack(outputs, dim=1), h


@torch.no_grad()
def initialise_memory_lstm_(model: MemoryLSTM, generator: torch.Generator) -> None:
    """Weights ~ U[−s, s] with s = ``init_scale``, biases 0 [choice; the paper gives none]."""
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            p.zero_()
        else:
            p.copy_((2 * torch.rand(p.shape, generator=generator, dtype=torch.float64) - 1) * model.cfg.init_scale)
