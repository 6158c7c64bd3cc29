"""Verdicts: does each of a paper's claims hold in an experiment's runs (``../shared/evidence.md``)?

An experiment's hook turns its runs into one :class:`Verdict` per claim — the claim with its place in the paper,
what we measured (numbers, runs), the verdict and why. :func:`write_verdicts` writes them to
``results/<target>/<profile>/verdicts.md`` (and ``verdicts.csv`` behind it); :func:`update_results_readme`
collects every target's ``verdicts.csv`` into the table between the markers of ``results/README.md``.

Verdicts are one of :data:`HELD`, :data:`NOT_HELD` and :data:`INCONCLUSIVE`. A smoke-test profile (``quick``) can
judge nothing: its verdicts are all inconclusive, with the measured numbers kept. A "not held" verdict names what
was checked before concluding it (:data:`CHECKED`). An analysis written after looking at the runs goes in
``notes.md`` beside the verdicts (never into the generated files); ``verdicts.md`` points to it.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

HELD = "held"
NOT_HELD = "not held"
INCONCLUSIVE = "inconclusive at this budget"
VERDICTS = (HELD, NOT_HELD, INCONCLUSIVE)
SMOKE_PROFILES = ("quick",)  # budgets that test the machinery, not the paper
BEGIN, END = "<!-- verdicts:begin -->", "<!-- verdicts:end -->"


@dataclass(frozen=True)
class Verdict:
    """One claim of a paper and what the runs say about it."""

    claim: str  # the claim, with its place in the paper (section / figure / table)
    measured: str  # our numbers and the runs they come from
    verdict: str  # HELD | NOT_HELD | INCONCLUSIVE
    why: str  # the reasoning; for NOT_HELD also what was checked

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


def judged(claim: str, measured: str, holds: bool | None, why_held: str, why_not: str, checked: str,
           still_improving: str | None = None, at_convergence: bool = False) -> Verdict:
    """A verdict from a test: ``holds`` None (the numbers are missing) is inconclusive; False is "not held" with
    the checks made before concluding it appended to ``why_not`` — unless ``still_improving`` says the runs had not
    settled when the budget ended, which makes it inconclusive at this budget. A claim about runs taken to
    convergence (``at_convergence``: where a run stops, how it generalises) is inconclusive either way then."""
    if holds is None:
        return Verdict(claim, measured, INCONCLUSIVE, "runs missing or without evaluations")
    if still_improving and at_convergence:
        return Verdict(claim, measured, INCONCLUSIVE, f"the rule gives '{HELD if holds else NOT_HELD}', but "
                       f"{still_improving} when the budget ended, and the claim is about runs taken to convergence: "
                       "a longer budget settles it.")
    if holds:
        return Verdict(claim, measured, HELD, why_held)
    if still_improving:
        return Verdict(claim, measured, INCONCLUSIVE, f"{why_not} But {still_improving} when the budget ended: a "
                       "longer budget settles it.")
    return Verdict(claim, measured, NOT_HELD, f"{why_not} Checked before concluding: {checked}")


def for_profile(verdicts: list[Verdict], profile: str) -> list[Verdict]:
    """A smoke-test profile's verdicts are all inconclusive (the numbers stay)."""
    if profile not in SMOKE_PROFILES:
        return verdicts
    return [Verdict(v.claim, v.measured, INCONCLUSIVE, f"smoke-test budget (profile `{profile}`); run "
                    f"`PROFILE=evidence` (rule applied to these numbers: {v.verdict})") for v in verdicts]


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def write_verdicts(out: Path, title: str, profile: str, provenance: str, verdicts: list[Verdict]) -> list[str]:
    """``verdicts.md`` and ``verdicts.csv`` in ``out``; returns the lines for ``summary.md``."""
    verdicts = for_profile(verdicts, profile)
    counts = {v: sum(1 for x in verdicts if x.verdict == v) for v in VERDICTS}
    tally = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    lines = [f"# Verdicts — {title}, profile `{profile}`", "", provenance, "",
             f"{len(verdicts)} claims: {tally}." if verdicts else "No claims judged.", ""]
    if (out / "notes.md").exists():
        lines += ["Analysis after looking at the runs: [`notes.md`](notes.md).", ""]
    lines += ["| claim (paper, section / figure / table) | what we measured (numbers; runs) | verdict | why |",
              "|---|---|---|---|"]
    lines += [f"| {_cell(v.claim)} | {_cell(v.measured)} | **{v.verdict}** | {_cell(v.why)} |" for v in verdicts]
    (out / "verdicts.md").write_text("\n".join(lines) + "\n")
    with (out / "verdicts.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["claim", "measured", "verdict", "why"])
        writer.writeheader()
        writer.writerows(asdict(v) for v in verdicts)
    return ["## Verdicts", "", f"{tally or 'none'} — `verdicts.md`.", ""]


def read_verdicts(path: Path) -> list[Verdict]:
    with path.open(newline="") as handle:
        return [Verdict(**row) for row in csv.DictReader(handle)]


def collected_table(results: Path) -> str:
    """Every ``<target>/<profile>/verdicts.csv`` under ``results`` as one Markdown table (target, profile, claim,
    verdict), smoke-test profiles left out."""
    rows = ["| target / profile (runs' provenance) | claim | verdict |", "|---|---|---|"]
    for path in sorted(results.glob("*/*/verdicts.csv")):
        target, profile = path.parent.parent.name, path.parent.name
        if profile in SMOKE_PROFILES:
            continue
        markdown = path.with_suffix(".md")
        provenance = next((line for line in markdown.read_text().splitlines() if line.startswith("Runs:")), "") \
            if markdown.exists() else ""
        link = f"[{target} / {profile}]({target}/{profile}/verdicts.md)"
        first = link + (f" ({provenance})" if provenance else "")
        rows += [f"| {first if k == 0 else link} | {_cell(v.claim)} | **{v.verdict}** |"
                 for k, v in enumerate(read_verdicts(path))]
    return "\n".join(rows) if len(rows) > 2 else "No target has verdicts yet (run a target with `PROFILE=evidence`)."


def update_results_readme(results: Path, log: Callable[[str], object] = print) -> bool:
    """Replace the verdict table between :data:`BEGIN` and :data:`END` in ``results/README.md``; False (and
    nothing written) when the file or its markers are missing."""
    readme = results / "README.md"
    if not readme.exists():
        return False
    text = readme.read_text()
    if BEGIN not in text or END not in text or text.index(BEGIN) > text.index(END):
        log(f"{readme}: no {BEGIN} … {END} markers (in that order); the verdict table was not updated")
        return False
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    readme.write_text(f"{head}{BEGIN}\n{collected_table(results)}\n{END}{tail}")
    return True
