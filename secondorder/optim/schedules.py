"""Step-size and momentum schedules shared by the first-order baselines."""

from __future__ import annotations

import math


def halved_every(base: float, period: int | None, iteration: int) -> float:
    """base · ½^⌊t/T⌋: the learning rate halved every T iterations (Botev et al. 2017, §5.1, footnote 11).

    ``period=None`` keeps the rate constant.
    """
    if period is None:
        return base
    return base * 0.5 ** (iteration // period)


def sutskever_momentum(iteration: int, mu_max: float, period: int = 250) -> float:
    """μ_t = min(1 − 2^(−1 − log₂(⌊t/period⌋ + 1)), μ_max): the increasing schedule of Sutskever, Martens,
    Dahl & Hinton (2013), which the K-FAC paper's baseline follows (thesis §6.13).

    [EXT] The formula is not in the thesis; it is taken from secondary summaries of Sutskever et al. (2013),
    not checked against that paper. It starts at 0.5 and rises towards 1 in steps every ``period`` iterations.
    """
    return min(1.0 - 2.0 ** (-1.0 - math.log2(iteration // period + 1)), mu_max)
