"""`make data`: one line per dataset, non-zero exit when something is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from secondorder.data import fetch
from secondorder.errors import DataError


def test_fetch_reports_each_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def missing(_: Path) -> None:
        raise DataError("not here; do this")

    monkeypatch.setattr(fetch, "CHECKS", [("present", lambda _: None), ("absent", missing)])
    assert fetch.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "ok       present" and out[1] == "missing  absent: not here; do this"
    monkeypatch.setattr(fetch, "CHECKS", [("present", lambda _: None)])
    assert fetch.main([str(tmp_path)]) == 0
