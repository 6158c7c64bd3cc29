"""Synthetic sequence problems with pathological long-term dependencies (thesis §4.13) and the DNC copy task.

The thesis (Martens 2016, §4.13) trains RNNs with HF on the
problems of Martens & Sutskever (2011), which "were taken directly from Hochreiter and Schmidhuber (1997)"
(§4.13). The thesis text fixes only part of each definition. Every gap is filled here from one of these
sources, cited per item:

* **[thesis]** — Martens' PhD thesis (2016), §4.13: its per-problem paragraphs and Figures 4.6–4.7.
* **[HS97]** — Hochreiter & Schmidhuber (1997), *Long short-term memory*, Neural Computation 9(8):
  Exp. 4 (adding), Exp. 5 (multiplication), Exp. 6a/6b (temporal order).
* **[MS-code]** — the reference implementation of the Martens & Sutskever (2011) problems that Sutskever
  released (Python module ``opt.d.seq.utils`` and its problem-definition script, read via code search).
  It is evidence of what M&S did, not a spec: we take facts from it and write our own code.
* **[P13]** — Pascanu, Mikolov & Bengio's generators for the same problems (``pascanur/trainingRNNs``), used
  as a cross-check.
* **[MBJ18]** — Martens, Ba & Johnson (K-FAC for RNNs, ICLR 2018), §4.2: the DNC "repeated copy" task.

Anything not in a source is marked **[choice]**.

Conventions (all tasks)
-----------------------
* A :class:`SequenceBatch` is batch-first and fixed-length: ``inputs`` is ``(B, T_total, input_dim)``
  float32, ``mask`` is ``(B, T_total)`` bool, and ``targets`` is ``(B, T_total)`` int64 class indices
  (``softmax_ce``) or ``(B, T_total, output_dim)`` float32 (``squared_error``, ``sigmoid_bce``).
  ``T_total = task.total_length`` depends on ``T`` as shown in the table below.
* Targets at steps where ``mask`` is False are 0 (class 0 or value 0) and carry no meaning. Apply the loss
  only where ``mask`` is True. **[choice]**
* Problems whose length varies ([HS97]: "a randomly chosen integer between T and T + T/10"; [MS-code] does
  the same with ``T_min = T``, ``T_max = 1.1 T``) are padded to ``T_total = T + ⌊T/10⌋``. The sequence's
  last step ``L − 1`` carries the target and the only True mask entry. Inputs after it are all-zero
  padding. A causal RNN never sees the padding before it emits the output that counts.
* ``T`` is the problem's length parameter as the thesis uses it. It is the x-axis of Figure 4.7, whose
  caption counts "sequences of length T". For the variable-length problems it is the minimum
  sequence length, as in [HS97] and [MS-code]. For noiseless memorization it is the number of constant
  inputs (thesis §4.13), which here is also the exact time lag. For ``dnc_copy`` it is the fixed total length
  ([MBJ18] §4.2).
* Positions are 0-based time indices. Position windows are given as inclusive integer ranges. Windows
  that [HS97] states for T = 100 are scaled linearly to other T by ``⌊p·T/100⌋``, as [MS-code] and [P13]
  scale them. **[choice]** for the exact rounding.
* Randomness comes only from the ``generator`` passed to :meth:`SequenceTask.generate` (CPU). The draws are
  made in a fixed order, so a batch is a deterministic function of the generator state. Generation is
  vectorised over the batch.
* Symbols are 1-of-N encoded (thesis §4.13). Symbol ``k`` of a 1-based alphabet {1..N} is channel / class
  ``k − 1``.

Success criterion (thesis §4.13, from [HS97])
---------------------------------------------
:meth:`SequenceTask.correct` returns, per sequence, whether it is classified correctly. A sequence is
misclassified when, at any step of its success mask (the loss mask, except for ``random_permutation``):

* ``squared_error``: some ``|output − target| > 0.04`` (the [HS97] tolerance that the thesis adopts,
  §4.13);
* ``softmax_ce``: ``argmax(output) ≠ target``;
* ``sigmoid_bce``: some bit has ``(output > 0) ≠ (target > 0.5)``, i.e. the sigmoid's 0.5 threshold. This
  is the sign rule of [MS-code] for XOR. The thesis calls it "trivially defined" for binary problems
  (§4.13).

Outputs with a NaN or infinity at a success-mask step always count as wrong. **[choice]** A run succeeds when
fewer than 1% of the test sequences are misclassified (thesis §4.13). That aggregate is left to the caller.

Encodings
---------
::

    task                 in   out  loss           T_total          targets / mask
    addition              2    1   squared_error  T + ⌊T/10⌋       one value at step L−1, L ~ U{T … T+⌊T/10⌋}
    multiplication        2    1   squared_error  T + ⌊T/10⌋       one value at step L−1
    xor                   2    1   sigmoid_bce    T + ⌊T/10⌋       one bit at step L−1
    temporal_order_2bit   6    4   softmax_ce     T + ⌊T/10⌋       one class at step L−1
    temporal_order_3bit   6    8   softmax_ce     T + ⌊T/10⌋       one class at step L−1
    random_permutation  100  100   softmax_ce     T                next symbol at every step (success: last)
    memorization_5bit     4    3   softmax_ce     T + 5            every step: blank class, then the 5 bits
    memorization_20bit    7    6   softmax_ce     T + 10           every step: blank class, then 10 symbols
    dnc_copy              8    6   sigmoid_bce    T (even; 22)     the last T/2 − 1 steps (recall)

Feasible ``T``: ≥ 10 for the marked-pair and temporal-order problems (so every position window is
non-empty and the windows are disjoint), ≥ 2 for ``random_permutation``, ≥ 5 / ≥ 10 for the two
memorization problems, and even with ≥ 6 for ``dnc_copy``. :func:`make_task` raises
:class:`~secondorder.errors.ConfigError` for any other ``T``.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from secondorder.data.sequences import SequenceBatch
from secondorder.errors import ConfigError

CONTINUOUS_TOLERANCE = 0.04
"""Absolute error above which a continuous output is wrong (thesis §4.13, from [HS97])."""

DNC_COPY_DEFAULT_T = 22
"""Total length of the DNC repeated-copy sequences in Martens, Ba & Johnson 2018, §4.2."""

LOSSES = ("squared_error", "softmax_ce", "sigmoid_bce")


@dataclass(frozen=True)
class SequenceTask:
    """A sequence problem. Build one with :func:`make_task`. Subclasses define the data.

    Fields: ``name`` (a key of :data:`TASKS`), ``T`` (the length parameter, see the module docstring),
    ``input_dim`` and ``output_dim`` (the network's input and output sizes), and ``loss`` (the matching
    output nonlinearity and loss): ``"squared_error"`` (linear outputs, continuous targets),
    ``"softmax_ce"`` (softmax over symbols, class-index targets) or ``"sigmoid_bce"`` (independent
    logistic bits, float 0/1 targets).
    """

    name: str
    T: int
    input_dim: int
    output_dim: int
    loss: str

    def __post_init__(self) -> None:
        if isinstance(self.T, bool) or not isinstance(self.T, numbers.Integral):
            raise ConfigError(f"task {self.name!r}: T must be an integer, got {self.T!r}")
        object.__setattr__(self, "T", int(self.T))
        if self.loss not in LOSSES:
            raise ConfigError(f"task {self.name!r}: loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        self._check_length()
        expected = self._dims()
        if (self.input_dim, self.output_dim, self.loss) != expected:
            raise ConfigError(
                f"task {self.name!r}: (input_dim, output_dim, loss) must be {expected}, "
                f"got {(self.input_dim, self.output_dim, self.loss)}"
            )

    # --- to be provided by subclasses -------------------------------------------------------------------

    def _check_length(self) -> None:
        """Raise ConfigError when ``self.T`` is infeasible."""

    def _dims(self) -> tuple[int, int, str]:
        """The ``(input_dim, output_dim, loss)`` this task implies."""
        raise NotImplementedError

    @property
    def total_length(self) -> int:
        """``T_total``, the time dimension of every batch."""
        raise NotImplementedError

    def _generate(self, n: int, generator: torch.Generator) -> SequenceBatch:
        raise NotImplementedError

    # --- public API ---------------------------------------------------------------------------------------

    def generate(self, n: int, generator: torch.Generator) -> SequenceBatch:
        """``n`` fresh sequences, a deterministic function of ``generator``'s state (the only randomness)."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        if generator.device.type != "cpu":
            raise ValueError(f"generator must be a CPU torch.Generator, got one on {generator.device}")
        return self._generate(int(n), generator)

    def whole_set(self) -> SequenceBatch | None:
        """The task's every distinct sequence, once each, when there are few enough to train on all of them
        (``complete`` batch); ``None`` for the tasks with practically unlimited data (the default)."""
        return None

    def success_mask(self, batch: SequenceBatch) -> Tensor:
        """``(B, T_total)`` bool: the steps that decide whether a sequence is correct (default: ``mask``)."""
        return batch.mask

    def correct(self, outputs: Tensor, batch: SequenceBatch) -> Tensor:
        """``(B,)`` bool: True where the sequence is solved (thesis §4.13).

        ``outputs`` are the network's pre-activations ``(B, T_total, output_dim)``: linear outputs for
        ``squared_error``, logits for ``softmax_ce`` and ``sigmoid_bce``. See the module docstring for the
        rule per loss. A non-finite output at a deciding step makes the sequence wrong.
        """
        B, T_total = batch.mask.shape
        if outputs.shape != (B, T_total, self.output_dim):
            raise ValueError(f"outputs must have shape {(B, T_total, self.output_dim)}, got {tuple(outputs.shape)}")
        device = outputs.device
        targets = batch.targets.to(device)
        deciding = self.success_mask(batch).to(device)
        outputs = outputs.detach()
        if self.loss == "squared_error":
            wrong = ~((outputs - targets).abs() <= CONTINUOUS_TOLERANCE).all(dim=-1)  # NaN -> wrong
        elif self.loss == "softmax_ce":
            wrong = outputs.argmax(dim=-1) != targets
        else:  # sigmoid_bce
            wrong = ((outputs > 0) != (targets > 0.5)).any(dim=-1)
        wrong = wrong | ~torch.isfinite(outputs).all(dim=-1)
        return ~(wrong & deciding).any(dim=-1)


# ------------------------------------------------------------------------------------------------------------
# helpers


def _randint(low: int, high: int, size: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """Integers uniform on the inclusive range ``[low, high]`` (int64)."""
    return torch.randint(low, high + 1, size, generator=generator, dtype=torch.int64)


def _one_hot(index: Tensor, n_classes: int) -> Tensor:
    """float32 one-hot of an int64 index tensor. This avoids ``F.one_hot``'s int64 intermediate."""
    out = torch.zeros(*index.shape, n_classes, dtype=torch.float32)
    return out.scatter_(-1, index.unsqueeze(-1), 1.0)


def _variable_length_check(task: SequenceTask) -> None:
    if task.T < 10:
        raise ConfigError(f"task {task.name!r}: T must be >= 10 (its position windows scale with T/10), got {task.T}")


# ------------------------------------------------------------------------------------------------------------
# addition, multiplication, XOR


@dataclass(frozen=True)
class MarkedPairTask(SequenceTask):
    """Two marked numbers in a long random sequence. The target at the end is a function of the pair.

    Thesis §4.13 and Figure 4.6: "sequences of random numbers", the target "located in the end of the
    sequence" is a function of the two "marked" numbers. These are "far from the sequence's end, their
    position varies, and they are distant from each other". Multiplication and XOR are "completely
    analogous". Layout, from [HS97] Exp. 4/5 except where noted:

    * length ``L ~ U{T, …, T + ⌊T/10⌋}`` [HS97], ``T_total = T + ⌊T/10⌋``;
    * channel 0 holds the value ``x_t`` at every step ``t < L``, drawn i.i.d. from the task's value
      distribution;
    * channel 1 is the marker: +1 at the two marked steps ``p₁, p₂``, −1 at the first and the last step
      (``t = 0`` and ``t = L − 1``) [HS97], 0 elsewhere;
    * ``p₁ ~ U{1, …, ⌊T/10⌋}`` and ``p₂ ~ U{⌊T/10⌋ + 1, …, ⌊T/2⌋ − 1}``. These are the [MS-code] windows
      (first operand in the first tenth, second before the middle). They keep the two operands apart, as
      the thesis requires. [HS97] draws p₂ from the first T/2 − 1 unmarked steps, which allows adjacent
      operands. Starting at 1 rather than 0 keeps the start marker −1 distinct, which is why [HS97] zeroes
      X₁ when p₁ = 0. **[choice]** The minimal time lag from ``p₂`` to the target is ``⌈T/2⌉`` ([HS97]:
      T/2);
    * the target is at step ``L − 1``, the only masked step; padding steps ``t ≥ L`` are all-zero.
    """

    @property
    def total_length(self) -> int:
        return self.T + self.T // 10

    def _check_length(self) -> None:
        _variable_length_check(self)

    def _dims(self) -> tuple[int, int, str]:
        return 2, 1, self._loss()

    def _loss(self) -> str:
        return "squared_error"

    def first_mark_range(self) -> tuple[int, int]:
        """Inclusive range of ``p₁``."""
        return 1, self.T // 10

    def second_mark_range(self) -> tuple[int, int]:
        """Inclusive range of ``p₂``."""
        return self.T // 10 + 1, self.T // 2 - 1

    def length_range(self) -> tuple[int, int]:
        """Inclusive range of the sequence length ``L``."""
        return self.T, self.T + self.T // 10

    def _values(self, size: tuple[int, int], generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def target_of(self, x1: Tensor, x2: Tensor) -> Tensor:
        """The target as a function of the two marked values."""
        raise NotImplementedError

    def _generate(self, n: int, generator: torch.Generator) -> SequenceBatch:
        T_total = self.total_length
        lengths = _randint(*self.length_range(), (n,), generator)
        p1 = _randint(*self.first_mark_range(), (n,), generator)
        p2 = _randint(*self.second_mark_range(), (n,), generator)
        values = self._values((n, T_total), generator)
        valid = torch.arange(T_total).unsqueeze(0) < lengths.unsqueeze(1)
        values = torch.where(valid, values, torch.zeros((), dtype=values.dtype))
        rows = torch.arange(n)
        marker = torch.zeros(n, T_total, dtype=torch.float32)
        marker[:, 0] = -1.0
        marker[rows, lengths - 1] = -1.0
        marker[rows, p1] = 1.0
        marker[rows, p2] = 1.0
        inputs = torch.stack([values, marker], dim=-1)
        targets = torch.zeros(n, T_total, 1, dtype=torch.float32)
        targets[rows, lengths - 1, 0] = self.target_of(values[rows, p1], values[rows, p2])
        mask = torch.zeros(n, T_total, dtype=torch.bool)
        mask[rows, lengths - 1] = True
        return SequenceBatch(inputs, targets, mask)


@dataclass(frozen=True)
class AdditionTask(MarkedPairTask):
    """Addition ([HS97] Exp. 4, thesis §4.13): ``x_t ~ U[−1, 1]``, target ``0.5 + (X₁ + X₂)/4 ∈ [0, 1]``.

    The thesis says only "the sum" (§4.13). The scaling is [HS97]'s ("the sum X₁ + X₂ scaled to the
    interval [0, 1]"). The 0.04 tolerance that the thesis takes from [HS97] was set for that range: 0.04 is 4%
    of it and about 0.2 standard deviations of the target (std ≈ 0.204). [MS-code] used ``x ~ U[0, 1]`` and
    the raw sum, which has twice the spread, so the same 0.04 would be relatively twice as strict. This
    module follows [HS97]. **[choice]** between the two sources.
    """

    def _values(self, size: tuple[int, int], generator: torch.Generator) -> Tensor:
        return torch.rand(size, generator=generator, dtype=torch.float32) * 2.0 - 1.0

    def target_of(self, x1: Tensor, x2: Tensor) -> Tensor:
        return 0.5 + (x1 + x2) / 4.0


@dataclass(frozen=True)
class MultiplicationTask(MarkedPairTask):
    """Multiplication ([HS97] Exp. 5, thesis §4.13): ``x_t ~ U[0, 1]``, target ``X₁·X₂ ∈ [0, 1]``.

    [HS97] and [MS-code] agree on ``U[0, 1]``. The [MS-code] comment notes that signed values would also
    make the RNN solve XOR on the signs. Layout as in :class:`MarkedPairTask`.
    """

    def _values(self, size: tuple[int, int], generator: torch.Generator) -> Tensor:
        return torch.rand(size, generator=generator, dtype=torch.float32)

    def target_of(self, x1: Tensor, x2: Tensor) -> Tensor:
        return x1 * x2


@dataclass(frozen=True)
class XorTask(MarkedPairTask):
    """XOR (thesis §4.13, "completely analogous"; not in [HS97]): ``x_t ~ Bernoulli(½)``, target ``X₁ ⊕ X₂``.

    The thesis does not state the output type (§4.13). Following [MS-code] the values are random
    bits, the single output is a logistic unit trained with cross-entropy (``sigmoid_bce``), and a sequence
    is correct when the logit's sign matches the target bit. [MS-code] ran XOR at half the length and with
    slightly different windows. Here the windows are those of :class:`MarkedPairTask` for all three
    problems, following the thesis's "completely analogous". **[choice]**
    """

    def _loss(self) -> str:
        return "sigmoid_bce"

    def _values(self, size: tuple[int, int], generator: torch.Generator) -> Tensor:
        return torch.randint(0, 2, size, generator=generator).to(torch.float32)

    def target_of(self, x1: Tensor, x2: Tensor) -> Tensor:
        return (x1 != x2).to(torch.float32)


# ------------------------------------------------------------------------------------------------------------
# temporal order


@dataclass(frozen=True)
class TemporalOrderTask(SequenceTask):
    """Temporal order, 2 or 3 special symbols ([HS97] Exp. 6a/6b; thesis §4.13, "The temporal order problem" and
    "The 3-bit temporal order problem").

    Thesis: symbols in {1, …, 6}, 1-of-6 encoded (``input_dim = 6``). Irrelevant symbols are uniform in
    {3, 4, 5, 6}, and the k = 2 (6a) or k = 3 (6b) special symbols are uniform in {1, 2}. The target is the
    1-of-2ᵏ class of the ordered tuple of special symbols. [HS97]'s start symbol E and end "trigger" B are
    not among the thesis's 6 symbols and are omitted, as in [P13]. The network can hold its answer from
    the last special symbol to the end. Details:

    * length ``L ~ U{T, …, T + ⌊T/10⌋}`` ([HS97]: 100–110 at T = 100), ``T_total = T + ⌊T/10⌋``;
    * special positions: [HS97]'s windows at T = 100, scaled by ``⌊p·T/100⌋`` **[choice]**. 6a: t₁ ∈
      [10, 20], t₂ ∈ [50, 60]. 6b: t₁ ∈ [10, 20], t₂ ∈ [33, 43], t₃ ∈ [66, 76];
    * class ``c = Σⱼ (sⱼ − 1)·2^{k−1−j}`` for special symbols ``s₀, s₁, …`` in time order, so for 6a
      XX→0, XY→1, YX→2, YY→3 with X = 1, Y = 2 ([HS97]'s Q, R, S, U). The 6b classes follow the same
      order;
    * the target is at step ``L − 1``, the only masked step; padding steps ``t ≥ L`` are all-zero vectors.
    """

    n_special: int = 2

    WINDOWS_PERCENT: ClassVar[dict[int, tuple[tuple[int, int], ...]]] = {
        2: ((10, 20), (50, 60)),
        3: ((10, 20), (33, 43), (66, 76)),
    }

    @property
    def total_length(self) -> int:
        return self.T + self.T // 10

    def _dims(self) -> tuple[int, int, str]:
        return 6, 2**self.n_special, "softmax_ce"

    def windows(self) -> list[tuple[int, int]]:
        """Inclusive position window of each special symbol, in time order."""
        return [(self.T * lo // 100, self.T * hi // 100) for lo, hi in self.WINDOWS_PERCENT[self.n_special]]

    def length_range(self) -> tuple[int, int]:
        """Inclusive range of the sequence length ``L``."""
        return self.T, self.T + self.T // 10

    def _check_length(self) -> None:
        if self.n_special not in self.WINDOWS_PERCENT:
            raise ConfigError(f"task {self.name!r}: n_special must be 2 or 3, got {self.n_special}")
        _variable_length_check(self)
        windows = self.windows()
        overlapping = any(prev[1] >= nxt[0] for prev, nxt in itertools.pairwise(windows))
        if overlapping or windows[-1][1] >= self.T - 1:
            raise ConfigError(f"task {self.name!r}: T={self.T} gives overlapping position windows {self.windows()}")

    def _generate(self, n: int, generator: torch.Generator) -> SequenceBatch:
        T_total = self.total_length
        lengths = _randint(*self.length_range(), (n,), generator)
        symbols = _randint(3, 6, (n, T_total), generator)
        specials = _randint(1, 2, (n, self.n_special), generator)
        positions = torch.stack([_randint(lo, hi, (n,), generator) for lo, hi in self.windows()], dim=1)
        symbols.scatter_(1, positions, specials)
        inputs = _one_hot(symbols - 1, 6)
        valid = torch.arange(T_total).unsqueeze(0) < lengths.unsqueeze(1)
        inputs = inputs * valid.unsqueeze(-1)
        weights = 2 ** torch.arange(self.n_special - 1, -1, -1)
        rows = torch.arange(n)
        targets = torch.zeros(n, T_total, dtype=torch.int64)
        targets[rows, lengths - 1] = ((specials - 1) * weights).sum(dim=1)
        mask = torch.zeros(n, T_total, dtype=torch.bool)
        mask[rows, lengths - 1] = True
        return SequenceBatch(inputs, targets, mask)


# ------------------------------------------------------------------------------------------------------------
# random permutation


@dataclass(frozen=True)
class RandomPermutationTask(SequenceTask):
    """Random permutation (thesis §4.13, "The random permutation problem"). Next-symbol prediction over 100 symbols.

    Symbols ``s₀, …, s_T`` with ``s₀ = s_T ~ U{1, 2}`` and ``s₁, …, s_{T−1} ~ U{3, …, 100}`` (§4.13). The
    inputs are ``s₀ … s_{T−1}`` (1-of-100, ``T_total = T``). The target at step t is the next symbol
    ``s_{t+1}`` (class ``s_{t+1} − 1``), so the last target is ``s_T = s₀``. The thesis's "last symbol" is
    therefore the final target, which is how [MS-code] and [P13] lay it out. Every step is in ``mask``
    (the loss, which is why λ starts at 0.1·T). Success is decided at the last step only (thesis:
    "the last timestep (the one we use to measure success)"). :meth:`success_mask` encodes that, and
    [MS-code] does the same.
    """

    N_SYMBOLS: ClassVar[int] = 100

    @property
    def total_length(self) -> int:
        return self.T

    def _dims(self) -> tuple[int, int, str]:
        return self.N_SYMBOLS, self.N_SYMBOLS, "softmax_ce"

    def _check_length(self) -> None:
        if self.T < 2:
            raise ConfigError(f"task {self.name!r}: T must be >= 2, got {self.T}")

    def success_mask(self, batch: SequenceBatch) -> Tensor:
        deciding = torch.zeros_like(batch.mask)
        deciding[:, -1] = batch.mask[:, -1]
        return deciding

    def _generate(self, n: int, generator: torch.Generator) -> SequenceBatch:
        first = _randint(1, 2, (n, 1), generator)
        middle = _randint(3, self.N_SYMBOLS, (n, self.T - 1), generator)
        inputs = _one_hot(torch.cat([first, middle], dim=1) - 1, self.N_SYMBOLS)
        targets = torch.cat([middle, first], dim=1) - 1
        mask = torch.ones(n, self.T, dtype=torch.bool)
        return SequenceBatch(inputs, targets, mask)


# ------------------------------------------------------------------------------------------------------------
# noiseless memorization


WHOLE_SET_MAX = 1024  # a task with at most this many distinct sequences trains on all of them (5-bit: 32)


@dataclass(frozen=True)
class MemorizationTask(SequenceTask):
    """Noiseless memorization (thesis §4.13; 5-bit: m = 5 binary symbols, 20-bit: m = 10 symbols of 5 values).

    Thesis: "the input sequence starts with a string of 5 bits followed by T occurrences of a constant
    input. The target output is constant up until the last 5 timesteps, which are the original 5 input
    bits. There is also a special input in the 5th-last timestep signaling that the output needs to be
    presented." Read literally, with ``m`` data symbols from an alphabet of ``K``:

    * ``T_total = m + T``. Steps ``0 … m−1`` carry the data symbols ``d₀ … d_{m−1}`` and the remaining T
      steps carry the constant "blank" input. The one exception is step ``T`` (the m-th-last step), whose
      input is the special "go" signal instead (thesis). Symbol ``dⱼ`` is due at step ``T + j``, so every
      time lag is exactly T. That matches §4.13.1, which speaks of the "minimal time-lag" as the parameter.
      **[choice]** [P13] inserts the T blanks *between* data and the m output steps (total T + 2m).
      [MS-code] puts the signal one step before the outputs;
    * input channels (``input_dim = K + 2``): ``0 … K−1`` the data symbols, ``K`` the blank, ``K + 1`` the
      go signal. Output classes (``output_dim = K + 1``): ``0 … K−1`` the data symbols, ``K`` the constant
      target. Softmax/cross-entropy (thesis §4.13), as in [MS-code] and [P13];
    * targets: class ``K`` at steps ``0 … T−1`` and ``dⱼ`` at step ``T + j``. ``mask`` is every step (the
      thesis's constant target before the last m steps; [MS-code] defaults to predicting every step);
    * the 20-bit problem is not specified in the thesis (§4.13.1 mentions it only). [MS-code]'s "raw_mem20"
      and [P13]'s default use m = 10 symbols from an alphabet of K = 5 (5¹⁰ ≈ 2²³ sequences), and so does
      this module. The 5-bit problem has m = 5, K = 2 and only 2⁵ = 32 distinct sequences (§4.13).
      :meth:`all_sequences` returns all of them, for the thesis's use of the whole set in every
      gradient and curvature product.
    """

    n_symbols: int = 5
    alphabet: int = 2

    @property
    def total_length(self) -> int:
        return self.T + self.n_symbols

    @property
    def n_distinct(self) -> int:
        """How many distinct sequences the task has (``K^m``)."""
        return self.alphabet**self.n_symbols

    def _dims(self) -> tuple[int, int, str]:
        return self.alphabet + 2, self.alphabet + 1, "softmax_ce"

    def _check_length(self) -> None:
        if self.n_symbols > self.T:
            raise ConfigError(
                f"task {self.name!r}: T must be >= {self.n_symbols} (the output steps follow the data), got {self.T}"
            )

    def _generate(self, n: int, generator: torch.Generator) -> SequenceBatch:
        return self._build(_randint(0, self.alphabet - 1, (n, self.n_symbols), generator))

    def whole_set(self) -> SequenceBatch | None:
        """All 32 sequences of the 5-bit problem (thesis §4.13: "only 32 distinct sequences", so all are used
        for the gradient and the curvature); ``None`` for the 20-bit one (5¹⁰ sequences)."""
        if self.n_distinct > WHOLE_SET_MAX:
            return None
        batch = self.all_sequences()
        batch.complete = True
        return batch

    def all_sequences(self, max_sequences: int = 1 << 16) -> SequenceBatch:
        """Every distinct sequence once, in lexicographic order of the data (first symbol most significant)."""
        if self.n_distinct > max_sequences:
            raise ConfigError(
                f"task {self.name!r} has {self.n_distinct} distinct sequences, more than max_sequences={max_sequences}"
            )
        codes = torch.arange(self.n_distinct).unsqueeze(1)
        place = self.alphabet ** torch.arange(self.n_symbols - 1, -1, -1)
        return self._build((codes // place) % self.alphabet)

    def _build(self, data: Tensor) -> SequenceBatch:
        n, m, K = data.shape[0], self.n_symbols, self.alphabet
        T_total = self.total_length
        symbols_in = torch.full((n, T_total), K, dtype=torch.int64)
        symbols_in[:, :m] = data
        symbols_in[:, self.T] = K + 1
        targets = torch.full((n, T_total), K, dtype=torch.int64)
        targets[:, self.T :] = data
        mask = torch.ones(n, T_total, dtype=torch.bool)
        return SequenceBatch(_one_hot(symbols_in, K + 2), targets, mask)


# ------------------------------------------------------------------------------------------------------------
# DNC repeated copy


@dataclass(frozen=True)
class DNCCopyTask(SequenceTask):
    """DNC "repeated copy" ([MBJ18] §4.2).

    [MBJ18]: "recreate a series of two random binary sequences after they are presented as inputs. The
    total length of the sequence is fixed to 22 time-steps". The paper gives neither the bit width, the
    sub-sequence lengths, the delimiters nor the loss. Here (all **[choice]**):

    * ``T`` is the fixed total length (default :data:`DNC_COPY_DEFAULT_T` = 22). It must be even and ≥ 6.
      Let ``m = T/2`` and ``c = m − 1``;
    * ``W = 6`` bits per vector, i.i.d. Bernoulli(½);
    * two sequences A (length ``k``) and B (length ``c − k``) with ``k ~ U{1, …, c − 1}``. The split varies
      while the total stays fixed, e.g. 5 + 5 or 2 + 8 vectors at T = 22;
    * presentation (input channels ``0 … W−1``): A at steps ``0 … k−1``, then the flag "end of A"
      (channel W) at step ``k``, B at steps ``k+1 … c``, then the flag "end of B, recall now" (channel
      ``W + 1``) at step ``c + 1 = m``. ``input_dim = W + 2``;
    * recall: steps ``m+1 … T−1`` (``c`` steps, inputs all-zero). The targets are A then B, i.e. the
      presented vectors in their original order. ``mask`` is exactly these steps. ``output_dim = W``,
      logistic outputs with per-bit cross-entropy (``sigmoid_bce``; [MBJ18] reports a "cross entropy
      loss", Figure 3). Outside the recall steps the targets are 0 and unmasked.

    Every time step is used, so ``2c + 2 = T``.
    """

    bits: int = 6

    @property
    def total_length(self) -> int:
        return self.T

    def _dims(self) -> tuple[int, int, str]:
        return self.bits + 2, self.bits, "sigmoid_bce"

    def _check_length(self) -> None:
        if self.T < 6 or self.T % 2:
            raise ConfigError(
                f"task {self.name!r}: T is the total length and must be even and >= 6 "
                f"(two sequences of >= 1 vector, 2 flags, recall), got {self.T}"
            )

    def split_range(self) -> tuple[int, int]:
        """Inclusive range of the first sequence's length ``k``."""
        return 1, self.T // 2 - 2

    def _generate(self, n: int, generator: torch.Generator) -> SequenceBatch:
        T, W = self.T, self.bits
        m = T // 2
        c = m - 1
        k = _randint(*self.split_range(), (n, 1), generator)
        content = torch.randint(0, 2, (n, c, W), generator=generator).to(torch.float32)
        t = torch.arange(T).unsqueeze(0)  # (1, T)
        shown = (t < k) | ((t > k) & (t <= c))  # (n, T): presentation steps that carry a vector
        index_in = torch.where(t < k, t, t - 1).clamp(0, c - 1).expand(n, T)
        data_in = torch.gather(content, 1, index_in.unsqueeze(-1).expand(n, T, W)) * shown.unsqueeze(-1)
        recall = (t > m).repeat(n, 1)
        index_out = (t - m - 1).clamp(0, c - 1).expand(n, T)
        targets = torch.gather(content, 1, index_out.unsqueeze(-1).expand(n, T, W)) * recall.unsqueeze(-1)
        flags = torch.zeros(n, T, 2, dtype=torch.float32)
        flags[:, :, 0] = (t == k).to(torch.float32)
        flags[:, m, 1] = 1.0
        inputs = torch.cat([data_in, flags], dim=-1)
        return SequenceBatch(inputs, targets, recall)


# ------------------------------------------------------------------------------------------------------------
# registry

_FACTORIES: dict[str, Callable[[int], SequenceTask]] = {
    "addition": lambda T: AdditionTask("addition", T, 2, 1, "squared_error"),
    "multiplication": lambda T: MultiplicationTask("multiplication", T, 2, 1, "squared_error"),
    "xor": lambda T: XorTask("xor", T, 2, 1, "sigmoid_bce"),
    "temporal_order_2bit": lambda T: TemporalOrderTask("temporal_order_2bit", T, 6, 4, "softmax_ce", n_special=2),
    "temporal_order_3bit": lambda T: TemporalOrderTask("temporal_order_3bit", T, 6, 8, "softmax_ce", n_special=3),
    "random_permutation": lambda T: RandomPermutationTask("random_permutation", T, 100, 100, "softmax_ce"),
    "memorization_5bit": lambda T: MemorizationTask(
        "memorization_5bit", T, 4, 3, "softmax_ce", n_symbols=5, alphabet=2
    ),
    "memorization_20bit": lambda T: MemorizationTask(
        "memorization_20bit", T, 7, 6, "softmax_ce", n_symbols=10, alphabet=5
    ),
    "dnc_copy": lambda T: DNCCopyTask("dnc_copy", T, 8, 6, "sigmoid_bce", bits=6),
}

TASKS: tuple[str, ...] = tuple(_FACTORIES)
"""Every task name accepted by :func:`make_task`."""


def make_task(name: str, T: int) -> SequenceTask:
    """The task ``name`` with length parameter ``T`` (see the module docstring for what T means per task).

    Raises :class:`~secondorder.errors.ConfigError` for an unknown name or an infeasible ``T``.
    """
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ConfigError(f"unknown sequence task {name!r}; valid names: {', '.join(TASKS)}")
    return factory(T)


__all__ = [
    "CONTINUOUS_TOLERANCE",
    "DNC_COPY_DEFAULT_T",
    "LOSSES",
    "TASKS",
    "AdditionTask",
    "DNCCopyTask",
    "MarkedPairTask",
    "MemorizationTask",
    "MultiplicationTask",
    "RandomPermutationTask",
    "SequenceBatch",
    "SequenceTask",
    "TemporalOrderTask",
    "XorTask",
    "make_task",
]
