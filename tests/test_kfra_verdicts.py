"""Verdict rules for Botev et al. (2017) §5 on hand-made runs whose answers are known."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from secondorder.experiments import kfra_verdicts as kv
from secondorder.experiments.verdicts import HELD, INCONCLUSIVE, NOT_HELD
from secondorder.report.runs import Run


def run(errors: list[float], times: list[float] | None = None, iterations: list[int] | None = None,
        column: str = "train_error", status: str = "completed") -> Run:
    """A run evaluated at ``iterations`` (default 0, 10, 20, …) and ``times`` (default = iterations)."""
    iterations = iterations or [10 * i for i in range(len(errors))]
    times = times or [float(i) for i in iterations]
    metrics = pd.DataFrame({"iteration": iterations, "wall_time_s": times, "train_error": errors,
                            "train_loss": errors})
    summary = {"status": status, "iteration": iterations[-1], "wall_time_s": times[-1],
               "final": {"train_error": errors[-1]}}
    return Run(Path("/nonexistent") / column, summary, metrics)


SETTLED = [100, 20, 10, 9.9, 9.9, 9.9]  # flat over the last 20 % of its time
FLAT_ADAM = [100, 40, 30, 29.9, 29.9, 29.9]


def autoencoder(kfra=SETTLED, kfac=None, adam=FLAT_ADAM, adam_grid=FLAT_ADAM) -> kv.Curves:
    kfac = kfac or [e * 1.2 for e in kfra]
    return {"curves": {"kfra": [run(kfra)], "kfac": [run(kfac)], "adam_default": [run(adam)],
                       "adam_lr2^-9_T1": [run(adam_grid)]}}


def test_second_order_beats_tuned_adam_or_not() -> None:
    assert kv.beats_tuned_adam(autoencoder()).verdict == HELD
    tuned = [100, 8, 5, 4.9, 4.9, 4.9]  # the grid's best beats both second-order runs
    verdict = kv.beats_tuned_adam(autoencoder(adam_grid=tuned))
    assert verdict.verdict == NOT_HELD and "adam_lr2^-9_T1" in verdict.measured and "Checked" in verdict.why
    falling = [100, 80, 60, 40, 20, 9.0]  # KFRA still falling fast at the end: inconclusive, not "not held"
    verdict = kv.beats_tuned_adam(autoencoder(kfra=falling, kfac=falling, adam_grid=tuned))
    assert verdict.verdict == INCONCLUSIVE and "still improving" in verdict.why


def test_kfra_speed_up_over_kfac_per_iteration_needs_five_percent() -> None:
    assert kv.kfra_faster_than_kfac(autoencoder(kfac=[e * 1.2 for e in SETTLED]), "iteration").verdict == HELD
    verdict = kv.kfra_faster_than_kfac(autoencoder(kfac=[e * 1.02 for e in SETTLED]), "iteration")
    assert verdict.verdict == NOT_HELD and "9.9 vs K-FAC 10.1" in verdict.measured


def test_kfra_speed_up_per_second_compares_at_the_earliest_common_end() -> None:
    table = autoencoder()
    table["curves"]["kfac"] = [run([100, 5.0, 1.0], times=[0.0, 25.0, 200.0])]  # lower, but only after 50 s
    verdict = kv.kfra_faster_than_kfac(table, "wall_time_s")
    assert verdict.verdict == NOT_HELD and "at wall_time_s 50" in verdict.measured and "K-FAC 5" in verdict.measured


def test_equivalent_cost_per_update() -> None:
    table = autoencoder()
    assert kv.equivalent_cost(table).verdict == HELD
    table["curves"]["kfac"] = [run(SETTLED, times=[3.0 * t for t in range(0, 60, 10)])]  # 3 × KFRA's time
    verdict = kv.equivalent_cost(table)
    assert verdict.verdict == NOT_HELD and "×0.33" in verdict.measured


def test_four_times_faster_on_a_cpu() -> None:
    quick = [100, 29, 20, 10, 9.9, 9.9]  # reaches Adam's final 29.9 at 10 s; Adam's run ends at 50 s: ×5
    assert kv.cpu_four_times_faster(autoencoder(kfra=quick)).verdict == HELD
    slow = [100, 40, 35, 31, 29.5, 29.5]  # reaches it only at 40 s: ×1.25
    verdict = kv.cpu_four_times_faster(autoencoder(kfra=slow))
    assert verdict.verdict == NOT_HELD and "×1.2" in verdict.measured
    still = [100, 40, 35, 31, 29.5, 20.0]  # still improving: a convergence claim is inconclusive either way
    assert kv.cpu_four_times_faster(autoencoder(kfra=still)).verdict == INCONCLUSIVE


def oddeven(kfac=None, kflr=None, adam=(1.0, 0.5, 0.3, 0.29, 0.29, 0.29)) -> kv.Curves:
    base = [1.0, 0.1, 1e-3, 1e-5, 1e-7, 1e-7]
    return {"oddeven": {"kflr": [run(kflr or base)], "kfra": [run(base)], "kfac": [run(kfac or base)],
                        "adam_default": [run(list(adam))]}}


def test_classifier_rules() -> None:
    assert kv.classifier_beats_adam(oddeven(), "iteration").verdict == HELD
    assert kv.classifier_beats_adam(oddeven(adam=(1.0, 1e-3, 1e-8, 1e-9, 1e-9, 1e-9)), "wall_time_s").verdict == \
        NOT_HELD
    assert kv.kfac_like_kflr(oddeven(kfac=[1.0, 0.11, 1.1e-3, 1.1e-5, 1.1e-7, 1.1e-7])).verdict == HELD
    verdict = kv.kfac_like_kflr(oddeven(kfac=[1.0, 0.3, 1e-2, 1e-3, 1e-4, 1e-4]))
    assert verdict.verdict == NOT_HELD and "×1000" in verdict.measured
    # evaluations on a time grid rarely share an iteration: K-FAC's curve is interpolated at KFLR's iterations
    staggered = oddeven()
    staggered["oddeven"]["kfac"] = [run([1.0, 0.1, 1e-2, 1e-4, 1e-6, 1e-8], iterations=[0, 10, 15, 25, 35, 45])]
    verdict = kv.kfac_like_kflr(staggered)  # log-linear: K-FAC at 20, 30, 40 is 1e-3, 1e-5, 1e-7, as KFLR
    assert verdict.verdict == HELD and "at KFLR's 4 evaluations" in verdict.measured
    assert kv.near_perfect_loss(oddeven()).verdict == HELD
    assert kv.near_perfect_loss(oddeven(kfac=[1.0, 0.5, 0.1, 0.01, 1e-3, 1e-3])).verdict == NOT_HELD


def test_missing_problems_are_inconclusive_and_every_rule_runs_on_an_empty_table() -> None:
    assert kv.faces_adam_default(autoencoder()).verdict == INCONCLUSIVE
    assert all(rule({}).verdict == INCONCLUSIVE for rule in kv.RULES)
