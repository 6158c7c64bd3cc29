"""Performance profiles (AlgoPerf style) on hand-made runs whose times to target are known."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from secondorder.report.profiles import (
    default_targets,
    problem_method_table,
    profile,
    ratio_frame,
    score,
    score_frame,
    time_to_target,
    write_profiles,
)
from secondorder.report.runs import find_runs


def make_run(folder: Path, errors: list[float], times: list[float], averaged: list[float] | None = None) -> None:
    folder.mkdir(parents=True)
    problem, method = folder.name.split("__")
    (folder / "summary.json").write_text(json.dumps({"status": "completed", "dataset": problem,
                                                     "optimizer": method}))
    columns = {"iteration": range(len(errors)), "wall_time_s": times, "grad_evals": range(len(errors)),
               "train_error": errors, "test_error": errors}
    if averaged is not None:
        columns["train_error_avg"] = averaged
    pd.DataFrame(columns).to_csv(folder / "metrics.csv", index=False)


@pytest.fixture
def runs(tmp_path: Path):
    # problem a: target 1.0 reached by fast at 2 s, slow at 6 s (ratio 3), never by bad
    make_run(tmp_path / "a__fast", [5, 1.0, 0.5], [0, 2, 4])
    make_run(tmp_path / "a__slow", [5, 3, 0.9], [0, 3, 6])
    make_run(tmp_path / "a__bad", [5, 4, 3], [0, 1, 2])
    # problem b: slow is fastest (1 s), fast takes 5 s (ratio 5 > r_max), bad reaches it via its averaged iterate
    make_run(tmp_path / "b__fast", [9, 8, 2], [0, 1, 5])
    make_run(tmp_path / "b__slow", [9, 2, 1], [0, 1, 2])
    make_run(tmp_path / "b__bad", [9, 8, 8], [0, 2, 4], averaged=[9, 2, 8])
    return find_runs([tmp_path])


def test_time_to_target_and_ratios(runs) -> None:
    table = problem_method_table(runs, "dirname", "dirname")
    assert time_to_target(table["a"]["slow"][0], 1.0) == 6
    assert time_to_target(table["a"]["bad"][0], 1.0) == math.inf
    assert time_to_target(table["b"]["bad"][0], 2.0) == 2  # the averaged iterate counts
    ratios = ratio_frame(table, {"a": 1.0, "b": 2.0}).set_index(["problem", "method"])["ratio"]
    assert ratios[("a", "fast")] == 1 and ratios[("a", "slow")] == 3 and ratios[("a", "bad")] == math.inf
    assert ratios[("b", "slow")] == 1 and ratios[("b", "fast")] == 5 and ratios[("b", "bad")] == 2


def test_profile_and_score_are_the_step_function_and_its_area(runs) -> None:
    ratios = ratio_frame(problem_method_table(runs, "dirname", "dirname"), {"a": 1.0, "b": 2.0})
    fast, slow = profile(ratios, "fast"), profile(ratios, "slow")
    assert fast(1.0) == 0.5 and fast(4.0) == 0.5  # ratio 5 on b is beyond r_max: a failure
    assert slow(2.9) == 0.5 and slow(3.0) == 1.0
    assert score(ratios, "fast") == pytest.approx(0.5)  # (4 − 1) / 3 / 2
    assert score(ratios, "slow") == pytest.approx((3 + 1) / 3 / 2)
    assert score(ratios, "bad") == pytest.approx((4 - 2) / 3 / 2)
    assert list(score_frame(ratios)["method"]) == ["slow", "fast", "bad"]


def test_default_targets_are_the_median_of_best_errors(runs) -> None:
    table = problem_method_table(runs, "dirname", "dirname")
    assert default_targets(table) == {"a": 0.9, "b": 2.0}  # a: bests 0.5, 0.9, 3; b: bests 2, 1, 2 (averaged)


def test_report_cli_writes_profiles(runs, tmp_path: Path, capsys) -> None:
    from secondorder.report.command import main

    main([str(tmp_path), "--profiles", "--problem-key", "dirname", "--method-key", "dirname",
          "--target", "a=1.0", "--out", str(tmp_path / "out")])
    text = (tmp_path / "out" / "profiles.md").read_text()
    assert "a ≤ 1" in text and "median" in text  # b's target is the default
    assert (tmp_path / "out" / "performance_profile.png").stat().st_size > 0
    write_profiles(runs, tmp_path / "out2", "t", "dataset", "optimizer")  # summary fields as keys
    assert "| slow |" in (tmp_path / "out2" / "profiles.md").read_text()


def test_a_problem_whose_target_is_met_before_any_step_is_dropped(tmp_path: Path) -> None:
    """Odd/even at error 0.5 for every method (issue 18): met at iteration 0, the target ranks nothing."""
    make_run(tmp_path / "flat__kfac", [0.5, 0.5, 0.5], [0, 1, 2])
    make_run(tmp_path / "flat__adam", [0.5, 0.6, 0.5], [0, 1, 2])
    make_run(tmp_path / "real__kfac", [5, 1, 0.5], [0, 1, 2])
    make_run(tmp_path / "real__adam", [5, 3, 1], [0, 1, 2])
    write_profiles(find_runs([tmp_path]), tmp_path / "out", "t", "dataset", "optimizer")
    text = (tmp_path / "out" / "profiles.md").read_text()
    assert "Dropped: flat" in text
    assert set(pd.read_csv(tmp_path / "out" / "profiles.csv")["problem"]) == {"real"}
    write_profiles(find_runs([tmp_path / "flat__kfac", tmp_path / "flat__adam"]), tmp_path / "out", "t",
                   "dataset", "optimizer")
    assert "No problem left" in (tmp_path / "out" / "profiles.md").read_text()
    assert not (tmp_path / "out" / "profiles.csv").exists()  # no stale table from the earlier report
