"""Verdicts on George (2017) from the runs of ``make reproduce-george``.

The claims (the thesis prints a table for §4.1 and figures with sentences for §6.6):

- §4.1: over repeated searches, biased random search finds a lower training loss than random search, and random
  search a lower one than a grid (27.23 ± 0.42 / 27.02 ± 0.28 / 26.61 ± 0.13).
- §6.6.1, Fig. 6.1: the best centred update is mean-only batch norm, on both the training and the test set (against
  SGD and centred SGD; the final version adds ACP with fixed α to the figure, not to the sentence).
- §6.6.2, Fig. 6.2: K-FAC, ACP and ACP with fixed α perform similarly against time and all outperform batch norm and
  SGD by a large margin; on the test set ACP is slightly best, in its best value and in the time to reach it.

Method comparisons are at equal training time: the earliest end among the runs compared (every cell of the evidence
profile has the same time). A method's curve is its tuned run (``<method>_tuned``) where the profile tunes, else its
only run. Errors are George's ‖f(x) − x‖² per case (``train_error`` / ``test_error``).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pandas as pd

from secondorder.experiments.hooks import Context
from secondorder.experiments.kfra_verdicts import common_end, evaluations, still_improving, value_at
from secondorder.experiments.runner import Cell
from secondorder.experiments.verdicts import HELD, INCONCLUSIVE, Verdict, judged
from secondorder.report.runs import Run

SIMILAR = 1.25  # "perform similarly": errors within a factor 1.25 of each other at the same time
LARGE_MARGIN = 1.25  # "by a large margin": the worst of the three at least 1.25× below the better baseline
SEPARATED = 2.0  # search means differ by more than 2 standard errors of the difference
CHECKED = ("the ACP / centred-SGD / NNN closed-form tests (tests/test_george.py), the batch-norm layers against "
           "their formulas (tests/test_models.py), the cells' configs against §6.6 (conf/reproduce/george.yaml, "
           "conf/optimizer/acp.yaml, conf/optimizer/nnn.yaml) and the trajectories (figure-6.1_*.png, "
           "figure-6.2_*.png).")

Curves = dict[str, Run]  # method (without "_tuned") → its run


def method_runs(cells: list[Cell], found: dict[str, list[Run]], problem: str = "mnist") -> Curves:
    """Each method's run on ``problem``, keyed by the method's name without the ``_tuned`` suffix (the tuned run
    wins where both exist)."""
    curves: Curves = {}
    for cell in cells:
        if cell.labels["problem"] != problem or not found.get(cell.name):
            continue
        method = str(cell.labels["method"])
        base = method.removesuffix("_tuned")
        if base not in curves or method.endswith("_tuned"):
            curves[base] = found[cell.name][0]
    return curves


def best_test(run: Run, until: float) -> tuple[float, float] | None:
    """(lowest test error, the time it was reached) over the run's evaluations up to ``until`` seconds."""
    rows = evaluations(run, "test_error")
    rows = rows[rows.wall_time_s <= until + 1e-9]
    if rows.empty:
        return None
    best = rows.loc[rows.test_error.idxmin()]
    return float(best.test_error), float(best.wall_time_s)


# ------------------------------------------------------------------ §4.1 search procedures
def search_ordering(search_csv: Path) -> Verdict:
    claim = ("Biased random search finds a lower training loss than random search, and random search a lower one "
             "than a grid, over repeated searches (§4.1, the table under Fig. 4.1)")
    if not search_csv.exists():
        return Verdict(claim, "no search.csv", INCONCLUSIVE, "the search did not run")
    frame = pd.read_csv(search_csv)
    values = {p: frame[frame.procedure == p].best_loss.tolist() for p in ("grid", "random", "biased")}
    if any(len(v) < 2 for v in values.values()):
        return Verdict(claim, "fewer than two repetitions per procedure", INCONCLUSIVE, "too few repetitions")
    means = {p: statistics.mean(v) for p, v in values.items()}
    errors = {p: statistics.stdev(v) / math.sqrt(len(v)) for p, v in values.items()}
    measured = "; ".join(f"{p} {2 * means[p]:.4g} ± {2 * statistics.stdev(values[p]):.2g} (‖·‖², {len(values[p])} "
                         "searches)" for p in values)

    def below(a: str, b: str) -> bool | None:
        """True: a's mean below b's beyond noise; False: above beyond noise; None: within noise."""
        gap = means[b] - means[a]
        noise = SEPARATED * math.hypot(errors[a], errors[b])
        return True if gap > noise else False if gap < -noise else None

    pairs = {("biased", "random"): below("biased", "random"), ("random", "grid"): below("random", "grid")}
    if all(pairs.values()):
        return Verdict(claim, measured, HELD, f"both differences exceed {SEPARATED:g} standard errors")
    if any(v is False for v in pairs.values()):
        wrong = [f"{a} above {b}" for (a, b), v in pairs.items() if v is False]
        return judged(claim, measured, False, "", f"{', '.join(wrong)} beyond {SEPARATED:g} standard errors.",
                      "the trial seeds (each trial its own; the procedures share them), the independent proposal "
                      "streams (tests/test_george.py) and Fig. 4.1's trial points.")
    close = ", ".join(f"{a} vs {b}" for (a, b), v in pairs.items() if v is None)
    return Verdict(claim, measured, INCONCLUSIVE, f"{close} within {SEPARATED:g} standard errors: more repetitions "
                   "settle it")


# ------------------------------------------------------------------ §6.6.1 / Fig. 6.1
def mean_only_bn_best_centred(curves: Curves) -> Verdict:
    claim = ("The best centred update is mean-only batch norm, on both the training and the test set (§6.6.1, "
             "Fig. 6.1; against SGD and centred SGD)")
    names = ("mean_only_bn", "centered_sgd", "sgd")
    runs = [curves.get(n) for n in names]
    if None in runs:
        return Verdict(claim, "runs missing: " + ", ".join(n for n, r in zip(names, runs, strict=True) if r is None),
                       INCONCLUSIVE, "runs missing")
    end = common_end(runs, "train_error", "wall_time_s")
    if end is None:
        return Verdict(claim, "no evaluations", INCONCLUSIVE, "runs without evaluations")
    train = {n: value_at(curves[n], "train_error", "wall_time_s", end) for n in names}
    test = {n: best_test(curves[n], end) for n in names}
    if None in train.values() or None in test.values():
        return Verdict(claim, "no evaluation by the common end", INCONCLUSIVE, "runs without evaluations")
    measured = (f"at {end:.0f} s, train: " + ", ".join(f"{n} {train[n]:.4g}" for n in names) + "; best test: "
                + ", ".join(f"{n} {test[n][0]:.4g}" for n in names))
    holds = min(train, key=train.get) == "mean_only_bn" and min(test, key=lambda n: test[n][0]) == "mean_only_bn"
    improving = [n for n in names if still_improving(curves[n], "train_error")]
    return judged(claim, measured, holds, "mean-only batch norm is lowest on both sets",
                  "another centred update is lower on the training or the test set.", CHECKED,
                  still_improving=", ".join(improving) + " still improving" if improving else None)


# ------------------------------------------------------------------ §6.6.2 / Fig. 6.2
SECOND_ORDER = ("kfac", "acp", "acp_fixed_alpha")
BASELINES = ("bn", "sgd")


#: "similar" needs the three to have got somewhere: each of them at least 5 % below plain SGD's training error
SGD_LEVEL = 0.95


def second_order_similar_and_ahead(curves: Curves) -> list[Verdict]:
    similar_claim = "K-FAC, ACP and ACP with fixed α perform similarly against time (§6.6.2, Fig. 6.2)"
    ahead_claim = ("K-FAC, ACP and ACP with fixed α all outperform batch norm and SGD by a large margin (§6.6.2, "
                   "Fig. 6.2; training error at equal time)")
    names = SECOND_ORDER + BASELINES
    missing = [n for n in names if n not in curves]
    if missing:
        why = "runs missing: " + ", ".join(missing)
        return [Verdict(similar_claim, why, INCONCLUSIVE, "runs missing"),
                Verdict(ahead_claim, why, INCONCLUSIVE, "runs missing")]
    runs = [curves[n] for n in names]
    end = common_end(runs, "train_error", "wall_time_s")
    train = {n: value_at(curves[n], "train_error", "wall_time_s", end) for n in names} if end is not None else {}
    if end is None or None in train.values():
        return [Verdict(similar_claim, "no evaluations", INCONCLUSIVE, "runs without evaluations"),
                Verdict(ahead_claim, "no evaluations", INCONCLUSIVE, "runs without evaluations")]
    measured = f"train error at {end:.0f} s: " + ", ".join(f"{n} {train[n]:.4g}" for n in names)
    second = [train[n] for n in SECOND_ORDER]
    spread = max(second) / min(second)
    improving = [n for n in names if still_improving(curves[n], "train_error")]
    note = ", ".join(improving) + " still improving" if improving else None
    if spread <= SIMILAR and max(second) >= SGD_LEVEL * train["sgd"]:
        # alike only in not having got (far) ahead of plain SGD: one of them is still where SGD is (e.g. on the
        # autoencoder's mean-output plateau) and the others within the band of it
        stuck = ", ".join(n for n in SECOND_ORDER if train[n] >= SGD_LEVEL * train["sgd"])
        similar = Verdict(similar_claim, measured + f"; spread ×{spread:.2f}", INCONCLUSIVE,
                          f"within a factor {SIMILAR:g}, but {stuck} not below plain SGD's error: alike in not "
                          "having trained past it; a longer budget (or steps tuned on longer trials) settles it")
    else:
        similar = judged(similar_claim, measured + f"; spread ×{spread:.2f}", spread <= SIMILAR,
                         f"within a factor {SIMILAR:g} of each other",
                         f"their errors differ by more than a factor {SIMILAR:g}.", CHECKED, still_improving=note)
    margin = min(train[n] for n in BASELINES) / max(second)
    ahead = judged(ahead_claim, measured + f"; margin ×{margin:.2f}", margin >= LARGE_MARGIN,
                   f"the worst of the three is ≥ {LARGE_MARGIN:g}× below the better baseline",
                   f"the margin is below ×{LARGE_MARGIN:g}.", CHECKED, still_improving=note)
    return [similar, ahead]


def acp_best_test(curves: Curves) -> Verdict:
    claim = ("On the test set ACP is slightly best of all methods, in its lowest value and in the time to reach it "
             "(§6.6.2, Fig. 6.2)")
    names = [n for n in ("acp", "acp_fixed_alpha", "kfac", "nnn", "bn", "sgd") if n in curves]
    if "acp" not in names or len(names) < 2:
        return Verdict(claim, "runs missing", INCONCLUSIVE, "runs missing")
    end = common_end([curves[n] for n in names], "test_error", "wall_time_s")
    best = {n: best_test(curves[n], end) for n in names} if end is not None else {}
    if end is None or end <= 0 or None in best.values():  # nothing to compare but the common starting point
        return Verdict(claim, "no evaluations after the start", INCONCLUSIVE, "runs without evaluations after the "
                       "start (still running, or stopped at once)")
    measured = f"lowest test error by {end:.0f} s (value at time): " + ", ".join(
        f"{n} {best[n][0]:.4g} at {best[n][1]:.0f} s" for n in names)
    lowest = min(names, key=lambda n: best[n][0])
    if sum(best[n][0] == best[lowest][0] for n in names) > 1:  # "best of all" needs one method below the rest
        tied = ", ".join(n for n in names if best[n][0] == best[lowest][0])
        return Verdict(claim, measured, INCONCLUSIVE, f"{tied} share the lowest test error: no method is best")
    rising = [n for n in names if best[n][1] < end - 1e-9]  # minimum before the end: the test curve turned
    if lowest == "acp":
        earliest = min(best[n][1] for n in names if best[n][0] <= best["acp"][0] * SIMILAR)
        holds = best["acp"][1] <= earliest + 1e-9
        return judged(claim, measured, holds, "ACP's test minimum is lowest and reached first among those near it",
                      "ACP's minimum is lowest but another method comes within a factor "
                      f"{SIMILAR:g} sooner.", CHECKED)
    if len(rising) < len(names):
        return Verdict(claim, measured, INCONCLUSIVE, f"{lowest} is lowest, but the test curves of "
                       f"{', '.join(n for n in names if n not in rising)} were still falling at the end (the "
                       "thesis's test curves all pass a minimum): a longer budget settles it")
    return judged(claim, measured, False, "", f"{lowest}'s test minimum is lower than ACP's.", CHECKED)


def verdicts(context: Context, cells: list[Cell], found: dict[str, list[Run]]) -> list[Verdict]:
    curves = method_runs(cells, found)
    return [search_ordering(context.out / "search.csv"), mean_only_bn_best_centred(curves),
            *second_order_similar_and_ahead(curves), acp_best_test(curves)]
