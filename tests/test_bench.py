"""The curvature benchmark writes its table with provenance (its numbers are not asserted on)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from secondorder.bench import curvature


def test_curvature_benchmark_writes_its_table(tmp_path: Path) -> None:
    folder = curvature.main(["--device", "cpu", "--models", "tiny", "--batches", "16", "--repeats", "1",
                             "--out", str(tmp_path)])
    table = pd.read_csv(folder / "curvature.csv")
    assert set(table.quantity) == {"gradient", "ggn_cached", "ggn_cached_setup", "ggn_uncached",
                                   "ggn_double_backward", "hessian"}
    assert (table.median_s > 0).all() and (table.ratio_to_gradient > 0).all()
    text = (folder / "curvature.md").read_text()
    assert "Device: cpu" in text and "torch" in text and "× gradient" in text


def test_method_configs_come_from_the_yaml_files() -> None:
    from secondorder.bench.kfac import method_config

    kfra = method_config("kfra", 500)
    assert (kfra.factors, kfra.momentum, kfra.inverse_period, kfra.batch_size) == ("kfra", False, 1, 500)
    assert method_config("kflr", 500).factors == "kflr" and method_config("kfac_tridiag", 8).approximation == "tridiag"


def test_kfac_benchmark_writes_its_table(tmp_path: Path) -> None:
    from secondorder.bench import kfac

    folder = kfac.main(["--device", "cpu", "--models", "tiny", "--batch", "32", "--iterations", "2",
                        "--kflr-iterations", "1", "--out", str(tmp_path)])
    table = pd.read_csv(folder / "kfac.csv")
    assert list(table.method) == ["kfac", "kfac_tridiag", "kfra", "kflr"]
    assert (table.ratio_to_adam > 0).all() and (table.ratio_to_gradient > 0).all()
    assert "× K-FAC" in (folder / "kfac.md").read_text()
