"""Verdicts on thesis §4.12 (Table 4.3, Figure 4.5) from the runs of ``make reproduce-table-4.3``.

The claims, each with the thesis's numbers (Martens 2016, Table 4.3 "train, test"):

- CURVES: HF from a random start reaches a far lower training error than pre-training + NCG (0.11 vs 0.74), and
  does so in less computation time (Fig. 4.5); pre-training gives HF little (PT+HF 0.10); CURVES does not overfit.
- MNIST, MNIST*: HF, with or without pre-training, fits the training set better than PT+NCG (1.64 / 1.63 vs 2.31;
  with the ℓ2 prior 1.75 / 1.60 vs 2.07), and pre-training improves HF's test error (2.46 vs 2.78; 2.28 vs 2.55).
- MNIST and FACES overfit under HF without a prior (the runs were stopped at the onset of overfitting, §4.12); the
  ℓ2 prior lowers HF's test error (MNIST 2.78 → 2.55, FACES 139 → 122), which on FACES brings it level with
  H&S's PT+NCG (124).
- The line search after CG-backtracking "would only rarely select a distance less than 1" (§4.12).
- The absolute numbers of Table 4.3 (the original data, run to convergence on a GPU for 1–18 hours).

Comparisons are at equal training time: the ``evidence`` profile gives the three methods of a row the same time
budget, pre-training included. "Fits better" compares the training errors at the end of that budget (``table.md``
reports each run at its lowest test error, the thesis's stopping point); claims about test error compare each run's
lowest. A comparison that goes against the thesis while a run was still improving at the end of its budget is
inconclusive, not "not held".
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import pandas as pd

from secondorder.experiments.hooks import Context
from secondorder.experiments.runner import Cell
from secondorder.experiments.verdicts import INCONCLUSIVE, Verdict, judged
from secondorder.report.references import references
from secondorder.report.runs import Run

Runs = dict[tuple[str, str], list[Run]]

OVERFIT_RISE = 0.02  # a test error ≥ 2 % above its minimum at the end of the run, train still falling: overfitting
NO_OVERFIT_RISE = 0.02  # CURVES "does not overfit": the final test error within 2 % of its minimum
LEVEL = 1.5  # "little difference" (PT+HF vs RAND+HF on CURVES): within a factor 1.5 either way
LEVEL_TEST = 0.05  # "comes level" on test (122 vs 124): at most 5 % above PT+NCG's
FAR = 2.0  # "far lower" (0.11 vs 0.74, 7×): at least 2× lower
RARELY = 0.10  # "rarely": at most 10 % of HF iterations with a line-search step below 1
TAIL, SETTLED = 0.2, 0.05  # a run has settled when its training error fell < 5 % over the last 20 % of its time

CHECKED = ("HF's oracle tests (tests/test_hf.py, tests/test_curvature.py: GGN products, CG, damping against dense "
           "float64 autograd), the cell's config against Table 4.2 and §4.12 (conf/experiment/table_4_3/), and the "
           "trajectory (figure-4.5.png and the <problem>_error_vs_time.png plots).")


def _median(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(finite) if finite else None


def _evaluations(run: Run) -> pd.DataFrame:
    return run.evaluations.dropna(subset=["test_error"]) if "test_error" in run.metrics else run.metrics[:0]


def final(runs: list[Run], split: str) -> float | None:
    """The median over seeds of ``split``'s error at each run's last evaluation (the end of its budget)."""
    return _median([float(e[f"{split}_error"].iloc[-1]) for e in map(_evaluations, runs) if not e.empty])


def common_end(*groups: list[Run]) -> float | None:
    """The earliest last-evaluation time over the runs: the time at which all of them can be compared (a run stops
    after the iteration that crosses its budget, so an HF run may end an iteration later than an NCG run)."""
    ends = [float(e.wall_time_s.iloc[-1]) for runs in groups for e in map(_evaluations, runs) if not e.empty]
    return min(ends) if ends else None


def at_time(runs: list[Run], split: str, time: float | None) -> float | None:
    """The median over seeds of ``split``'s error at each run's last evaluation at or before ``time`` (training
    time, pre-training included); the final evaluation when ``time`` is None."""
    values = []
    for evaluations in map(_evaluations, runs):
        upto = evaluations if time is None else evaluations[evaluations.wall_time_s <= time + 1e-9]
        if not upto.empty:
            values.append(float(upto[f"{split}_error"].iloc[-1]))
    return _median(values)


def lowest_test(runs: list[Run]) -> float | None:
    """The median over seeds of the lowest test error (the thesis's stopping point, as in ``table.md``)."""
    return _median([float(e.test_error.min()) for e in map(_evaluations, runs) if not e.empty])


def rise(runs: list[Run]) -> tuple[float | None, float | None]:
    """Overfitting: the final test error's rise above the run's lowest, as a fraction of the lowest, and the
    training error's change over the same stretch (negative: still falling); medians over seeds."""
    rises, train_changes = [], []
    for evaluations in map(_evaluations, runs):
        if len(evaluations) < 2:
            continue
        best = evaluations.test_error.idxmin()
        low, end = float(evaluations.test_error[best]), float(evaluations.test_error.iloc[-1])
        rises.append((end - low) / low)
        train_low = float(evaluations.train_error[best])
        train_changes.append((float(evaluations.train_error.iloc[-1]) - train_low) / train_low)
    return _median(rises), _median(train_changes)


def _fall_over_tail(run: Run, split: str) -> tuple[float, float] | None:
    """(error where the last :data:`TAIL` of the run's time starts, lowest error within that stretch) for
    ``split``; None for a run too short to have such a stretch."""
    evaluations = _evaluations(run)
    if len(evaluations) < 2:
        return None
    end_time, start_time = float(evaluations.wall_time_s.iloc[-1]), float(evaluations.wall_time_s.iloc[0])
    cut = end_time - TAIL * (end_time - start_time)
    before, within = evaluations[evaluations.wall_time_s <= cut], evaluations[evaluations.wall_time_s > cut]
    if before.empty or within.empty:
        return None
    return float(before[f"{split}_error"].iloc[-1]), float(within[f"{split}_error"].min())


def _still_falling(runs: Runs, cells: tuple[tuple[str, str], ...], split: str) -> str | None:
    """Which of the ``cells``' runs ``split`` error was still falling when the budget ended — its lowest within the
    last :data:`TAIL` of the time more than :data:`SETTLED` below where that stretch started — as text for a
    verdict (None: all settled, or rising)."""
    moving = []
    for cell in cells:
        for run in runs.get(cell, []):
            fall = _fall_over_tail(run, split)
            if fall is not None and fall[1] < (1 - SETTLED) * fall[0]:
                moving.append(f"{cell[0]} {cell[1].upper().replace('_', '+')} {split} {fall[0]:.3g} → {fall[1]:.3g}")
    if not moving:
        return None
    name = {"train": "training", "test": "test"}[split]
    return (f"{name} error was still falling by more than {SETTLED:.0%} over the last {TAIL:.0%} of the time ("
            + "; ".join(moving) + ")")


def improving(runs: Runs, cells: tuple[tuple[str, str], ...]) -> str | None:
    """Training error still falling at the end of the budget (see :func:`_still_falling`)."""
    return _still_falling(runs, cells, "train")


def test_improving(runs: Runs, cells: tuple[tuple[str, str], ...]) -> str | None:
    """Test error still falling at the end of the budget (see :func:`_still_falling`)."""
    return _still_falling(runs, cells, "test")


def unsettled(runs: Runs, cells: tuple[tuple[str, str], ...]) -> str | None:
    """Training or test error still falling at the end (:func:`improving`, :func:`test_improving`)."""
    found = [text for text in (improving(runs, cells), test_improving(runs, cells)) if text]
    return "; ".join(found) or None


def time_to_reach(runs: list[Run], target: float) -> float | None:
    """Median over seeds of the training time (pre-training included) of the first evaluation with training error
    ≤ ``target``, a run that never gets there counting as never; None when the median run never does."""
    times = []
    for evaluations in map(_evaluations, runs):
        hit = evaluations[evaluations.train_error <= target]
        times.append(float(hit.wall_time_s.iloc[0]) if not hit.empty else math.inf)
    value = statistics.median(times) if times else math.inf
    return None if math.isinf(value) else value


def short_steps(runs: list[Run]) -> tuple[int, int, int]:
    """HF iterations whose line search chose a step in (0, 1), those whose proposal was rejected (step 0: a
    non-finite or non-decreasing objective), and all HF iterations with a step logged."""
    logged = [r.metrics.step_size.dropna() for r in runs if "step_size" in r.metrics]
    if not logged:
        return 0, 0, 0
    steps = pd.concat(logged, ignore_index=True)
    return int(((steps > 0) & (steps < 1.0 - 1e-9)).sum()), int((steps <= 0).sum()), len(steps)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:+.1f} %"


def _budget(runs: list[Run]) -> str:
    times = [r.summary.get("wall_time_s") for r in runs]
    value = _median([float(t) for t in times if t is not None])
    return "—" if value is None else f"{value:.0f} s"


def _all(*values: float | None) -> bool:
    return all(v is not None for v in values)


def fits_better(runs: Runs, row: str, label: str) -> Verdict:
    """HF (RAND and PT) ends with a lower training error than PT+NCG at equal time."""
    groups = [runs.get((row, c), []) for c in ("pt_ncg", "rand_hf", "pt_hf")]
    end = common_end(*groups)
    ncg, rand, pt = (at_time(g, "train", end) for g in groups)
    measured = (f"train error at {_fmt(end, 4)} s of training, pre-training included (the budgets being equal): "
                f"PT+NCG {_fmt(ncg)}, RAND+HF {_fmt(rand)}, PT+HF {_fmt(pt)}")
    holds = (rand < ncg and pt < ncg) if _all(ncg, rand, pt) else None
    source = ("Table 4.3" if row != "faces" else "the issue's reading of §4.12; Table 4.3 gives no PT+NCG or PT+HF "
              "training error on FACES")
    return judged(f"{label}: HF, with or without pre-training, fits the training set better than PT+NCG "
                  f"({source})", measured, holds, "both HF runs end below PT+NCG in the same time",
                  "an HF run ends at or above PT+NCG in the same time.", CHECKED,
                  improving(runs, ((row, "rand_hf"), (row, "pt_hf"))))


def overfits(runs: Runs, row: str, label: str, columns: tuple[str, ...]) -> Verdict:
    """Without a prior the HF runs' test error rises ≥ OVERFIT_RISE above its minimum while train still falls."""
    parts, holds, short = [], True, []
    for column in columns:
        up, train = rise(runs.get((row, column), []))
        parts.append(f"{column.upper().replace('_', '+')}: test {_pct(up)} above its lowest, train {_pct(train)} "
                     "over the same stretch")
        if up is None or train is None:
            holds = None
        elif not (up >= OVERFIT_RISE and train < 0):
            short.append((row, column))
    holds = holds if holds is None else not short
    return judged(f"{label}: HF without a prior overfits — test error rises while training error falls; the thesis "
                  "stopped these runs at the onset of overfitting (§4.12)", "; ".join(parts), holds,
                  f"test rose ≥ {OVERFIT_RISE:.0%} above its lowest while training error kept falling",
                  f"not every HF run's test error rose {OVERFIT_RISE:.0%} above its lowest with training error "
                  "falling within the budget.", CHECKED, improving(runs, tuple(short)))


def prior_helps(runs: Runs, row: str, plain: str, label: str, thesis: str, columns: tuple[str, ...]) -> Verdict:
    """The ℓ2 prior lowers HF's lowest test error."""
    parts, holds = [], True
    for column in columns:
        without, with_prior = lowest_test(runs.get((plain, column), [])), lowest_test(runs.get((row, column), []))
        parts.append(f"{column.upper().replace('_', '+')} lowest test {_fmt(without)} without, {_fmt(with_prior)} "
                     "with the prior")
        holds = None if not _all(without, with_prior) or holds is None else holds and with_prior < without
    return judged(f"{label}: the ℓ2 prior lowers HF's test error ({thesis}; Table 4.3)", "; ".join(parts), holds,
                  "lower with the prior", "the prior did not lower HF's best test error at this budget.", CHECKED,
                  unsettled(runs, tuple((r, c) for r in (plain, row) for c in columns)), at_convergence=True)


def curves_claims(runs: Runs) -> list[Verdict]:
    ncg, rand, pt = (runs.get(("curves", c), []) for c in ("pt_ncg", "rand_hf", "pt_hf"))
    end = common_end(ncg, rand, pt)
    ncg_end, rand_end, pt_end = (at_time(g, "train", end) for g in (ncg, rand, pt))
    budget = f"at {_fmt(end, 4)} s"
    verdicts = [judged(
        "CURVES: HF from a random start reaches a far lower training error than PT+NCG (0.11 vs 0.74, Table 4.3)",
        f"train error {budget} of training (equal budgets, pre-training included): RAND+HF {_fmt(rand_end)}, "
        f"PT+NCG {_fmt(ncg_end)}" + (f" (ratio {ncg_end / rand_end:.2g})" if _all(ncg_end, rand_end) else ""),
        ncg_end >= FAR * rand_end if _all(rand_end, ncg_end) else None,
        f"RAND+HF ends ≥ {FAR:g}× below PT+NCG in the same time",
        f"RAND+HF does not end {FAR:g}× below PT+NCG in the same time.", CHECKED,
        improving(runs, (("curves", "rand_hf"),)))]
    reach = time_to_reach(rand, ncg_end) if ncg_end is not None else None
    ncg_time = end  # PT+NCG's error there is the target
    verdicts.append(judged(
        "CURVES: HF is the more efficient in computation time, pre-training included (Figure 4.5)",
        f"RAND+HF reached PT+NCG's training error at {_fmt(end, 4)} s ({_fmt(ncg_end)}) "
        + (f"after {_fmt(reach, 4)} s" if reach is not None else "not within its budget")
        + f"; PT+NCG needed {_fmt(ncg_time, 4)} s", (reach is not None and reach < ncg_time)
        if _all(ncg_end, rand_end, ncg_time) else None,
        "HF got there first", "HF did not reach PT+NCG's final training error sooner.", CHECKED,
        improving(runs, (("curves", "rand_hf"),))))
    level = (1 / LEVEL <= pt_end / rand_end <= LEVEL) if _all(pt_end, rand_end) else None
    ahead = "PT+HF" if _all(pt_end, rand_end) and pt_end < rand_end else "RAND+HF"
    verdicts.append(judged(
        "CURVES: pre-training gives HF little (PT+HF 0.10 vs RAND+HF 0.11, Table 4.3)",
        f"train error {budget} of training: PT+HF {_fmt(pt_end)}, RAND+HF {_fmt(rand_end)}", level,
        f"within a factor {LEVEL} of each other", f"{ahead} ends more than {LEVEL}× lower.", CHECKED,
        improving(runs, (("curves", "rand_hf"), ("curves", "pt_hf")))))
    claim = "CURVES does not overfit under HF (overfitting 'did happen for MNIST and FACES but not CURVES', §4.12)"
    parts, rising, missing = [], [], False
    for column, found in (("rand_hf", rand), ("pt_hf", pt)):
        up, train = rise(found)
        parts.append(f"{column.upper().replace('_', '+')}: final test {_pct(up)} above its lowest (train "
                     f"{_pct(train)} over the same stretch)")
        missing = missing or up is None
        if up is not None and train is not None and up >= NO_OVERFIT_RISE and train < 0:
            rising.append(column)
    moving = improving(runs, (("curves", "rand_hf"), ("curves", "pt_hf")))
    if not missing and not rising and moving:
        verdicts.append(Verdict(claim, "; ".join(parts), INCONCLUSIVE, f"no overfitting so far, but {moving} when "
                                "the budget ended; the thesis's claim is about runs taken to convergence"))
    else:
        verdicts.append(judged(claim, "; ".join(parts), None if missing else not rising,
                               f"test error within {NO_OVERFIT_RISE:.0%} of its lowest with training error settled",
                               f"test error rose ≥ {NO_OVERFIT_RISE:.0%} while training error fell "
                               f"({', '.join(rising)}).", CHECKED))
    return verdicts


def pretraining_generalises(runs: Runs) -> Verdict:
    parts, holds = [], True
    for row in ("mnist", "mnist_l2"):
        rand, pt = lowest_test(runs.get((row, "rand_hf"), [])), lowest_test(runs.get((row, "pt_hf"), []))
        parts.append(f"{row.upper().replace('_L2', '*')}: lowest test PT+HF {_fmt(pt)}, RAND+HF {_fmt(rand)}")
        holds = None if not _all(rand, pt) or holds is None else holds and pt < rand
    return judged("MNIST, MNIST*: pre-training improves HF's test error (2.46 vs 2.78; 2.28 vs 2.55, Table 4.3)",
                  "; ".join(parts), holds, "PT+HF's best test error is below RAND+HF's on both rows",
                  "RAND+HF's best test error is at or below PT+HF's at this budget.", CHECKED,
                  unsettled(runs, tuple((r, c) for r in ("mnist", "mnist_l2") for c in ("rand_hf", "pt_hf"))),
                  at_convergence=True)


def faces_prior_matches_ncg(runs: Runs) -> Verdict:
    plain, prior = lowest_test(runs.get(("faces", "rand_hf"), [])), lowest_test(runs.get(("faces_l2", "rand_hf"), []))
    ncg = lowest_test(runs.get(("faces", "pt_ncg"), []))
    measured = f"lowest test: RAND+HF {_fmt(plain)}, RAND+HF with the prior {_fmt(prior)}, PT+NCG {_fmt(ncg)}"
    holds = (plain > ncg and prior <= (1 + LEVEL_TEST) * ncg) if _all(plain, prior, ncg) else None
    return judged("FACES: without a prior HF generalises worse than PT+NCG (139 vs H&S's 124); with the ℓ2 prior "
                  "it comes level (122, Table 4.3)", measured, holds,
                  f"HF without the prior is worse on test than PT+NCG, and with it within {LEVEL_TEST:.0%} of it",
                  "the ordering on test differs at this budget.", CHECKED,
                  unsettled(runs, (("faces", "rand_hf"), ("faces_l2", "rand_hf"))), at_convergence=True)


def line_search_rarely_shortens(runs: Runs) -> Verdict:
    hf = [r for (_, column), found in runs.items() if column != "pt_ncg" for r in found]
    short, rejected, total = short_steps(hf)
    share = short / total if total else None
    return judged("The line search after CG-backtracking 'would only rarely select a distance less than 1' (§4.12)",
                  f"{short} of {total} HF iterations ({_pct(share)[1:]}) over every HF run took a step in (0, 1); "
                  f"{rejected} rejected the proposal (step 0)",
                  share <= RARELY if share is not None else None, f"at most {RARELY:.0%} of iterations",
                  "the line search shortened the step often.", CHECKED)


def absolute_numbers(runs: Runs, context: Context) -> Verdict:
    """On the original data at the thesis's budgets (``full``), each cell within a factor :data:`LEVEL` of the
    thesis's; on stand-ins or reduced budgets the numbers cannot be compared."""
    claim = "Table 4.3's numbers (e.g. CURVES RAND+HF 0.11 / 0.20), on H&S's data, runs of 1–18 h on a GPU (§4.12)"
    rand = runs.get(("curves", "rand_hf"), [])
    if context.profile.data != "real" or context.profile.reduced:
        return Verdict(claim, f"CURVES RAND+HF here: {_fmt(final(rand, 'train'))} / {_fmt(final(rand, 'test'))} "
                       f"after {_budget(rand)} (table.md has every cell)", INCONCLUSIVE,
                       "stand-in data and a reduced CPU budget cannot give the thesis's numbers; `make "
                       "reproduce-table-4.3 PROFILE=full` (the original data, the experiment files' budgets, a GPU) "
                       "is the run that settles them")
    pairs = []
    for row, columns in references()["table_4_3"]["rows"].items():
        for column, thesis in columns.items():
            found = runs.get((row, column), [])
            if column == "label" or not found or thesis[1] is None:
                continue
            pairs.append((f"{columns['label']} {column}", thesis[1], lowest_test(found)))
    off = [name for name, thesis, ours in pairs if ours is None or not 1 / LEVEL <= ours / thesis <= LEVEL]
    measured = "; ".join(f"{name} test {_fmt(ours)} (thesis {thesis})" for name, thesis, ours in pairs)
    return judged(claim, measured, not off if pairs else None, f"every test error within a factor {LEVEL}",
                  f"outside a factor {LEVEL}: {', '.join(off)}.", CHECKED)


CLAIMS: tuple[Callable[[Runs], list[Verdict]], ...] = (
    curves_claims,
    lambda r: [fits_better(r, "mnist", "MNIST"), fits_better(r, "mnist_l2", "MNIST*"), pretraining_generalises(r),
               overfits(r, "mnist", "MNIST", ("rand_hf", "pt_hf")),
               prior_helps(r, "mnist_l2", "mnist", "MNIST*", "2.78 → 2.55, 2.46 → 2.28", ("rand_hf", "pt_hf"))],
    lambda r: [fits_better(r, "faces", "FACES"), overfits(r, "faces", "FACES", ("rand_hf",)),
               prior_helps(r, "faces_l2", "faces", "FACES*", "139 → 122", ("rand_hf",)),
               faces_prior_matches_ncg(r), line_search_rarely_shortens(r)],
)


def verdicts(context: Context, cells: list[Cell], found: dict[str, list[Run]]) -> list[Verdict]:
    runs: Runs = {(c.labels["problem"], c.labels["method"]): found[c.name] for c in cells}
    return [v for claims in CLAIMS for v in claims(runs)] + [absolute_numbers(runs, context)]
