"""Hyperparameter search: grid, random and biased random search (George 2017, §4.1, Algorithm 1).

Biased random search (BRS): draw a uniform proposal a from the domain D; estimate its criterion with a
1-nearest-neighbour regressor on the history H (§4.1); accept it with probability
p = (c_max − c_est) / (c_max − c_min), where c_max and c_min are the worst and best criteria seen so far (the final
version's definition); otherwise draw again. Choices the thesis leaves open, made here and configurable only where
that makes sense:

* distance: Euclidean on coordinates normalised to [0, 1] per dimension, log-scaled dimensions in log units;
* cold start: proposals are accepted unconditionally while fewer than two distinct criteria are known;
* a diverged or failed trial enters the history with the worst finite criterion seen (so p stays defined);
* rejection sampling gives up after ``max_rejections`` draws and takes the last proposal (never loops forever).

Proposals are reproducible: trial k's generator is seeded from (method, seed, k) — random and biased search with the
same seed draw from independent streams — and BRS conditions only on the history, so a resumed search proposes the
same trials.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from secondorder.errors import ConfigError


@dataclass(frozen=True)
class Dimension:
    """One searched hyperparameter: a Hydra key and its range (log-uniform when ``log``)."""

    key: str
    low: float
    high: float
    log: bool = False
    integer: bool = False

    def __post_init__(self) -> None:
        if not self.high > self.low:
            raise ConfigError(f"search dimension {self.key}: high must exceed low")
        if self.log and self.low <= 0:
            raise ConfigError(f"search dimension {self.key}: a log-scaled range must be positive")

    def to_unit(self, value: float) -> float:
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)

    def from_unit(self, u: float) -> float:
        value = (math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))) if self.log
                 else self.low + u * (self.high - self.low))
        return float(round(value)) if self.integer else value


@dataclass
class Trial:
    index: int
    params: dict[str, float]
    criterion: float | None = None
    status: str = "pending"
    run_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _unit(space: Sequence[Dimension], params: dict[str, float]) -> list[float]:
    return [d.to_unit(params[d.key]) for d in space]


def effective_criteria(history: Sequence[Trial]) -> list[tuple[list[float], float]]:
    """(point, criterion) pairs of finished trials, failed ones at the worst finite criterion seen."""
    finite = [t.criterion for t in history if t.criterion is not None and math.isfinite(t.criterion)]
    worst = max(finite) if finite else None
    out = []
    for t in history:
        if t.status == "completed" and t.criterion is not None and math.isfinite(t.criterion):
            out.append((t.params, t.criterion))
        elif t.status in ("diverged", "failed") and worst is not None:
            out.append((t.params, worst))
    return out


def nearest_neighbour_estimate(space: Sequence[Dimension], known: list[tuple[dict, float]],
                               proposal: dict[str, float]) -> float:
    """1-NN regression (George 2017, §4.1) in normalised coordinates."""
    point = _unit(space, proposal)
    best = min(known, key=lambda item: sum((a - b) ** 2 for a, b in zip(_unit(space, item[0]), point, strict=True)))
    return best[1]


def acceptance_probability(estimate: float, c_min: float, c_max: float) -> float:
    return (c_max - estimate) / (c_max - c_min)


def propose(method: str, space: Sequence[Dimension], history: Sequence[Trial], index: int, seed: int,
            grid_points: int = 5, max_rejections: int = 10_000) -> dict[str, float]:
    """The parameters of trial ``index`` for ``method`` in {grid, random, biased}."""
    if method == "grid":
        axes = [[d.from_unit(i / (grid_points - 1) if grid_points > 1 else 0.5) for i in range(grid_points)]
                for d in space]
        points = list(itertools.product(*axes))
        if index >= len(points):
            raise ConfigError(f"the grid has {len(points)} points; trial {index} is past its end")
        return dict(zip([d.key for d in space], points[index], strict=True))
    rng = random.Random(f"{method}:{seed}:{index}")  # random and biased search draw from independent streams

    def draw() -> dict[str, float]:
        return {d.key: d.from_unit(rng.random()) for d in space}

    if method == "random":
        return draw()
    if method != "biased":
        raise ConfigError(f"search method {method!r}: must be grid, random or biased")
    known = effective_criteria(history)
    values = [c for _, c in known]
    if len(set(values)) < 2:
        return draw()  # cold start: p undefined
    c_min, c_max = min(values), max(values)
    proposal = draw()
    for _ in range(max_rejections):
        p = acceptance_probability(nearest_neighbour_estimate(space, known, proposal), c_min, c_max)
        if rng.random() < p:
            return proposal
        proposal = draw()
    return proposal


def run_search(method: str, space: Sequence[Dimension], objective: Callable[[dict[str, float]], float | None],
               trials: int, seed: int, history: list[Trial] | None = None, grid_points: int = 5) -> list[Trial]:
    """Sequential search with an in-process objective (``None`` or non-finite = diverged)."""
    history = list(history or [])
    for index in range(len(history), trials):
        params = propose(method, space, history, index, seed, grid_points)
        value = objective(params)
        ok = value is not None and math.isfinite(value)
        history.append(Trial(index, params, value if ok else None, "completed" if ok else "diverged"))
    return history
