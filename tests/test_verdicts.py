"""Verdicts (``verdicts.md``, the results/README.md table) and the Table 4.3 claims judged on hand-made runs whose
answers are known: an HF run that overfits, one that does not, a line search that shortens steps."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from secondorder.experiments import table_4_3_verdicts as t43
from secondorder.experiments.hooks import Context
from secondorder.experiments.spec import load_spec
from secondorder.experiments.verdicts import (
    BEGIN,
    END,
    HELD,
    INCONCLUSIVE,
    NOT_HELD,
    Verdict,
    read_verdicts,
    update_results_readme,
    write_verdicts,
)
from secondorder.report.runs import Run


def run(train: list[float], test: list[float], every_s: float = 30.0, steps: list[float] | None = None) -> Run:
    """A run evaluated every ``every_s`` seconds; ``steps``: the line search's step per logged iteration."""
    times = [every_s * k for k in range(len(train))]
    metrics = pd.DataFrame({"iteration": range(len(train)), "wall_time_s": times, "train_error": train,
                            "test_error": test})
    if steps is not None:
        metrics = pd.concat([metrics, pd.DataFrame({"iteration": range(len(steps)), "step_size": steps})])
    return Run(Path("fake"), {"wall_time_s": times[-1], "status": "completed"}, metrics)


FALLING = [10.0, 5.0, 3.0, 2.0, 1.5, 1.2]  # still falling at the end: 1.5 → 1.2 over the last fifth of the time
SETTLED = [10.0, 5.0, 3.0, 2.0, 1.25, 1.2]  # settled: 1.25 → 1.2 (4 %)
OVERFITTING_TEST = [10.5, 5.5, 3.6, 3.2, 3.4, 3.7]  # lowest 3.2, ends 15.6 % above it
FLAT_TEST = [10.5, 5.5, 3.6, 3.2, 3.1, 3.05]


def by_verdict(verdicts: list[Verdict]) -> dict[str, str]:
    return {v.claim.split(":")[0] + ":" + v.claim.split(":")[1][:30]: v.verdict for v in verdicts}


def test_overfitting_is_held_when_test_rises_while_train_falls_and_not_held_otherwise() -> None:
    runs = {("mnist", "rand_hf"): [run(FALLING, OVERFITTING_TEST)], ("mnist", "pt_hf"): [run(FALLING,
                                                                                            OVERFITTING_TEST)]}
    held = t43.overfits(runs, "mnist", "MNIST", ("rand_hf", "pt_hf"))
    assert held.verdict == HELD and "+15.6 %" in held.measured
    runs[("mnist", "pt_hf")] = [run(SETTLED, FLAT_TEST)]
    refused = t43.overfits(runs, "mnist", "MNIST", ("rand_hf", "pt_hf"))
    assert refused.verdict == NOT_HELD and "Checked before concluding" in refused.why and "test_hf.py" in refused.why
    runs[("mnist", "pt_hf")] = [run(FALLING, FLAT_TEST)]  # the same, but the run had not settled
    unsettled = t43.overfits(runs, "mnist", "MNIST", ("rand_hf", "pt_hf"))
    assert unsettled.verdict == INCONCLUSIVE and "mnist PT+HF train 1.5 → 1.2" in unsettled.why
    assert t43.overfits({}, "mnist", "MNIST", ("rand_hf",)).verdict == INCONCLUSIVE


def test_curves_hf_against_ncg_at_equal_time_and_the_time_to_reach_ncgs_error() -> None:
    ncg = run([20.0, 5.0, 2.0, 1.5, 1.2, 1.0], [20.0, 5.0, 2.1, 1.6, 1.3, 1.1])
    hf = run([25.0, 3.0, 1.0, 0.5, 0.3, 0.2], [25.0, 3.1, 1.1, 0.6, 0.4, 0.3])
    verdicts = t43.curves_claims({("curves", "pt_ncg"): [ncg], ("curves", "rand_hf"): [hf],
                                  ("curves", "pt_hf"): [hf]})
    first, efficiency, pretraining, no_overfit = verdicts
    assert first.verdict == HELD and "RAND+HF 0.2, PT+NCG 1 (ratio 5)" in first.measured
    assert efficiency.verdict == HELD and "after 60 s" in efficiency.measured  # HF's 1.0 at the third evaluation
    assert pretraining.verdict == HELD
    assert no_overfit.verdict == INCONCLUSIVE and "no overfitting so far" in no_overfit.why  # HF 0.3 → 0.2
    slow = t43.curves_claims({("curves", "pt_ncg"): [hf], ("curves", "rand_hf"): [ncg], ("curves", "pt_hf"): [hf]})
    assert [v.verdict for v in slow[:3]] == [INCONCLUSIVE] * 3  # RAND+HF still falling; PT+HF 5× better
    assert "still falling" in slow[0].why
    settled = run([20.0, 5.0, 2.0, 1.5, 1.02, 1.0], [20.0, 5.0, 2.1, 1.6, 1.3, 1.1])
    lost = t43.curves_claims({("curves", "pt_ncg"): [hf], ("curves", "rand_hf"): [settled],
                              ("curves", "pt_hf"): [hf]})
    assert [v.verdict for v in lost[:2]] == [NOT_HELD, NOT_HELD]
    both_settled = t43.curves_claims({("curves", "pt_ncg"): [hf], ("curves", "rand_hf"): [settled],
                                      ("curves", "pt_hf"): [settled]})
    assert both_settled[3].verdict == HELD


def test_the_prior_and_pretraining_compare_lowest_test_errors() -> None:
    runs = {("mnist", "rand_hf"): [run(SETTLED, OVERFITTING_TEST)], ("mnist_l2", "rand_hf"): [run(SETTLED,
                                                                                                  FLAT_TEST)],
            ("mnist", "pt_hf"): [run(SETTLED, FLAT_TEST)], ("mnist_l2", "pt_hf"): [run(SETTLED, FLAT_TEST)]}
    assert t43.prior_helps(runs, "mnist_l2", "mnist", "MNIST*", "x", ("rand_hf",)).verdict == HELD
    assert t43.prior_helps(runs, "mnist_l2", "mnist", "MNIST*", "x", ("rand_hf", "pt_hf")).verdict == NOT_HELD
    assert t43.pretraining_generalises(runs).verdict == NOT_HELD  # MNIST*: PT+HF 3.05 = RAND+HF 3.05
    runs[("mnist_l2", "rand_hf")] = [run(FALLING, FLAT_TEST)]  # lower with the prior, but not yet converged
    unconverged = t43.prior_helps(runs, "mnist_l2", "mnist", "MNIST*", "x", ("rand_hf",))
    assert unconverged.verdict == INCONCLUSIVE and "the rule gives 'held'" in unconverged.why


def test_the_line_search_counts_steps_below_one_over_every_hf_run() -> None:
    runs = {("curves", "rand_hf"): [run(FALLING, FLAT_TEST, steps=[1.0] * 18 + [0.8, 0.64])],
            ("curves", "pt_ncg"): [run(FALLING, FLAT_TEST, steps=[0.1] * 50)]}  # NCG's steps do not count
    verdict = t43.line_search_rarely_shortens(runs)
    assert verdict.verdict == HELD and "2 of 20 HF iterations (10.0 %)" in verdict.measured
    runs[("curves", "pt_hf")] = [run(FALLING, FLAT_TEST, steps=[0.5] * 10 + [0.0] * 3)]
    often = t43.line_search_rarely_shortens(runs)
    assert often.verdict == NOT_HELD and "12 of 33" in often.measured and "3 rejected" in often.measured
    no_steps = t43.line_search_rarely_shortens({("curves", "rand_hf"): [run(FALLING, FLAT_TEST)]})
    assert no_steps.verdict == INCONCLUSIVE  # no step_size logged: nothing to judge (and no crash)


def test_efficiency_without_evaluations_is_inconclusive_not_refuted() -> None:
    blank = Run(Path("fake"), {"wall_time_s": 900.0}, pd.DataFrame({"iteration": [1], "wall_time_s": [1.0],
                                                                     "train_error": [float("nan")]}))
    ncg = run([20.0, 5.0, 2.0, 1.5, 1.02, 1.0], FLAT_TEST)
    verdicts = t43.curves_claims({("curves", "pt_ncg"): [ncg], ("curves", "rand_hf"): [blank],
                                  ("curves", "pt_hf"): [blank]})
    assert [v.verdict for v in verdicts] == [INCONCLUSIVE] * 4


def test_absolute_numbers_are_inconclusive_on_stand_ins_and_compared_in_full() -> None:
    spec = load_spec("table-4.3")
    runs = {("curves", "rand_hf"): [run([1.0, 0.12], [1.0, 0.21])], ("curves", "pt_ncg"): [run([1.0, 0.7],
                                                                                               [3.0, 2.0])]}
    stand_in = t43.absolute_numbers(runs, Context(spec, spec.profile("evidence"), Path(), Path(), Path()))
    assert stand_in.verdict == INCONCLUSIVE and "PROFILE=full" in stand_in.why
    full = t43.absolute_numbers(runs, Context(spec, spec.profile("full"), Path(), Path(), Path()))
    assert full.verdict == NOT_HELD and "CURVES pt_ncg" in full.why and "CURVES rand_hf" not in full.why


def test_verdicts_md_and_the_results_readme_table(tmp_path: Path) -> None:
    rows = [Verdict("A claim (§1)", "1 vs 2", HELD, "because"), Verdict("B | pipe", "3", NOT_HELD, "checked x")]
    out = tmp_path / "results" / "target" / "evidence"
    out.mkdir(parents=True)
    (out / "notes.md").write_text("analysis")
    lines = write_verdicts(out, "Title", "evidence", "Runs: 2.", rows)
    text = (out / "verdicts.md").read_text()
    assert "| A claim (§1) | 1 vs 2 | **held** | because |" in text and "B \\| pipe" in text
    assert "[`notes.md`](notes.md)" in text and "1 held, 1 not held" in lines[2]
    assert read_verdicts(out / "verdicts.csv") == rows
    quick = tmp_path / "results" / "target" / "quick"
    quick.mkdir()
    write_verdicts(quick, "Title", "quick", "Runs: 2.", rows)
    assert {v.verdict for v in read_verdicts(quick / "verdicts.csv")} == {INCONCLUSIVE}
    readme = tmp_path / "results" / "README.md"
    readme.write_text(f"intro\n{BEGIN}\nold\n{END}\nafter\n")
    assert update_results_readme(tmp_path / "results", log=lambda _: None)
    text = readme.read_text()
    assert "old" not in text and text.endswith(f"{END}\nafter\n")
    assert "| [target / evidence](target/evidence/verdicts.md) (Runs: 2.) | A claim (§1) | **held** |" in text
    assert "target / quick" not in text  # smoke tests judge nothing
    readme.write_text("no markers")
    assert not update_results_readme(tmp_path / "results", log=lambda _: None)


def test_a_verdict_must_be_one_of_the_three() -> None:
    with pytest.raises(ValueError, match="verdict must be one of"):
        Verdict("c", "m", "probably", "w")
