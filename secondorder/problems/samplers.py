"""Training-batch sources with checkpointable state (exact resume).

Every sampler offers ``next(batch_size)``, the counters ``examples_seen`` and ``epochs``, and
``state_dict``/``load_state_dict``. Randomness comes from a private CPU generator seeded at construction, so
the sequence of batches depends only on the seed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from secondorder.data.sequences import SequenceBatch
from secondorder.distributed import SINGLE, Ranks, gather_cases
from secondorder.errors import ConfigError


class Sampler(ABC):
    examples_seen: int

    @abstractmethod
    def next(self, batch_size: int) -> Any:
        """The next training batch (on the data's device)."""

    @property
    @abstractmethod
    def epochs(self) -> float:
        """Training-set passes so far."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]: ...

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class EpochSampler(Sampler):
    """Mini-batches without replacement from a reshuffled permutation of a fixed training set.

    When fewer than ``batch_size`` cases remain in the current epoch, a new permutation starts (the tail is
    skipped, so every batch has exactly ``batch_size`` cases); a batch as large as the training set is the
    whole set. ``examples_seen`` counts cases handed out; ``epochs`` = examples_seen / training-set size.
    """

    def __init__(self, inputs: Tensor, targets: Tensor, seed: int) -> None:
        self.inputs, self.targets = inputs, targets
        self.n = int(inputs.shape[0])
        self.generator = torch.Generator().manual_seed(seed)
        self.permutation = torch.randperm(self.n, generator=self.generator)
        self.position = 0
        self.epochs_started = 1
        self.examples_seen = 0

    def indices(self, batch_size: int) -> Tensor:
        if batch_size >= self.n:
            self.examples_seen += self.n
            return torch.arange(self.n)
        if self.position + batch_size > self.n:
            self.permutation = torch.randperm(self.n, generator=self.generator)
            self.position = 0
            self.epochs_started += 1
        index = self.permutation[self.position : self.position + batch_size]
        self.position += batch_size
        self.examples_seen += batch_size
        return index

    def next(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """The next (inputs, targets) mini-batch, on the data's device."""
        if batch_size >= self.n:
            self.indices(batch_size)
            return self.inputs, self.targets
        index = self.indices(batch_size).to(self.inputs.device)
        return self.inputs[index], self.targets[index]

    @property
    def epochs(self) -> float:
        return self.examples_seen / self.n

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "permutation": self.permutation.clone(),
            "position": self.position,
            "epochs_started": self.epochs_started,
            "examples_seen": self.examples_seen,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.permutation = state["permutation"].clone()
        self.position = state["position"]
        self.epochs_started = state["epochs_started"]
        self.examples_seen = state["examples_seen"]


class TaskSampler(Sampler):
    """Fresh sequences from a generated task at every call (thesis §4.13: "a fresh set of sequences").

    ``epochs`` counts passes over a nominal training set of ``nominal_size`` sequences (the test-set size),
    since the training data are unlimited. A task with a small finite set (``whole``: 5-bit memorisation's 32
    sequences) gets that whole set whenever a batch at least as large is asked for (thesis §4.13).
    """

    def __init__(self, generate: Any, seed: int, device: torch.device, dtype: torch.dtype,
                 nominal_size: int, whole: Any = None) -> None:
        self.generate = generate
        self.whole = whole.to(device, dtype) if whole is not None else None
        self.generator = torch.Generator().manual_seed(seed)
        self.device, self.dtype = device, dtype
        self.nominal_size = nominal_size
        self.examples_seen = 0

    def next(self, batch_size: int) -> Any:
        if self.whole is not None and batch_size >= len(self.whole):
            self.examples_seen += len(self.whole)
            return replace(self.whole, final_state=None)  # a fresh container around the same tensors
        batch = self.generate(batch_size, self.generator)
        self.examples_seen += batch_size
        return batch.to(self.device, self.dtype)

    @property
    def epochs(self) -> float:
        return self.examples_seen / self.nominal_size

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "examples_seen": self.examples_seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.examples_seen = state["examples_seen"]


def batchify(stream: Tensor, columns: int) -> Tensor:
    """Cut a token stream into ``columns`` contiguous rows (Zaremba et al. 2014): (columns, len // columns)."""
    rows = len(stream) // columns
    return stream[: rows * columns].view(columns, rows)


class StreamSampler(Sampler):
    """Consecutive truncated-BPTT windows of a batchified token stream, recurrent state carried across them.

    Window k holds inputs ``grid[:, k·bptt : (k+1)·bptt]`` and the next tokens as targets (the last window of
    an epoch may be shorter). Each batch starts from the final state the model reached on the previous window
    (``batch.final_state``, recorded by the problem's forward pass; computed by ``advance`` if an optimiser
    never ran one); every epoch starts from zeros. ``examples_seen`` counts target tokens.

    Data-parallel runs (:meth:`shard`): rank r of R keeps the streams (rows of the grid) r, r + R, … of every
    window and carries their state alone — no communication while training. The counters are the union's, and a
    checkpoint holds the union's carried state in stream order (gathered from every rank; each takes its own rows
    back on resume), so it resumes on any number of processes.
    """

    def __init__(self, stream: Tensor, batch_size: int, bptt: int, advance: Any, ranks: Ranks = SINGLE) -> None:
        if batch_size < ranks.world:
            raise ConfigError(f"a batch of {batch_size} streams cannot feed {ranks.world} processes; use "
                              f"dataset.batch_size ≥ {ranks.world} or fewer processes")
        self.stream = stream
        self.ranks = ranks
        self.grid = batchify(stream, batch_size)[ranks.rank :: ranks.world]
        self.batch_size, self.bptt = batch_size, bptt
        self.advance = advance
        self.position = 0
        self.epoch_index = 0
        self.examples_seen = 0
        self.last_batch: Any = None
        self.carried: Any = None
        self.tokens_per_epoch = batch_size * (self.grid.shape[1] - 1)

    def shard(self, ranks: Ranks) -> StreamSampler:
        """This sampler's streams r, r + R, … for rank r of R (a fresh sampler at the start of the stream)."""
        return StreamSampler(self.stream, self.batch_size, self.bptt, self.advance, ranks)

    def next(self, batch_size: int) -> Any:
        if batch_size != self.batch_size:
            raise ValueError(f"language-model batches are fixed at {self.batch_size} streams, got {batch_size}")
        if self.position >= self.grid.shape[1] - 1:  # a new epoch starts from the beginning, zero state
            self.position, self.carried, self.last_batch = 0, None, None
            self.epoch_index += 1
        if self.last_batch is not None:
            self.carried = self._final_state()
        length = min(self.bptt, self.grid.shape[1] - 1 - self.position)
        inputs = self.grid[:, self.position : self.position + length]
        targets = self.grid[:, self.position + 1 : self.position + 1 + length]
        self.position += length
        self.examples_seen += length * self.batch_size  # the union's tokens
        mask = torch.ones(inputs.shape, dtype=torch.bool, device=inputs.device)
        self.last_batch = SequenceBatch(inputs, targets, mask, state=self.carried)
        return self.last_batch

    def _final_state(self) -> Any:
        return (self.last_batch.final_state if self.last_batch.final_state is not None
                else self.advance(self.last_batch))

    @property
    def epochs(self) -> float:
        return self.examples_seen / self.tokens_per_epoch

    def state_dict(self) -> dict[str, Any]:
        """Positions and the carried state of every stream (a collective on a data-parallel run: every rank calls
        it)."""
        carried = None if self.last_batch is None else self._final_state()
        if self.ranks.parallel and carried is not None:
            carried = map_state(carried, gather_cases)
        return {"position": self.position, "epoch_index": self.epoch_index, "examples_seen": self.examples_seen,
                "carried": carried}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position, self.epoch_index = state["position"], state["epoch_index"]
        self.examples_seen = state["examples_seen"]
        self.carried = state["carried"]
        if self.carried is not None:  # a stand-in for the last batch, holding this rank's streams' carried state
            device, rank, world = self.grid.device, self.ranks.rank, self.ranks.world
            self.carried = map_state(self.carried, lambda t: t[rank::world].to(device))
            empty = self.grid[:, :0]
            self.last_batch = SequenceBatch(empty, empty, empty.bool(), state=None)
            self.last_batch.final_state = self.carried
        else:
            self.last_batch = None


def map_state(state: Any, function: Any) -> Any:
    """``function`` applied to every tensor of a recurrent state (a tensor, or per layer an (h, c) pair), whose
    leading dimension is the stream."""
    if isinstance(state, Tensor):
        return function(state)
    return type(state)(map_state(part, function) for part in state)


class ShardedSampler(Sampler):
    """Rank r's share of every union batch the wrapped sampler draws (the same on every rank): the cases r, r + R,
    r + 2R, … — strided rather than contiguous, so that the first k cases of the union (a method's statistics or
    curvature subset of its batch) are spread over the ranks, about k / R on each, instead of all on rank 0.

    ``split(batch, index)`` cuts the cases ``index`` out of a batch (the problem's ``subset``). ``examples_seen``,
    ``epochs`` and ``n`` (the training-set size, for batch-size schedules) are the union's, so a distributed run's
    log reads like the one-process run's."""

    def __init__(self, inner: Sampler, split: Any, ranks: Ranks, cases: Any) -> None:
        self.inner, self.split, self.ranks, self.cases = inner, split, ranks, cases
        self.n = getattr(inner, "n", None)

    @property
    def examples_seen(self) -> int:  # type: ignore[override]
        return self.inner.examples_seen

    def next(self, batch_size: int) -> Any:
        union = self.inner.next(batch_size)
        n = self.cases(union)
        if n < self.ranks.world:
            raise ConfigError(f"a batch of {n} cases cannot feed {self.ranks.world} processes; use batches of at "
                              f"least {self.ranks.world} cases or fewer processes")
        return self.split(union, torch.arange(self.ranks.rank, n, self.ranks.world))

    @property
    def epochs(self) -> float:
        return self.inner.epochs

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)
