"""``python scripts/curves_report.py RUN_DIR [--out DIR] [--notes FILE]``: the K-FAC run on a CURVES re-creation
(``train experiment=kfac_curves``, thesis §6.13 settings, 1 000 iterations) against the generalisation criteria of
the issue "Stand-in data that behave like the originals":

* after the run, test error ≤ 2 × training error + 0.1 (the thesis: CURVES does not overfit, §4.12; Martens' K-FAC
  log on the original: test − train ≈ 0.05–0.12 through iteration 1000);
* the test error never rises by more than 20 % above its lowest value so far;
* the training error falls far below the mean-image plateau (16.9 on the original; it falls by two orders of
  magnitude there) — recorded, not judged.

Writes ``README.md`` (the numbers against the criteria, with the run's commit, config and hardware, then the text
of ``--notes``: the analysis, written by hand),
``error_vs_iteration.png`` (train and test error, a marker at every evaluation) and the run's record (config,
summary, metrics). A run still in progress is reported as such, at the iteration it has reached.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from omegaconf import OmegaConf

PLATEAU = 16.9  # the original's mean-image error (training set)


def criteria(evaluations: pd.DataFrame) -> dict[str, float | bool]:
    """The generalisation criteria on the evaluated rows (iteration, train_error, test_error) of one run."""
    last = evaluations.iloc[-1]
    running_min = evaluations.test_error.cummin()
    worst_rise = float((evaluations.test_error / running_min).max() - 1.0)
    return {
        "iteration": int(last.iteration),
        "train_error": float(last.train_error),
        "test_error": float(last.test_error),
        "test_bound": 2.0 * float(last.train_error) + 0.1,
        "test_within_bound": bool(last.test_error <= 2.0 * last.train_error + 0.1),
        "largest_rise": worst_rise,
        "rise_within_20_percent": worst_rise <= 0.2,
        "train_fall": PLATEAU / float(last.train_error),
    }


def plot(evaluations: pd.DataFrame, title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(evaluations.iteration, evaluations.train_error, "o-", label="training error")
    ax.plot(evaluations.iteration, evaluations.test_error, "s--", label="test error")
    ax.axhline(PLATEAU, color="grey", lw=0.8, ls=":", label="mean-image error of the original (16.9)")
    ax.set_yscale("log")
    ax.set_xlabel("K-FAC iterations")
    ax.set_ylabel("error: per-case sum of squared pixel errors")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def generator_version(run_dir: Path) -> int:
    """The CURVES generator version the run used (its config's ``dataset.version``)."""
    config = OmegaConf.load(run_dir / "config.yaml")
    return int(config.dataset.version)


def report(run_dir: Path, out: Path, notes: Path | None = None) -> str:
    version = generator_version(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    metrics = pd.read_csv(run_dir / "metrics.csv")
    evaluations = metrics.dropna(subset=["train_error", "test_error"])
    c = criteria(evaluations)
    out.mkdir(parents=True, exist_ok=True)
    status = summary.get("status", "?")
    prov = summary.get("provenance", {})
    plot(evaluations, f"K-FAC on CURVES v{version} (experiment=kfac_curves), {status} at iteration {c['iteration']}",
         out / "error_vs_iteration.png")
    record = out / "run"
    record.mkdir(exist_ok=True)
    if record.resolve() != run_dir.resolve():  # re-reporting from the committed record copies nothing
        for name in ("config.yaml", "summary.json", "metrics.csv"):
            shutil.copy2(run_dir / name, record / name)
    verdict = {True: "met", False: "not met"}
    lines = [
        f"# CURVES re-creation v{version}: does K-FAC generalise on it?", "",
        f"Run: `train experiment=kfac_curves` (thesis §6.13 settings), status **{status}** at iteration "
        f"{c['iteration']} of 1000; data: {summary.get('data', {}).get('label', '?')}; hardware: "
        f"{prov.get('device_name', '?')}; torch {prov.get('torch', '?')}; commit "
        f"{(prov.get('git_commit') or '?')[:10]}{' (dirty)' if prov.get('git_dirty') else ''}; "
        f"{summary.get('wall_time_s', 0):.0f} s of training.", "",
        "| criterion | measured | verdict |", "|---|---|---|",
        f"| test ≤ 2 × train + 0.1 at the last evaluation | test {c['test_error']:.3g}, bound {c['test_bound']:.3g} "
        f"(train {c['train_error']:.3g}) | {verdict[c['test_within_bound']]} |",
        f"| test error never rises > 20 % above its minimum so far | largest rise {100 * c['largest_rise']:.1f} % "
        f"| {verdict[c['rise_within_20_percent']]} |",
        f"| training error falls far below the plateau (16.9) | plateau ÷ train = {c['train_fall']:.3g} "
        "(the original: about 100) | recorded |", "",
        "Plot: `error_vs_iteration.png` (a marker at every evaluation). The run's config, summary and metrics: "
        f"`run/`. Made by `python scripts/curves_report.py RUN_DIR --out {out}"
        f"{f' --notes {notes}' if notes else ''}`.", ""]
    text = "\n".join(lines) + (f"\n{notes.read_text().strip()}\n" if notes else "")
    (out / "README.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, help="default: results/curves-v<version>")
    parser.add_argument("--notes", type=Path, help="a Markdown file appended to the README: the analysis")
    args = parser.parse_args()
    out = args.out or Path(f"results/curves-v{generator_version(args.run_dir)}")
    print(report(args.run_dir, out, args.notes))


if __name__ == "__main__":
    main()
