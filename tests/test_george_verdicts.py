"""Verdict rules for George (2017) §4.1 and §6.6 on hand-made runs and search tables whose answers are known."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from secondorder.experiments import george_verdicts as gv
from secondorder.experiments.runner import Cell
from secondorder.experiments.verdicts import HELD, INCONCLUSIVE, NOT_HELD
from secondorder.report.runs import Run


def run(train: list[float], test: list[float] | None = None) -> Run:
    """Evaluated every 10 s (and 10 iterations); test defaults to train + 1."""
    times = [10.0 * i for i in range(len(train))]
    test = test or [v + 1 for v in train]
    metrics = pd.DataFrame({"iteration": [10 * i for i in range(len(train))], "wall_time_s": times,
                            "train_error": train, "test_error": test, "train_loss": train})
    summary = {"status": "completed", "iteration": 10 * (len(train) - 1), "wall_time_s": times[-1],
               "final": {"train_error": train[-1]}}
    return Run(Path("/nonexistent"), summary, metrics)


FLAT = [100.0, 20, 10, 10, 10, 10]  # settled over its last 20 % of time


def scaled(values: list[float], factor: float) -> list[float]:
    return [v * factor for v in values]


def search_csv(tmp_path: Path, means: dict[str, float], spread: float = 0.1, n: int = 10) -> Path:
    rows = [(p, r, m + spread * ((-1) ** r)) for p, m in means.items() for r in range(n)]
    path = tmp_path / "search.csv"
    pd.DataFrame(rows, columns=["procedure", "repetition", "best_loss"]).to_csv(path, index=False)
    return path


def test_search_ordering(tmp_path: Path) -> None:
    held = gv.search_ordering(search_csv(tmp_path, {"grid": 13.6, "random": 13.5, "biased": 13.3}))
    assert held.verdict == HELD and "biased 26.6" in held.measured  # George's scale: ×2
    reversed_ = gv.search_ordering(search_csv(tmp_path, {"grid": 13.0, "random": 13.5, "biased": 13.3}))
    assert reversed_.verdict == NOT_HELD and "random above grid" in reversed_.why
    close = gv.search_ordering(search_csv(tmp_path, {"grid": 13.6, "random": 13.59, "biased": 13.3}))
    assert close.verdict == INCONCLUSIVE and "random vs grid" in close.why
    assert gv.search_ordering(tmp_path / "absent.csv").verdict == INCONCLUSIVE


def test_mean_only_batch_norm_must_be_lowest_on_both_sets() -> None:
    curves = {"mean_only_bn": run(FLAT), "centered_sgd": run(scaled(FLAT, 1.2)), "sgd": run(scaled(FLAT, 1.5))}
    assert gv.mean_only_bn_best_centred(curves).verdict == HELD
    worse_test = {**curves, "mean_only_bn": run(FLAT, test=[200.0] * 6)}
    assert gv.mean_only_bn_best_centred(worse_test).verdict == NOT_HELD
    assert gv.mean_only_bn_best_centred({"sgd": run(FLAT)}).verdict == INCONCLUSIVE


def test_second_order_similar_and_far_ahead_of_the_baselines() -> None:
    curves = {"kfac": run(FLAT), "acp": run(scaled(FLAT, 1.1)), "acp_fixed_alpha": run(scaled(FLAT, 1.2)),
              "bn": run(scaled(FLAT, 2.0)), "sgd": run(scaled(FLAT, 3.0))}
    similar, ahead = gv.second_order_similar_and_ahead(curves)
    assert similar.verdict == HELD and "×1.20" in similar.measured
    assert ahead.verdict == HELD and "×1.67" in ahead.measured  # bn 20 / acp_fixed_alpha 12
    curves["acp"] = run(scaled(FLAT, 1.9))
    similar, ahead = gv.second_order_similar_and_ahead(curves)
    assert similar.verdict == NOT_HELD and ahead.verdict == NOT_HELD  # ×1.9 spread; margin 20 / 19
    assert all(v.verdict == INCONCLUSIVE for v in gv.second_order_similar_and_ahead({"kfac": run(FLAT)}))
    stuck = {n: run(scaled(FLAT, 5.0)) for n in ("kfac", "acp", "acp_fixed_alpha", "sgd")}  # all on SGD's plateau
    stuck["bn"] = run(FLAT)
    similar, _ = gv.second_order_similar_and_ahead(stuck)
    assert similar.verdict == INCONCLUSIVE and "plain SGD" in similar.why
    stuck["acp_fixed_alpha"] = run(scaled(FLAT, 4.5))  # one just off the plateau (the evidence runs: 47 vs 52.5)
    similar, _ = gv.second_order_similar_and_ahead(stuck)
    assert similar.verdict == INCONCLUSIVE and "kfac, acp not below" in similar.why


def test_acp_best_on_the_test_set_needs_the_lowest_minimum_reached_first() -> None:
    turning = [5.0, 3.0, 2.0, 2.5, 3.0, 3.5]  # minimum at 20 s, then rising (overfitting, as in the thesis)
    curves = {"acp": run(FLAT, test=turning), "kfac": run(FLAT, test=[5.0, 4.0, 2.2, 2.3, 2.6, 2.8]),
              "sgd": run(FLAT, test=[5.0, 4.5, 4.0, 3.8, 3.9, 4.0])}
    assert gv.acp_best_test(curves).verdict == HELD
    early_kfac = {**curves, "kfac": run(FLAT, test=[5.0, 2.1, 2.2, 2.3, 2.6, 2.8])}  # within ×1.25, sooner
    assert gv.acp_best_test(early_kfac).verdict == NOT_HELD
    lower_sgd = {**curves, "sgd": run(FLAT, test=[5.0, 4.0, 3.0, 1.5, 1.6, 1.7])}
    assert gv.acp_best_test(lower_sgd).verdict == NOT_HELD
    still_falling = {**curves, "sgd": run(FLAT, test=[5.0, 4.0, 3.0, 2.0, 1.8, 1.5])}
    assert gv.acp_best_test(still_falling).verdict == INCONCLUSIVE
    not_started = {n: run([100.0], test=[297.2]) for n in ("acp", "kfac", "sgd")}  # runs still at their start
    assert gv.acp_best_test(not_started).verdict == INCONCLUSIVE
    tie = {**curves, "kfac": run(FLAT, test=turning)}
    assert gv.acp_best_test(tie).verdict == INCONCLUSIVE


def test_method_runs_prefers_the_tuned_run() -> None:
    plain, tuned = run(FLAT), run(scaled(FLAT, 0.5))
    cells = [Cell(f"mnist__{m}", [], Path(m), {"problem": "mnist", "method": m}) for m in ("sgd", "sgd_tuned")]
    curves = gv.method_runs(cells, {"mnist__sgd": [plain], "mnist__sgd_tuned": [tuned]})
    assert curves == {"sgd": tuned}
