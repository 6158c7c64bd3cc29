"""Wall-clock time per named part of an optimiser step, for the benchmarks (``make bench``).

Every optimiser owns a :class:`PhaseClock` (``optimizer.phases``) and wraps the parts of its step in
``with self.phases("cg"): …``. The clock is off by default: ``phases(name)`` then returns one shared
``nullcontext`` — no timer, no device synchronisation, so training runs pay nothing. When the benchmark switches
it on, each part is bracketed by a device synchronisation (CUDA kernels run asynchronously, so an unsynchronised
timer would charge a part's kernels to whichever later part first waits for them) and its seconds are summed
under its name until :meth:`reset`.

Part names used across the optimisers (so tables line up): ``gradient`` (the mini-batch loss and gradient),
``statistics`` (curvature statistics: K-FAC factors, preconditioner diagonals), ``inverses`` (factor
eigendecompositions / inverses), ``proposal`` (applying the approximate inverse), ``rescaling`` (K-FAC's
exact-Fisher (α, μ) and KFAC-RNN's trust-region clip), ``linearisation`` (HF: building the cached
linearised curvature operator for the CG run), ``cg`` (HF's conjugate-gradient iterations),
``backtracking`` (HF's CG-backtracking), ``damping`` (reduction ratio ρ and the λ update), ``line_search``
and ``update`` (writing the new parameters). The rest of a step is reported as ``other``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch

PARTS = ("gradient", "statistics", "inverses", "proposal", "rescaling", "linearisation", "cg", "backtracking",
         "damping", "line_search", "update")
_OFF = nullcontext()


class PhaseClock:
    """Accumulates synchronised seconds per part name while ``enabled``; free when disabled."""

    def __init__(self, device: torch.device | None = None) -> None:
        self.device = device
        self.enabled = False
        self.seconds: dict[str, float] = defaultdict(float)

    def __call__(self, name: str) -> AbstractContextManager[None]:
        return self._timed(name) if self.enabled else _OFF

    def _synchronise(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        self._synchronise()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._synchronise()
            self.seconds[name] += time.perf_counter() - start

    def reset(self) -> None:
        self.seconds = defaultdict(float)
