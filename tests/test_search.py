"""Grid, random and biased random search (George 2017, Alg. 1) on known functions."""

from __future__ import annotations

import math
import statistics

import pytest

from secondorder.errors import ConfigError
from secondorder.search import (
    Dimension,
    Trial,
    acceptance_probability,
    nearest_neighbour_estimate,
    propose,
    run_search,
)

SPACE = [Dimension("x", -5.0, 5.0), Dimension("lr", 1e-4, 1.0, log=True)]


def bowl(params: dict[str, float]) -> float:
    """Minimum at x = 1, lr = 1e-2 (in log units)."""
    return (params["x"] - 1.0) ** 2 + (math.log10(params["lr"]) + 2.0) ** 2


def saturating_bowl(params: dict[str, float]) -> float:
    """The bowl capped at 4: like a training loss after a fixed budget, flat (stuck or diverged) far from the
    good region — the landscape BRS was designed for (a quadratic growing without bound makes c_max so large
    that nearly every proposal is accepted)."""
    return min(bowl(params), 4.0)


def distance_to_optimum(params: dict[str, float]) -> float:
    return math.hypot((params["x"] - 1.0) / 10, (math.log10(params["lr"]) + 2.0) / 4)


def test_acceptance_probability_is_one_at_the_best_and_zero_at_the_worst() -> None:
    assert acceptance_probability(1.0, 1.0, 5.0) == 1.0 and acceptance_probability(5.0, 1.0, 5.0) == 0.0
    known = [({"x": -4.0, "lr": 1e-4}, 9.0), ({"x": 4.0, "lr": 0.5}, 1.0)]
    assert nearest_neighbour_estimate(SPACE, known, {"x": 3.5, "lr": 0.3}) == 1.0


def test_biased_search_concentrates_near_the_minimum_and_beats_random_search() -> None:
    """Over a fixed set of seeds: BRS samples lie nearer the optimum and its best value is lower on average."""
    brs_best, rs_best, brs_distance, rs_distance = [], [], [], []
    for seed in range(20):
        brs = run_search("biased", SPACE, saturating_bowl, trials=40, seed=seed)
        rs = run_search("random", SPACE, saturating_bowl, trials=40, seed=seed)
        brs_best.append(min(bowl(t.params) for t in brs))
        rs_best.append(min(bowl(t.params) for t in rs))
        brs_distance.append(statistics.mean(distance_to_optimum(t.params) for t in brs[10:]))
        rs_distance.append(statistics.mean(distance_to_optimum(t.params) for t in rs[10:]))
    assert statistics.mean(brs_distance) < 0.75 * statistics.mean(rs_distance)  # measured: 0.25 vs 0.38
    assert statistics.mean(brs_best) < 0.5 * statistics.mean(rs_best)  # measured: 0.080 vs 0.285


def test_diverged_trials_count_as_the_worst_and_never_stall_the_search() -> None:
    def sometimes_diverges(params: dict[str, float]) -> float | None:
        return None if params["x"] > 2 else bowl(params)

    history = run_search("biased", SPACE, sometimes_diverges, trials=30, seed=3)
    assert len(history) == 30 and any(t.status == "diverged" for t in history)


def test_proposals_are_reproducible_so_a_resumed_search_repeats_no_trial() -> None:
    full = run_search("biased", SPACE, bowl, trials=12, seed=7)
    resumed = run_search("biased", SPACE, bowl, trials=12, seed=7, history=full[:5])
    assert [t.params for t in resumed] == [t.params for t in full]
    evaluated: list[dict] = []

    def counting(params):
        evaluated.append(params)
        return bowl(params)

    run_search("biased", SPACE, counting, trials=12, seed=7, history=full[:5])
    assert len(evaluated) == 7  # only the missing trials run


def test_grid_covers_the_corners_in_log_space() -> None:
    points = [propose("grid", SPACE, [], k, seed=0, grid_points=3) for k in range(9)]
    assert {p["x"] for p in points} == {-5.0, 0.0, 5.0}
    assert sorted({round(math.log10(p["lr"]), 9) for p in points}) == [-4.0, -2.0, 0.0]
    with pytest.raises(ConfigError, match="grid has 9 points"):
        propose("grid", SPACE, [], 9, seed=0, grid_points=3)


def test_bad_dimensions_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="log-scaled range must be positive"):
        Dimension("lr", 0.0, 1.0, log=True)
    with pytest.raises(ConfigError, match="high must exceed low"):
        Dimension("x", 1.0, 1.0)
    with pytest.raises(ConfigError, match="must be grid, random or biased"):
        propose("anneal", SPACE, [Trial(0, {"x": 0.0, "lr": 0.1})], 1, seed=0)
