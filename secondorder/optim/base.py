"""The one interface every optimiser implements, and what a step reports.

An optimiser owns its update rule and decides which data it needs: the trainer hands it the
:class:`~secondorder.problems.base.Problem` (model, matching loss, ℓ2 prior, full data) at construction and a
:class:`~secondorder.problems.samplers.Sampler` at every step. A first-order method draws one mini-batch;
second-order methods draw separate gradient / curvature / statistics batches or use the full training set.
Each step returns the objective value it saw and the work it did (:class:`StepCosts`), so that runs can be
compared per iteration, per gradient evaluation and per second.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import torch
from torch import Tensor

from secondorder.optim.phases import PhaseClock
from secondorder.problems.base import Problem
from secondorder.problems.samplers import Sampler


@dataclass
class StepCosts:
    """Work done by one step, in units the papers compare.

    ``grad_evals`` counts forward+backward passes over one batch (of whatever size), ``forward_passes``
    forward-only passes, ``curvature_products`` curvature-matrix-vector products (GGN/Hessian/Fisher),
    ``inversions`` factor eigendecompositions or inverses.
    """

    grad_evals: int = 0
    forward_passes: int = 0
    curvature_products: int = 0
    inversions: int = 0

    def add(self, other: StepCosts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class StepResult:
    """What one optimiser step reports: the batch objective before the update, costs, method statistics."""

    loss: float
    costs: StepCosts
    stats: dict[str, float] = field(default_factory=dict)


class Optimizer(ABC):
    """Base class: subclasses set ``config_class``, ``stat_names`` and implement :meth:`step`."""

    config_class: ClassVar[type]
    stat_names: ClassVar[tuple[str, ...]] = ()
    # whether the method is defined for models whose outputs depend on batch statistics (batch norm): the
    # gradient methods are; curvature built per case (GGN, K-FAC factors, ACP's covariances) is not
    batch_statistics_ok: ClassVar[bool] = False
    # whether the method runs on a model whose forward is compiled (``trainer.compile``): methods that read layer
    # inputs and outputs through module hooks (K-FAC's statistics, George's centring) need the eager forward
    compile_ok: ClassVar[bool] = True
    # whether the method runs data-parallel (``trainer.distributed``): it averages every batch mean it uses over the
    # ranks (:func:`secondorder.distributed.mean_`), so that R ranks reproduce one process on the union batch
    distributed_ok: ClassVar[bool] = False

    def __init__(self, problem: Problem, cfg: Any) -> None:
        self.problem = problem
        self.cfg = cfg
        self.params = [p for p in problem.model.parameters() if p.requires_grad]
        # wall-clock per part of a step, off unless a benchmark switches it on (:mod:`.phases`)
        self.phases = PhaseClock(self.params[0].device if self.params else None)

    @abstractmethod
    def step(self, iteration: int, sampler: Sampler) -> StepResult:
        """Perform update number ``iteration`` (0-based) and report it."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly after :meth:`load_state_dict` (model weights excluded)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def all_finite(tensors: Iterable[Tensor]) -> bool:
    """True when every entry of every tensor is finite — one device-to-host transfer for the lot (a check per
    tensor would synchronise with the GPU once per parameter)."""
    flags = [torch.isfinite(t).all() for t in tensors]
    return bool(torch.stack(flags).all()) if flags else True
