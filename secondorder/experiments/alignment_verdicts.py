"""Verdicts on Botev, Ritter & Barber (2017) App. G.2 from the measurements of ``make reproduce-kfra-alignment``.

The claims (App. G.2, figures only; echoed in §5.1):

- "Throughout the optimisation", the KFRA update is better aligned with the exact Gauss–Newton update than the
  K-FAC update. Judged on the whole update against the full GN update (cos(δ̃, δ_GN)) with the optimiser's own
  damping form (factored, eq. 36), at every measurement: **held** when KFRA is at least as well aligned as K-FAC
  (within :data:`TIE`) at every measurement and better by more than :data:`TIE` at one or more; **not held** when
  K-FAC is better by more than :data:`TIE` at any measurement; **inconclusive** when every difference is a tie.
  The exact-damping (eq. 35) and per-layer numbers are reported beside it. A measurement with a non-finite
  cosine (a zero or overflowing update) leaves the claim inconclusive, and one whose full-GN CG stopped at its
  iteration cap is left out (its reference is a truncated solve; App. G.2 itself blames badly conditioned CG for
  a late decay) — when the damping falls to ~1e-3 and below, 250 CG iterations no longer reach the tolerance.
- Batch sizes 250, 500 and 1 000 "did not differ significantly", and on FACES the block-diagonal GN update's
  alignment with the full GN update decays late in training: one run measures one batch size on one problem, so
  both stay inconclusive here, with what would settle them.

A K-FAC update uses one sampled target per case, so its cosine carries sampling noise; the tie band :data:`TIE`
keeps a noise-level difference from deciding the claim [choice].
"""

from __future__ import annotations

import math

import pandas as pd

from secondorder.experiments.verdicts import HELD, INCONCLUSIVE, NOT_HELD, Verdict

TIE = 0.01  # cosine differences within ±0.01 count as ties [choice]

CLAIM_ALIGNMENT = ("Botev et al. 2017, App. G.2 (and §5.1): throughout the optimisation, the KFRA update is better "
                   "aligned with the exact Gauss–Newton update than the K-FAC update.")
CLAIM_BATCH = ("App. G.2: alignment measured on batches of 250, 500 and 1 000 cases did not differ significantly "
               "(only 1 000 shown).")
CLAIM_FACES = ("App. G.2: on FACES the block-diagonal GN update's alignment with the full GN update decays late in "
               "training (attributed to badly conditioned CG).")
CHECKED = ("the alignment's solvers and the one-case exactness case (KFRA's exactly damped update = the "
           "block-diagonal GN update) in tests/test_alignment.py, the KFRA / K-FAC factor oracles in "
           "tests/test_kfra.py and tests/test_kfac.py, and the run's damping (alignment.csv `damping`).")


def _series(frame: pd.DataFrame, name: str, form: str) -> list[float]:
    return [float(v) for v in frame[f"{name}_{form}_vs_full_gn"]]


def _listing(frame: pd.DataFrame, form: str) -> str:
    pairs = zip(frame.iteration, _series(frame, "kfra", form), _series(frame, "kfac", form), strict=True)
    return ", ".join(f"{int(i)}: {a:.3f} / {b:.3f}" for i, a, b in pairs)


def alignment_verdict(frame: pd.DataFrame, cg_iters: int | None = None) -> Verdict:
    """The App. G.2 claim from one KFRA run's measurements (``alignment.csv`` rows). With ``cg_iters`` (the CG
    cap of the measurement), rows whose full-GN CG stopped at the cap are left out: their reference is not the
    GN update but a truncated Krylov approximation of it."""
    if frame.empty:
        return Verdict(CLAIM_ALIGNMENT, "no measurements", INCONCLUSIVE, "the KFRA run has no alignment rows yet")
    kfra, kfac = _series(frame, "kfra", "factored"), _series(frame, "kfac", "factored")
    broken = [int(i) for i, a, b in zip(frame.iteration, kfra, kfac, strict=True)
              if not (math.isfinite(a) and math.isfinite(b))]
    if broken:
        return Verdict(CLAIM_ALIGNMENT, f"cos(update, full GN), KFRA / K-FAC — {_listing(frame, 'factored')}",
                       INCONCLUSIVE, f"a cosine is not finite at iteration(s) {', '.join(map(str, broken))} (a "
                       "zero or overflowing update): the measurement has holes")
    capped = (frame.cg_iters_full >= cg_iters) if cg_iters is not None and "cg_iters_full" in frame \
        else pd.Series(False, index=frame.index)
    unconverged = [int(i) for i in frame.iteration[capped]]
    judged = frame[~capped]
    differences = [a - b for a, b in zip(_series(judged, "kfra", "factored"), _series(judged, "kfac", "factored"),
                                         strict=True)]
    wins = [int(i) for i, d in zip(judged.iteration, differences, strict=True) if d > TIE]
    losses = [int(i) for i, d in zip(judged.iteration, differences, strict=True) if d < -TIE]
    late_losses = [int(i) for i, a, b in zip(frame.iteration[capped], _series(frame[capped], "kfra", "factored"),
                                             _series(frame[capped], "kfac", "factored"), strict=True) if a < b - TIE]
    damping = ", ".join(f"{int(i)}: {d:.3g}" for i, d in zip(frame.iteration, frame.damping, strict=True))
    measured = (f"cos(update, full GN), KFRA / K-FAC with factored damping (eq. 36) at iteration — "
                f"{_listing(frame, 'factored')}; with exact damping (eq. 35) — {_listing(frame, 'exact')}; "
                f"block-diagonal GN vs full GN {min(frame.blockdiag_gn_vs_full_gn):.3f}–"
                f"{max(frame.blockdiag_gn_vs_full_gn):.3f}; damping γ + η — {damping}. "
                + (f"Full-GN CG stopped at its cap of {cg_iters} iterations at iteration(s) "
                   f"{', '.join(map(str, unconverged))} (reference not converged; left out). " if unconverged else "")
                + f"Of the {len(judged)} converged measurements, KFRA better by > {TIE} at {len(wins)}, K-FAC at "
                f"{len(losses)}.")
    unconverged_note = (f" At the unconverged measurements K-FAC is closer by more than {TIE} at "
                        f"{', '.join(map(str, late_losses))}; more CG iterations (`cg_iters`) would decide them."
                        if late_losses else "")
    if judged.empty:
        return Verdict(CLAIM_ALIGNMENT, measured, INCONCLUSIVE,
                       f"no measurement has a converged full-GN reference.{unconverged_note}")
    if losses:
        return Verdict(CLAIM_ALIGNMENT, measured, NOT_HELD,
                       f"K-FAC's update is closer to the full GN update than KFRA's at iteration(s) "
                       f"{', '.join(map(str, losses))} (by more than {TIE}), so KFRA is not better aligned "
                       f"throughout. Checked before concluding: {CHECKED}")
    if wins:
        return Verdict(CLAIM_ALIGNMENT, measured, HELD,
                       f"KFRA is at least as well aligned as K-FAC (within {TIE}) at every converged measurement and "
                       f"better at iteration(s) {', '.join(map(str, wins))}.{unconverged_note}")
    return Verdict(CLAIM_ALIGNMENT, measured, INCONCLUSIVE,
                   f"KFRA and K-FAC are within {TIE} of each other at every converged measurement: no difference "
                   f"to judge.{unconverged_note}")


def alignment_verdicts(frame: pd.DataFrame, settings: dict, problem: str) -> list[Verdict]:
    """Every App. G.2 claim: the alignment from the rows; the batch-size and FACES claims inconclusive (one run
    measures ``settings['batch']`` cases on ``problem``)."""
    verdicts = [alignment_verdict(frame, settings.get("cg_iters"))]
    verdicts.append(Verdict(CLAIM_BATCH, f"measured at batch {settings['batch']} only", INCONCLUSIVE,
                            "this profile measures one batch size (each extra size repeats the full and "
                            "block-diagonal CG solves, the bulk of the cost); run it again with `batch: 250` and "
                            "`batch: 500` in conf/measure/kfra-alignment.yaml to compare."))
    verdicts.append(Verdict(CLAIM_FACES, f"measured on {problem} only", INCONCLUSIVE,
                            "a claim about FACES late in training: the profiles measure CURVES; a profile with "
                            "`dataset=faces` in its overrides and a FACES-length run would test it."))
    return verdicts
