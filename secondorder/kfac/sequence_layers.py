"""The weight matrices of a recurrent model and what each sees at every time step (for K-FAC for RNNs).

Every ``nn.Linear`` and ``nn.Embedding`` of the model is one Fisher block (the LSTM's four gate maps are four
blocks, Martens, Ba & Johnson 2018, §4). A module is either called once on a (B, T, d) tensor (input maps, read-outs,
embeddings) or once per time step on (B, d) tensors (recurrent maps, LSTM gates); :meth:`SequenceLayers.capture`
records the calls and :meth:`SequenceLayers.statistics` turns them into per-block sequences

    a_t ∈ R^{d_in (+1)}  (inputs with the homogeneous coordinate when the module has a bias; token ids for an
                          embedding, whose one-hot input makes A₀ diagonal — exactly),
    g_t ∈ R^{d_out}      (the derivative of the summed sampled loss with respect to the module's output at t),

and the lag-0 / lag-1 moments of both (:func:`~secondorder.kfac.temporal.lag_moments`). A side larger than
``max_dense`` is kept diagonal (the 10 000-way softmax's G, approximated as diagonal in the paper, §4.1).
Gradient blocks are the out × in matrices Z = [∇W | ∇b] (for an embedding, ∇Wᵀ: out = embedding width,
in = vocabulary).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from secondorder.errors import ConfigError
from secondorder.kfac.temporal import Factor, diagonal_moment, lag_moments


@dataclass
class Block:
    name: str
    module: nn.Module

    @property
    def is_embedding(self) -> bool:
        return isinstance(self.module, nn.Embedding)

    @property
    def has_bias(self) -> bool:
        return getattr(self.module, "bias", None) is not None

    def gradient_matrix(self, grads: dict[str, Tensor]) -> Tensor:
        weight = grads[f"{self.name}.weight"]
        if self.is_embedding:
            return weight.T
        if self.has_bias:
            return torch.cat([weight, grads[f"{self.name}.bias"][:, None]], dim=1)
        return weight

    def split(self, Z: Tensor) -> dict[str, Tensor]:
        if self.is_embedding:
            return {f"{self.name}.weight": Z.T}
        if self.has_bias:
            return {f"{self.name}.weight": Z[:, :-1], f"{self.name}.bias": Z[:, -1]}
        return {f"{self.name}.weight": Z}


class SequenceLayers:
    def __init__(self, model: nn.Module, max_dense: int = 4096) -> None:
        self.blocks = [Block(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Embedding))]
        covered = {f"{b.name}.{p}" for b in self.blocks for p, _ in b.module.named_parameters(recurse=False)}
        missing = [n for n, p in model.named_parameters() if p.requires_grad and n not in covered]
        if missing:
            raise ConfigError(f"K-FAC for RNNs needs every parameter in an nn.Linear or nn.Embedding, but not "
                              f"{', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}; use model.cell=linear "
                              "without layer_norm, or a first-order optimiser")
        self.max_dense = max_dense
        self.calls: list[list[tuple[Tensor, Tensor]]] = [[] for _ in self.blocks]

    @contextmanager
    def capture(self) -> Iterator[None]:
        """Record (input, output) of every call of every block during the forward passes inside."""
        self.calls = [[] for _ in self.blocks]

        def hook(index: int):
            def record(module: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
                self.calls[index].append((args[0].detach(), out))
            return record

        handles = [b.module.register_forward_hook(hook(i)) for i, b in enumerate(self.blocks)]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def outputs(self) -> list[Tensor]:
        """Every recorded output tensor, in a fixed order (for ``torch.autograd.grad``)."""
        return [out for calls in self.calls for _, out in calls]

    @staticmethod
    def _as_sequence(parts: list[Tensor], time_dims: int) -> Tensor:
        """One call on (B, T, …) → as is; T calls on (B, …) → stacked to (B, T, …). ``time_dims`` is the
        rank of a per-step tensor ((B, d): 2; an embedding's token ids (B,): 1); a one-call tensor of that rank is
        a single step."""
        if len(parts) > 1:
            return torch.stack(parts, dim=1)
        return parts[0].unsqueeze(1) if parts[0].ndim == time_dims else parts[0]

    def sequences(self, output_grads: list[Tensor]) -> list[tuple[Tensor, Tensor]]:
        """Per block (a, g): its inputs (B, T, d_in) — token ids (B, T) for an embedding — and the gradients of
        its outputs (B, T, d_out), from the recorded calls and the gradients of :meth:`outputs`."""
        grads_iter = iter(output_grads)
        out = []
        for block, calls in zip(self.blocks, self.calls, strict=True):
            if not calls:
                raise ConfigError(f"K-FAC for RNNs: {block.name} was not used in the forward pass")
            grads = [next(grads_iter) for _ in calls]
            a = self._as_sequence([inp for inp, _ in calls], 1 if block.is_embedding else 2)
            g = self._as_sequence(grads, 2)
            out.append((a, g.reshape(g.shape[0], g.shape[1], -1)))
        return out

    def statistics(self, output_grads: list[Tensor]) -> tuple[list[Factor], list[Factor], int, int]:
        """(A factors, G factors, m, T) from the recorded calls and the gradients of their outputs."""
        A_list, G_list = [], []
        cache: dict[tuple[int, int], Factor] = {}  # LSTM gates share their input: one A per layer
        m = T = 0
        for block, calls, (a, g) in zip(self.blocks, self.calls, self.sequences(output_grads), strict=True):
            m, T = int(g.shape[0]), int(g.shape[1])
            key = (id(calls[0][0]), len(calls))
            if key not in cache:
                cache[key] = self._input_factor(block, a, T)
            A_list.append(cache[key])
            G_list.append(self._factor(g, T))
        return A_list, G_list, m, T

    def homogeneous(self, block: Block, a: Tensor) -> Tensor:
        """The input sequence with the homogeneous coordinate appended when the block has a bias."""
        a = a.reshape(a.shape[0], a.shape[1], -1)
        return torch.cat([a, a.new_ones(*a.shape[:2], 1)], dim=2) if block.has_bias else a

    def _input_factor(self, block: Block, a: Tensor, T: int) -> Factor:
        m = a.shape[0]
        if block.is_embedding:
            counts = torch.bincount(a.reshape(-1), minlength=block.module.num_embeddings)
            return Factor(counts.to(block.module.weight.dtype) / (m * T), None, diagonal=True)
        return self._factor(self.homogeneous(block, a), T)

    def _factor(self, x: Tensor, T: int) -> Factor:
        if x.shape[-1] > self.max_dense:
            return Factor(diagonal_moment(x, T), None, diagonal=True)
        c0, c1 = lag_moments(x, T)
        return Factor(c0, c1)
