"""Thesis Table 4.3 (spec ``conf/reproduce/table-4.3.yaml``) and its report hook, on small synthetic run
directories (no training); the runner's skipping of finished runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from secondorder.experiments import table_4_3
from secondorder.experiments.expansion import expand
from secondorder.experiments.hooks import Context
from secondorder.experiments.report import write_report
from secondorder.experiments.runner import Cell, run_cells
from secondorder.experiments.spec import load_spec
from secondorder.report.references import references
from secondorder.report.runs import find_runs
from tests.helpers import fake_run


def test_references_carry_the_thesis_numbers_with_their_source() -> None:
    ref = references()["table_4_3"]
    assert ref["rows"]["curves"]["rand_hf"] == [0.11, 0.20] and ref["rows"]["faces"]["pt_ncg"] == [None, 124]
    assert "Table 4.3" in ref["source"]


def cells(profile: str, root: Path) -> dict[str, Cell]:
    return {c.name: c for c in expand(load_spec("table-4.3"), profile, root)}


def test_cells_cover_the_table_and_the_quick_profile_uses_offline_data(tmp_path: Path) -> None:
    quick = cells("quick", tmp_path)
    assert len(quick) == 15 and set(quick) == {f"{row}_{column}" for row in references()["table_4_3"]["rows"]
                                               for column in references()["table_4_3"]["columns"]}
    assert "dataset=mnist_5k" in quick["mnist_l2_rand_hf"].overrides
    assert "dataset=faces_lfw" in quick["faces_pt_ncg"].overrides
    assert "trainer.max_time_s=60" in quick["curves_pt_hf"].overrides
    assert "pretrain.epochs=2" in quick["curves_pt_hf"].overrides and "pretrain.epochs=2" not in quick[
        "curves_rand_hf"].overrides
    full = cells("full", tmp_path)
    assert full["faces_l2_pt_hf"].overrides == ["experiment=table_4_3/faces_l2_pt_hf"]


def test_outputs_put_thesis_and_ours_side_by_side(tmp_path: Path) -> None:
    spec = load_spec("table-4.3")
    context = Context(spec, spec.profile("quick"), tmp_path / "runs", tmp_path / "out", Path("unused"))
    cell_list = expand(spec, "quick", context.runs_root)
    fake_run(tmp_path / "runs" / "curves_rand_hf", 12.5, 13.25)
    fake_run(tmp_path / "runs" / "curves_pt_ncg", 20.0, 21.0)
    fake_run(tmp_path / "runs" / "mnist_pt_hf", 9.0, 10.0, status="interrupted")
    written = write_report(context, cell_list, table_4_3.report)
    out = context.out
    table = (out / "table.md").read_text()
    assert "| CURVES | thesis 0.74, 0.82 · ours 20.0, 21.0 | thesis 0.11, 0.20 · ours 12.5, 13.2 |" in table
    assert "(interrupted)" in table and "(missing)" in table
    assert "REDUCED BUDGET" in table and "commit abcdef1234" in table and "cpu (test)" in table
    frame = pd.read_csv(out / "table.csv")
    assert len(frame) == 15 and frame.set_index(["row", "column"]).loc[("curves", "rand_hf"), "ours_train"] == 12.5
    assert (out / "figure-4.5.png").stat().st_size > 0
    assert (out / "runs" / "curves_rand_hf" / "summary.json").exists()
    assert {"table.md", "table.csv", "evaluations.md", "figure-4.5.png", "summary.md"} <= set(written)
    evaluations = (out / "evaluations.md").read_text()
    assert "## CURVES · RAND + HF (curves_rand_hf)" in evaluations and "## MNIST · PT + HF" in evaluations
    assert "`table.md`" in (out / "summary.md").read_text()


def test_table_reports_the_median_over_seeds(tmp_path: Path) -> None:
    runs = {}
    for seed, train in enumerate((3.0, 1.0, 2.0)):
        fake_run(tmp_path / f"seed{seed}", train, train + 1)
        runs.setdefault(("curves", "rand_hf"), []).extend(find_runs([tmp_path / f"seed{seed}"]))
    table, frame = table_4_3.build_table(runs, "full", reduced=False)
    assert "ours 2.00, 3.00 (median of 3)" in table
    row = frame.set_index(["row", "column"]).loc[("curves", "rand_hf")]
    assert (row["seeds"], row["ours_train"], row["ours_train_min"], row["ours_train_max"]) == (3, 2.0, 1.0, 3.0)


def test_run_cells_skips_completed_runs(tmp_path: Path) -> None:
    fake_run(tmp_path / "done", 1.0, 2.0)
    messages: list[str] = []
    fake_run(tmp_path / "gone", 1.0, 2.0, status="diverged")  # a result too: re-running would diverge again
    outcome = run_cells([Cell("done", ["experiment=nope"], tmp_path / "done"),
                         Cell("gone", ["experiment=nope"], tmp_path / "gone")], log=messages.append)
    assert outcome == {"done": "completed", "gone": "diverged"} and all(m.startswith("[skip]") for m in messages)


def test_run_cells_leaves_a_run_another_process_is_training_to_it(tmp_path: Path) -> None:
    import os

    from secondorder.experiments.runner import exit_code
    from tests.helpers import lock_held_by_a_live_process

    with lock_held_by_a_live_process(tmp_path / "busy") as pid:
        messages: list[str] = []
        outcome = run_cells([Cell("busy", ["experiment=nope"], tmp_path / "busy")], log=messages.append)
        assert outcome == {"busy": "busy"} and messages[0].startswith("[busy] busy") and str(pid) in messages[0]
        assert sorted(os.listdir(tmp_path / "busy")) == [".lock"]  # nothing was started there
        lines: list[str] = []
        assert exit_code(outcome, lines.append) == 1 and "another process" in lines[0]


FAKE_TRAIN = """
import json, os, sys, time
from pathlib import Path
run_dir = Path(next(a for a in sys.argv if a.startswith("run_dir=")).split("=", 1)[1])
run_dir.mkdir(parents=True)
(run_dir / "started").touch()
deadline = time.time() + 20  # both runs must be going at once (jobs=2) to finish early
while time.time() < deadline and len(list(run_dir.parent.glob("*/started"))) < 2:
    time.sleep(0.05)
status = "completed" if len(list(run_dir.parent.glob("*/started"))) == 2 else "failed"
(run_dir / "summary.json").write_text(json.dumps({"status": status, "threads": os.environ["OMP_NUM_THREADS"]}))
"""


def test_run_cells_runs_jobs_at_once_with_a_share_of_the_cores(tmp_path: Path, monkeypatch) -> None:
    import sys

    from secondorder.experiments import runner

    monkeypatch.setattr(runner, "train_executable", lambda: [sys.executable, "-c", FAKE_TRAIN])
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 4)
    cells = [Cell(name, [], tmp_path / name) for name in ("a", "b")]
    assert run_cells(cells, log=lambda m: None, jobs=2) == {"a": "completed", "b": "completed"}
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["threads"] == "2"  # 4 cores / 2 jobs


def test_report_groups_seeds_with_mean_and_band(tmp_path: Path) -> None:
    from secondorder.report.command import main

    for seed, shift in enumerate((0.0, 2.0)):
        fake_run(tmp_path / "runs" / f"hf_seed{seed}", 10.0 + shift, 11.0 + shift)
    fake_run(tmp_path / "runs" / "other", 30.0, 31.0)
    other = json.loads((tmp_path / "runs" / "other" / "summary.json").read_text())
    other["optimizer"] = "adam"
    (tmp_path / "runs" / "other" / "summary.json").write_text(json.dumps(other))
    main([str(tmp_path / "runs"), "--group-by", "optimizer", "--out", str(tmp_path / "out")])
    for name in ("error_vs_iteration.png", "error_vs_time.png", "error_vs_gradients.png", "summary.md"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    text = (tmp_path / "out" / "summary.md").read_text()
    assert "| hf | 2 |" in text and "| adam | 1 |" in text


def test_a_cell_reports_train_and_test_of_one_evaluation_the_lowest_test(tmp_path: Path) -> None:
    """Best train (3.0, last) and best test (6.0, middle) come from different evaluations; the cell reports the
    middle one whole, as the thesis reports its stopping point."""
    fake_run(tmp_path / "run", 3.0, 8.0)
    pd.DataFrame({"iteration": [0, 5, 10], "wall_time_s": [0.0, 1.0, 2.0], "grad_evals": [0, 5, 10],
                  "train_error": [200.0, 5.0, 3.0], "test_error": [201.0, 6.0, 8.0]}).to_csv(
        tmp_path / "run" / "metrics.csv", index=False)
    table, frame = table_4_3.build_table({("curves", "rand_hf"): find_runs([tmp_path / "run"])}, "full", False)
    assert "ours 5.00, 6.00 |" in table
    row = frame.set_index(["row", "column"]).loc[("curves", "rand_hf")]
    assert (row["ours_train"], row["ours_test"], row["reported_iteration"]) == (5.0, 6.0, 5)


def test_numbers_print_as_the_thesis_prints_them() -> None:
    printed = [table_4_3._fmt(v) for v in (0.1, 0.74, 2.31, 55.4, 139.0, 124.4, 0.0636, None, float("nan"))]
    assert printed == ["0.10", "0.74", "2.31", "55.4", "139", "124", "0.064", "—", "—"]


def test_the_table_says_how_many_epochs_pt_ncg_ran(tmp_path: Path) -> None:
    fake_run(tmp_path / "ncg", 1.0, 2.0)
    summary = json.loads((tmp_path / "ncg" / "summary.json").read_text())
    (tmp_path / "ncg" / "summary.json").write_text(json.dumps({**summary, "epochs": 200.0}))
    table, _ = table_4_3.build_table({("curves", "pt_ncg"): find_runs([tmp_path / "ncg"])}, "full", False)
    assert "PT+NCG fine-tuning epochs run: curves 200. H&S ran 200" in table and "many more epochs" in table
