"""Optimisers: one module per method, all behind :class:`~secondorder.optim.base.Optimizer`.

``OPTIMIZERS`` maps ``optimizer.name`` (the file name under ``conf/optimizer/``) to the class; each class
names its config dataclass in ``config_class``.
"""

from __future__ import annotations

from typing import Any

from secondorder.errors import ConfigError
from secondorder.models.normalization import uses_batch_statistics
from secondorder.optim.base import Optimizer, StepCosts, StepResult
from secondorder.optim.first_order import SGD, Adam, Momentum, Nesterov
from secondorder.optim.george import ACP, CenteredSGD
from secondorder.optim.hf import HessianFree
from secondorder.optim.kfac import KFAC
from secondorder.optim.kfac_rnn import KFACRNN
from secondorder.optim.ncg import NonlinearCG
from secondorder.problems.base import Problem

OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adam": Adam,
    "hf": HessianFree,
    "kfac": KFAC,
    "kfac_tridiag": KFAC,
    "kfra": KFAC,
    "kflr": KFAC,
    "kfac_rnn": KFACRNN,
    "centered_sgd": CenteredSGD,
    "acp": ACP,
    "acp_fixed_alpha": ACP,
    "nnn": ACP,
    "ncg": NonlinearCG,
}


def build_optimizer(cfg: Any, problem: Problem) -> Optimizer:
    method = OPTIMIZERS[cfg.name]
    if not method.batch_statistics_ok and uses_batch_statistics(problem.model):
        plain = ", ".join(name for name, m in OPTIMIZERS.items() if m.batch_statistics_ok)
        raise ConfigError(f"optimizer {cfg.name} is not defined for a batch-normalised model; use model.normalization"
                          f"=none, or one of {plain}")
    return method(problem, cfg)


__all__ = ["OPTIMIZERS", "Optimizer", "StepCosts", "StepResult", "build_optimizer"]
