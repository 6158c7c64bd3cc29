"""Verdict rules for the thesis's K-FAC autoencoder claims (§6.13) on hand-made runs whose answers are known."""

from __future__ import annotations

from secondorder.experiments import kfac_verdicts as kv
from secondorder.experiments.verdicts import HELD, INCONCLUSIVE, NOT_HELD
from tests.test_kfra_verdicts import run

# K-FAC: 10 iterations per evaluation, 1 s per iteration. NAG: 100 iterations per evaluation, 0.1 s per iteration.
KFAC = [100.0, 10.0, 5.0, 3.0, 2.0, 1.5]
NAG_SLOW = [100.0 - 1.0 * i for i in range(60)]  # falls by 1 per 100 iterations: never reaches 1.5 in 5 900


def nag(errors: list[float]):
    return run(errors, times=[10.0 * i for i in range(len(errors))], iterations=[100 * i for i in range(len(errors))])


def table(kfac=KFAC, tri=None, nomom=None, nags=(NAG_SLOW,)) -> dict:
    curves = {"kfac_blockdiag": [run(kfac)], "kfac_tridiag": [run(tri or kfac)],
              "kfac_no_momentum": [run(nomom or [100.0, 90, 80, 70, 60, 50])]}
    curves.update({f"nag_lr{i}": [nag(list(errors))] for i, errors in enumerate(nags)})
    return {"curves": curves}


def test_orders_of_magnitude_per_iteration() -> None:
    verdict = kv.kfac_orders_of_magnitude(table())  # NAG never reaches 1.5 in 5 900 ≥ 10 × 50 iterations
    assert verdict.verdict == HELD and "no NAG run reached it in 5900" in verdict.measured
    quick_nag = [100.0, 50.0, 1.0] + [0.5] * 10  # reaches 1.5 at iteration 200: ×4 K-FAC's 50
    verdict = kv.kfac_orders_of_magnitude(table(nags=(NAG_SLOW, quick_nag)))
    assert verdict.verdict == NOT_HELD and "×4.0" in verdict.measured
    short = [100.0, 99.0, 98.0]  # NAG ran 200 iterations only: censored
    assert kv.kfac_orders_of_magnitude(table(nags=(short,))).verdict == INCONCLUSIVE


def test_per_second_rules_use_the_best_nag_at_the_common_end() -> None:
    faster = kv.RULES[1]
    assert faster(table()).verdict == HELD  # at 50 s: K-FAC 1.5 vs NAG 95
    assert faster(table(nags=(NAG_SLOW, [100.0, 0.5, 0.4, 0.3, 0.2, 0.1]))).verdict == NOT_HELD
    not_significantly = kv.RULES[4]
    assert not_significantly(table(nomom=[100.0, 98, 97, 96, 96, 96])).verdict == HELD  # 96 vs NAG 95
    verdict = not_significantly(table(nomom=[100.0, 50, 20, 10, 5, 2]))
    assert verdict.verdict == NOT_HELD and "kfac_no_momentum 2" in verdict.measured


def test_tridiagonal_progress_per_iteration_and_per_second() -> None:
    diag, tri = [100.0, 10.0, 5.0, 3.0, 2.0, 1.0], [100.0, 5.0, 2.0, 1.0, 0.9, 0.8]  # tri reaches diag's 1.0 at 30
    verdict = kv.tridiagonal_progress(table(kfac=diag, tri=tri))
    assert verdict.verdict == HELD and "×1.67" in verdict.measured  # 50 / 30
    same = kv.tridiagonal_progress(table(tri=KFAC))
    assert same.verdict == NOT_HELD and "×1.00" in same.measured
    assert kv.tridiagonal_per_second(table(kfac=diag, tri=tri)).verdict == HELD  # 0.8 vs 1.0 at 50 s
    assert kv.tridiagonal_per_second(table(tri=[100.0, 1.0, 0.5, 0.2, 0.1, 0.05])).verdict == NOT_HELD


def test_rules_on_an_empty_table_are_inconclusive() -> None:
    assert all(rule({}).verdict == INCONCLUSIVE for rule in kv.RULES)
