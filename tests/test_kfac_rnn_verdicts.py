"""Verdict rules for Martens, Ba & Johnson (2018) §4 on hand-made runs whose answers are known."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from secondorder.experiments import kfac_rnn_verdicts as kv
from secondorder.experiments.runner import Cell
from secondorder.experiments.verdicts import HELD, INCONCLUSIVE, NOT_HELD
from secondorder.report.runs import Run


def run(errors: list[float], seconds_per_update: float = 1.0, every: int = 10) -> Run:
    """Evaluated every ``every`` updates; training perplexity = ``errors``, cross-entropy the same numbers."""
    iterations = [every * i for i in range(len(errors))]
    times = [seconds_per_update * i for i in iterations]
    metrics = pd.DataFrame({"iteration": iterations, "wall_time_s": times, "train_error": errors,
                            "train_loss": errors})
    summary = {"status": "completed", "iteration": iterations[-1], "wall_time_s": times[-1],
               "final": {"train_error": errors[-1]}}
    return Run(Path("/nonexistent"), summary, metrics)


SETTLED = [500.0, 200, 150, 140, 140, 140]


def scaled(values: list[float], factor: float) -> list[float]:
    return [v * factor for v in values]


def problem(kfac_factor: float = 0.5, kfac_cost: float = 1.8, adam_cost: float = 1.0) -> dict[str, Run]:
    curves = {f"kfac_{o}": run(scaled(SETTLED, kfac_factor), kfac_cost) for o in kv.OPTIONS}
    curves.update(adam=run(SETTLED, adam_cost), sgd_momentum=run(scaled(SETTLED, 1.2), 1.0))
    return curves


def test_progress_per_update_and_per_second() -> None:
    table = {"ptb_word": problem(), "ptb_char": problem(kfac_cost=2.0)}
    assert kv.progress(table, "iteration").verdict == HELD
    assert kv.progress(table, "wall_time_s").verdict == HELD  # K-FAC's 70 at 90 s vs Adam's 140 at 50 s
    slow = {"ptb_word": problem(kfac_factor=0.95)}  # only 5 % below Adam per update: not "much more"
    assert kv.progress(slow, "iteration").verdict == NOT_HELD
    costly = {"ptb_word": problem(kfac_factor=0.9, kfac_cost=20.0)}  # at 50 s K-FAC has made 2 updates
    verdict = kv.progress(costly, "wall_time_s")
    assert verdict.verdict == NOT_HELD and "K-FAC indep 450" in verdict.measured
    assert kv.progress({"ptb_word": {"adam": run(SETTLED)}}, "iteration").verdict == INCONCLUSIVE


def test_a_diverged_run_leaves_the_comparison_named_and_a_diverged_option_fails() -> None:
    """The copy task's SGD at lr 1 diverged at update 10 (the evidence runs): comparing everything there, before
    any method had moved, said nothing; the comparison is with the baselines that trained."""
    curves = problem()
    curves["sgd_momentum"] = run([500.0, 9e9])
    curves["sgd_momentum"].summary["status"] = "diverged"
    verdict = kv.progress({"dnc_copy": curves}, "iteration")
    assert verdict.verdict == HELD and "sgd_momentum diverged at update 10" in verdict.measured
    assert "at 50 updates" in verdict.measured  # Adam's and K-FAC's common end, not SGD's 10
    curves["kfac_option2"].summary["status"] = "diverged"
    verdict = kv.progress({"dnc_copy": curves}, "iteration")
    assert verdict.verdict == NOT_HELD and "K-FAC option2 diverged" in verdict.measured


def test_update_cost_against_the_papers_ratios() -> None:
    table = {"ptb_word": problem(kfac_cost=1.8), "ptb_char": problem(kfac_cost=2.0)}
    verdict = kv.update_cost(table)
    assert verdict.verdict == HELD and "option2 ×1.80 a sgd_momentum update (paper ×1.8)" in verdict.measured
    verdict = kv.update_cost({"ptb_char": problem(kfac_cost=5.0)})  # ×5 vs the paper's ×2: more than 1.5× off
    assert verdict.verdict == NOT_HELD and "asynchronously" in verdict.why


def test_layer_norm_helps_adam_and_hurts_sgd() -> None:
    word = {**problem(), "adam_ln": run(scaled(SETTLED, 0.7)), "sgd_momentum_ln": run(scaled(SETTLED, 1.5))}
    assert kv.layer_norm_effect({"ptb_word": word}).verdict == HELD
    word["sgd_momentum_ln"] = run(scaled(SETTLED, 1.0))  # below SGD's 1.2: layer norm helped SGD
    assert kv.layer_norm_effect({"ptb_word": word}).verdict == NOT_HELD
    assert kv.layer_norm_effect({}).verdict == INCONCLUSIVE


def test_tuned_runs_stand_for_their_options() -> None:
    plain, tuned = run(SETTLED), run(scaled(SETTLED, 0.5))
    cells = [Cell(f"ptb_char__{m}", [], Path(m), {"problem": "ptb_char", "method": m})
             for m in ("kfac_indep", "kfac_indep_tuned")]
    table = kv.by_problem(cells, {"ptb_char__kfac_indep": [plain], "ptb_char__kfac_indep_tuned": [tuned]})
    assert table == {"ptb_char": {"kfac_indep": tuned}}
