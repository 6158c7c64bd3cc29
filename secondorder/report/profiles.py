"""Performance profiles across problems, in the style of AlgoPerf (Dahl et al. 2023, §4.5; Dolan & Moré 2002).

For every problem p and method s let t_{p,s} be the wall-clock training time at which s first reaches p's target
error (∞ if never; with several runs of the same (p, s), e.g. seeds, their median). The performance ratio is

    r_{p,s} = t_{p,s} / min_s' t_{p,s'},

and the profile of s is the fraction of problems it solves within a factor τ of the fastest method:

    ρ_s(τ) = |{p : r_{p,s} ≤ τ}| / |P|,   1 ≤ τ ≤ r_max (= 4, as AlgoPerf).

Ratios above r_max count as failures. The score is the normalised area B_s = ∫₁^{r_max} ρ_s(τ) dτ / (r_max − 1)
∈ [0, 1]: 1 means fastest on every problem. Targets are given per problem (``--target curves=0.2``); by default a
problem's target is the median over methods of their best training error, so about half the methods reach it
(our choice: the papers fix no common targets). The iterate-averaged error counts where a run logs one. A
problem whose target some run already meets at its first evaluation (iteration 0, before any step) measures
nothing — every method would be "fastest" at t = 0 — so it is dropped from the profile, and the table says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from secondorder.errors import UserError
from secondorder.report.runs import Run
from secondorder.report.tables import to_markdown

R_MAX = 4.0


def time_to_target(run: Run, target: float, x: str = "wall_time_s", column: str = "train_error") -> float:
    """The first logged ``x`` at which the run's error (raw or averaged iterate) is ≤ target; ∞ if never."""
    rows = run.evaluations
    errors = rows[column]
    if f"{column}_avg" in rows:
        errors = pd.concat([errors, rows[f"{column}_avg"]], axis=1).min(axis=1)
    hit = rows[x][errors.to_numpy() <= target]
    return float(hit.iloc[0]) if len(hit) else math.inf


def best_error(run: Run, column: str = "train_error") -> float:
    rows = run.evaluations
    values = [rows[column].min()] + ([rows[f"{column}_avg"].min()] if f"{column}_avg" in rows else [])
    values = [v for v in values if pd.notna(v)]
    return float(min(values)) if values else math.inf


def met_at_start(runs: list[Run], target: float, column: str = "train_error") -> bool:
    """True when a run's first evaluation at iteration 0 (the initial parameters) already meets ``target``."""
    for run in runs:
        rows = run.evaluations
        start = rows[rows["iteration"] == 0] if "iteration" in rows else rows.iloc[:0]
        if len(start) and float(start[column].iloc[0]) <= target:
            return True
    return False


def default_targets(table: dict[str, dict[str, list[Run]]], column: str = "train_error") -> dict[str, float]:
    """Per problem: the median over methods of each method's best error (its best run)."""
    return {problem: float(np.median([min(best_error(r, column) for r in runs) for runs in methods.values()]))
            for problem, methods in table.items()}


def ratio_frame(table: dict[str, dict[str, list[Run]]], targets: dict[str, float], x: str = "wall_time_s",
                column: str = "train_error") -> pd.DataFrame:
    """One row per (problem, method): target, median time to target, and the performance ratio."""
    rows = []
    for problem, methods in table.items():
        times = {m: float(np.median([time_to_target(r, targets[problem], x, column) for r in runs]))
                 for m, runs in methods.items()}
        fastest = min(times.values())
        for method, t in times.items():
            ratio = t / fastest if math.isfinite(t) and fastest > 0 else (1.0 if t == fastest == 0 else math.inf)
            rows.append({"problem": problem, "method": method, "target": targets[problem], "runs": len(methods[method]),
                         f"{x}_to_target": t, "ratio": ratio})
    return pd.DataFrame(rows)


def profile(ratios: pd.DataFrame, method: str, r_max: float = R_MAX) -> Callable[[float], float]:
    """ρ_s(τ) for one method; problems where it is missing count as failures."""
    problems = ratios["problem"].nunique()
    mine = ratios.loc[ratios["method"] == method, "ratio"].to_numpy()
    mine = np.where(mine <= r_max, mine, math.inf)
    return lambda tau: float((mine <= tau).sum()) / problems


def score(ratios: pd.DataFrame, method: str, r_max: float = R_MAX) -> float:
    """B_s = ∫₁^{r_max} ρ_s(τ) dτ / (r_max − 1), exact for the step function ρ_s."""
    problems = ratios["problem"].nunique()
    mine = ratios.loc[ratios["method"] == method, "ratio"].to_numpy()
    return float(sum(r_max - max(r, 1.0) for r in mine if r <= r_max) / ((r_max - 1.0) * problems))


def score_frame(ratios: pd.DataFrame, r_max: float = R_MAX) -> pd.DataFrame:
    methods = list(dict.fromkeys(ratios["method"]))
    rows = [{"method": m, "score": score(ratios, m, r_max),
             "solved_within_r_max": profile(ratios, m, r_max)(r_max),
             "fastest_on": int(((ratios["method"] == m) & (ratios["ratio"] == 1.0)).sum())} for m in methods]
    return pd.DataFrame(rows).sort_values("score", ascending=False, ignore_index=True)


def plot_profiles(ratios: pd.DataFrame, out: Path, title: str, r_max: float = R_MAX) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    taus = np.linspace(1.0, r_max, 400)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for method in dict.fromkeys(ratios["method"]):
        rho = profile(ratios, method, r_max)
        ax.step(taus, [rho(t) for t in taus], where="post", label=f"{method} ({score(ratios, method, r_max):.2f})")
    ax.set_xlabel("τ (time-to-target ratio to the fastest method)")
    ax.set_ylabel("fraction of problems within τ")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, title="method (score)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def problem_method_table(runs: list[Run], problem_key: str, method_key: str) -> dict[str, dict[str, list[Run]]]:
    """Runs arranged by problem and method. A key is a summary field (``dataset``, ``optimizer``) or ``dirname``:
    the comparison experiments' ``<problem>__<method>`` run-directory names."""
    def key(run: Run, which: str, part: int) -> str:
        if which == "dirname":
            pieces = run.path.name.split("__")
            return pieces[part] if len(pieces) == 2 else run.path.name
        return str(run.summary.get(which, "?"))

    table: dict[str, dict[str, list[Run]]] = {}
    for run in runs:
        table.setdefault(key(run, problem_key, 0), {}).setdefault(key(run, method_key, 1), []).append(run)
    return table


def parse_targets(items: list[str]) -> dict[str, float]:
    """``["curves=0.2", "mnist=1.5"]`` → {"curves": 0.2, "mnist": 1.5}."""
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            raise UserError(f"--target {item!r}: expected PROBLEM=ERROR, e.g. curves=0.2") from None
    return out


def write_profiles(runs: list[Run], out: Path, title: str, problem_key: str = "dataset",
                   method_key: str = "optimizer", targets: dict[str, float] | None = None,
                   r_max: float = R_MAX) -> str:
    """profiles.md, profiles.csv and performance_profile.png under ``out``; returns the Markdown."""
    return write_profile_table(problem_method_table(runs, problem_key, method_key), out, title, targets, r_max)


def write_profile_table(table: dict[str, dict[str, list[Run]]], out: Path, title: str,
                        targets: dict[str, float] | None = None, r_max: float = R_MAX) -> str:
    """:func:`write_profiles` for runs already arranged by problem and method (several runs: their median)."""
    chosen = {**default_targets(table), **(targets or {})}
    dropped = [p for p, methods in table.items()
               if met_at_start([r for runs in methods.values() for r in runs], chosen[p])]
    kept = {p: methods for p, methods in table.items() if p not in dropped}
    header = [f"## Performance profile (time to target, r_max = {r_max:g})", "",
              "Targets: " + ", ".join(f"{p} ≤ {t:.4g}" + ("" if targets and p in targets else " (median of the "
                                                           "methods' best errors)") for p, t in chosen.items()) + "."]
    if dropped:
        header += ["", f"Dropped: {', '.join(dropped)} — the target is met at iteration 0 (before any step), so it "
                       "ranks nothing; give a lower one with `--target PROBLEM=ERROR`."]
    out.mkdir(parents=True, exist_ok=True)
    if not kept:
        for stale in ("profiles.csv", "performance_profile.png"):
            (out / stale).unlink(missing_ok=True)
        text = "\n".join([*header, "", "No problem left to profile.", ""])
        (out / "profiles.md").write_text(text)
        return text
    ratios = ratio_frame(kept, {p: chosen[p] for p in kept})
    scores = score_frame(ratios, r_max)
    text = "\n".join([
        *header, "", to_markdown(scores), "", to_markdown(ratios), "",
        "Plot: `performance_profile.png`. Wall-clock times on the run's own hardware; compare methods run on the "
        "same machine only.", ""])
    ratios.to_csv(out / "profiles.csv", index=False)
    (out / "profiles.md").write_text(text)
    plot_profiles(ratios, out / "performance_profile.png", title, r_max)
    return text
