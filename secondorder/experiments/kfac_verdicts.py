"""Verdicts on the thesis's K-FAC autoencoder experiment (Martens 2016, §6.13, Figures 6.9 / 6.10; Martens &
Grosse 2015, §13) from the runs of ``make reproduce-kfac-autoencoders``.

The claims (figures with lost axes; the text gives these sentences):

- K-FAC with momentum makes "orders of magnitude" more progress per iteration than the NAG baseline, and so has a
  much higher per-second rate of progress.
- The block-tridiagonal version makes "typically 25 % to 40 %" more progress per iteration than the block-diagonal
  one; per second it is only moderately better (comparable).
- Without momentum K-FAC "wasn't significantly faster than the baseline".

"Progress per iteration" is read as iterations to reach an error: method A makes r× the progress of B when B needs
r× A's iterations to reach the error B has at the end of their common iterations (for K-FAC vs NAG: the error K-FAC
ends at, which NAG may not reach in its run). Per-second claims compare errors at
the same training time (the earliest end among the runs). The baseline is the best of NAG's learning rates at that
time (the ``evidence`` profile runs several: the thesis's NAG was tuned, ours otherwise would not be).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from secondorder.experiments.hooks import Context, Hooks
from secondorder.experiments.kfra_verdicts import Curves, by_problem, common_end, evaluations, value_at
from secondorder.experiments.runner import Cell
from secondorder.experiments.verdicts import INCONCLUSIVE, Verdict, judged
from secondorder.report.runs import Run

ORDERS = 10.0  # "orders of magnitude" more progress per iteration: NAG needs ≥ 10× K-FAC's iterations
MORE = 1.25  # "25 % to 40 %" more: block-diagonal needs ≥ 1.25× the tridiagonal's iterations
COMPARABLE = 1.5  # "comparable" / "not significantly faster": errors within a factor 1.5 at the same time
COLUMN = "train_error"
CHECKED = ("the K-FAC oracle tests (tests/test_kfac.py: factors, inverses, re-scaling and momentum against dense "
           "float64 autograd; tests/golden trajectories), the cells' configs against §6.13 "
           "(conf/experiment/kfac_*.yaml, conf/reproduce/kfac-autoencoders.yaml), and the trajectories "
           "(<problem>_error_vs_*.png).")


def iterations_to(run: Run, target: float) -> float:
    """The first evaluated iteration at which the run's error is ≤ ``target`` (∞: never)."""
    rows = evaluations(run, COLUMN)
    hit = rows[rows[COLUMN] <= target]
    return float(hit.iteration.iloc[0]) if len(hit) else math.inf


def tuned_nag(curves: dict[str, list[Run]], at: float) -> tuple[str, float] | None:
    values = [(name, value_at(runs[0], COLUMN, "wall_time_s", at)) for name, runs in curves.items()
              if runs and name.startswith("nag")]
    values = [(n, v) for n, v in values if v is not None]
    return min(values, key=lambda pair: pair[1]) if values else None


def _nag_runs(curves: dict[str, list[Run]]) -> list[Run]:
    return [runs[0] for name, runs in curves.items() if runs and name.startswith("nag")]


def progress_ratio(fast: Run, slow: Run) -> tuple[float, float, float] | None:
    """(iteration, target, ratio): the target is the slow run's error at the last iteration both evaluated; the ratio
    is the slow run's iterations to that target over the fast run's (> 1: the fast run got there sooner)."""
    end = common_end([fast, slow], COLUMN, "iteration")
    if end is None:
        return None
    target = value_at(slow, COLUMN, "iteration", end)
    return end, target, iterations_to(slow, target) / max(iterations_to(fast, target), 1.0)


def kfac_orders_of_magnitude(table: Curves) -> Verdict:
    claim = ("K-FAC with momentum makes orders of magnitude more progress per iteration than the NAG baseline "
             "(§6.13, Fig. 6.10)")
    parts, holds, censored = [], [], []  # holds: one bool per problem decided
    for problem, curves in table.items():
        kfac, nags = curves.get("kfac_blockdiag", [])[:1], _nag_runs(curves)
        if not kfac or not nags:
            continue
        kfac_end = float(evaluations(kfac[0], COLUMN).iteration.iloc[-1])
        target = value_at(kfac[0], COLUMN, "iteration", kfac_end)
        reach = min(iterations_to(run, target) for run in nags)
        longest = max(float(evaluations(run, COLUMN).iteration.iloc[-1]) for run in nags)
        ratio = reach / max(iterations_to(kfac[0], target), 1.0)
        if math.isinf(reach):
            parts.append(f"{problem}: K-FAC {target:.4g} at iteration {kfac_end:.0f}; no NAG run reached it in "
                         f"{longest:.0f} iterations (×{longest / kfac_end:.0f})")
            if longest >= ORDERS * kfac_end:
                holds.append(True)
            else:
                censored.append(problem)
        else:
            parts.append(f"{problem}: NAG needed {reach:.0f} iterations to reach K-FAC's {target:.4g} "
                         f"(×{ratio:.1f})")
            holds.append(ratio >= ORDERS)
    if not parts:
        return Verdict(claim, "no problem with K-FAC and NAG runs", INCONCLUSIVE, "runs missing")
    if censored:
        return Verdict(claim, "; ".join(parts), INCONCLUSIVE, f"on {', '.join(censored)} NAG ran fewer than "
                       f"{ORDERS:g}× K-FAC's iterations without reaching its error: a longer NAG run settles it")
    return judged(claim, "; ".join(parts), all(holds), f"NAG needs ≥ {ORDERS:g}× the iterations on every "
                  "problem", f"on some problem NAG needs fewer than {ORDERS:g}× K-FAC's iterations.", CHECKED)


def per_second(table: Curves, method: str, claim: str, faster: bool) -> Verdict:
    """``faster``: ``method`` below tuned NAG at equal time; otherwise "not significantly faster": not below
    NAG / :data:`COMPARABLE`."""
    parts, holds = [], []
    for problem, curves in table.items():
        mine, nags = curves.get(method, [])[:1], _nag_runs(curves)
        end = common_end(mine + nags, COLUMN, "wall_time_s") if mine and nags else None
        nag = tuned_nag(curves, end) if end is not None else None
        value = value_at(mine[0], COLUMN, "wall_time_s", end) if nag else None
        if value is None:
            continue
        parts.append(f"{problem} at {end:.0f} s: {method} {value:.4g} vs tuned NAG {nag[1]:.4g} ({nag[0]})")
        holds.append(value < nag[1] if faster else value >= nag[1] / COMPARABLE)
    if not holds:
        return Verdict(claim, f"no problem with {method} and NAG runs", INCONCLUSIVE, "runs missing")
    why_held = "below the tuned NAG on every problem" if faster else \
        f"never more than {COMPARABLE}× below the tuned NAG"
    why_not = "at or above the tuned NAG on some problem." if faster else \
        f"more than {COMPARABLE}× below the tuned NAG on some problem."
    return judged(claim, "; ".join(parts), all(holds), why_held, why_not, CHECKED)


def tridiagonal_progress(table: Curves) -> Verdict:
    claim = ("Block-tridiagonal K-FAC makes 25–40 % more progress per iteration than block-diagonal (§6.13, "
             "Fig. 6.10)")
    parts, holds = [], []
    for problem, curves in table.items():
        tri, diag = curves.get("kfac_tridiag", [])[:1], curves.get("kfac_blockdiag", [])[:1]
        result = progress_ratio(tri[0], diag[0]) if tri and diag else None
        if result is None:
            continue
        end, target, ratio = result
        parts.append(f"{problem}: to block-diagonal's {target:.4g} (iteration {end:.0f}) it needed ×{ratio:.2f} "
                     "the tridiagonal's iterations")
        holds.append(ratio >= MORE)
    if not holds:
        return Verdict(claim, "no problem with both runs", INCONCLUSIVE, "runs missing")
    return judged(claim, "; ".join(parts), all(holds), f"≥ ×{MORE} on every problem",
                  f"below ×{MORE} on some problem.", CHECKED)


def tridiagonal_per_second(table: Curves) -> Verdict:
    claim = "Per second the block-tridiagonal K-FAC is only moderately better: comparable to block-diagonal (§6.13)"
    parts, holds = [], []
    for problem, curves in table.items():
        runs = curves.get("kfac_tridiag", [])[:1] + curves.get("kfac_blockdiag", [])[:1]
        end = common_end(runs, COLUMN, "wall_time_s") if len(runs) == 2 else None
        if end is None:
            continue
        tri, diag = (value_at(r, COLUMN, "wall_time_s", end) for r in runs)
        if tri is None or diag is None:
            continue
        parts.append(f"{problem} at {end:.0f} s: tridiagonal {tri:.4g} vs block-diagonal {diag:.4g}")
        holds.append(1 / COMPARABLE <= tri / diag <= COMPARABLE)
    if not holds:
        return Verdict(claim, "no problem with both runs", INCONCLUSIVE, "runs missing")
    return judged(claim, "; ".join(parts), all(holds), f"within ×{COMPARABLE} on every problem",
                  f"more than ×{COMPARABLE} apart on some problem.", CHECKED)


RULES: tuple[Callable[[Curves], Verdict], ...] = (
    kfac_orders_of_magnitude,
    lambda t: per_second(t, "kfac_blockdiag", "K-FAC (with momentum) has a much higher per-second rate of progress "
                         "than the NAG baseline (§6.13, Fig. 6.9)", faster=True),
    tridiagonal_progress,
    tridiagonal_per_second,
    lambda t: per_second(t, "kfac_no_momentum", "Without momentum K-FAC is not significantly faster than the NAG "
                         "baseline (§6.13)", faster=False),
)


def verdicts(context: Context, cells: list[Cell], found: dict[str, list[Run]]) -> list[Verdict]:
    table = by_problem(cells, found)
    return [rule(table) for rule in RULES]


HOOKS = Hooks(verdicts=verdicts)
