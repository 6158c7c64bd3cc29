"""Step-size and momentum schedules shared by the first-order baselines."""

from __future__ import annotations

import math

from secondorder.validation import Check


def halved_every(base: float, period: int | None, iteration: int) -> float:
    """base · ½^⌊t/T⌋: the learning rate halved every T iterations (Botev et al. 2017, §5.1, footnote 11).

    ``period=None`` keeps the rate constant.
    """
    if period is None:
        return base
    return base * 0.5 ** (iteration // period)


def step_decayed(base: float, factor: float, every: int | None, start: int, iteration: int) -> float:
    """base · r^(⌊(t − t₀)/T⌋ + 1) from iteration t₀ on, base before it: a step decay by r = ``factor`` every
    T = ``every`` iterations, as Zaremba et al.'s PTB schedule (×0.8 per epoch after the sixth), which Martens, Ba &
    Johnson (2018, §4) cite for their word model's "carefully tuned decaying schedule". ``every=None``: constant."""
    if every is None or iteration < start:
        return base
    return base * factor ** ((iteration - start) // every + 1)


def decay_checks(cfg: object) -> list[Check]:
    """The step decay's settings: 0 < ``lr_decay`` ≤ 1, ``lr_decay_from`` ≥ 0."""
    return [("lr_decay", 0.0 < cfg.lr_decay <= 1.0, "must lie in (0, 1]"),
            ("lr_decay_from", cfg.lr_decay_from >= 0, "must be >= 0")]


def learning_rate(cfg: object, iteration: int) -> float:
    """The rate of a config with ``lr``, ``lr_halving_period`` (optional) and the step decay ``lr_decay`` /
    ``lr_decay_every`` / ``lr_decay_from`` (optional): both schedules multiply."""
    rate = halved_every(cfg.lr, getattr(cfg, "lr_halving_period", None), iteration)
    return step_decayed(rate, getattr(cfg, "lr_decay", 1.0), getattr(cfg, "lr_decay_every", None),
                        getattr(cfg, "lr_decay_from", 0), iteration)


def sutskever_momentum(iteration: int, mu_max: float, period: int = 250) -> float:
    """μ_t = min(1 − 2^(−1 − log₂(⌊t/period⌋ + 1)), μ_max): the increasing schedule of Sutskever, Martens,
    Dahl & Hinton (2013), which the K-FAC paper's baseline follows (thesis §6.13).

    [EXT] The formula is not in the thesis; it is taken from secondary summaries of Sutskever et al. (2013),
    not checked against that paper. It starts at 0.5 and rises towards 1 in steps every ``period`` iterations.
    """
    return min(1.0 - 2.0 ** (-1.0 - math.log2(iteration // period + 1)), mu_max)
