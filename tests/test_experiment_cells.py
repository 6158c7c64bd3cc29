"""The experiment specs expand to exactly the cells the former Python declarations produced.

``tests/expected/reproduce_cells.json`` holds, per experiment and profile, every cell's name (in run order) and its
``train`` overrides (sorted: Hydra applies group choices before values and no key appears twice, so the order of
a cell's overrides does not change its run). It was written from the Python declarations that the specs replace,
with the renamed optimiser options (``optimizer.approx`` → ``optimizer.approximation``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secondorder.experiments.expansion import expand, override_key
from secondorder.experiments.spec import available_specs, load_spec

EXPECTED = json.loads((Path(__file__).parent / "expected" / "reproduce_cells.json").read_text())


def test_every_make_target_has_a_spec() -> None:
    assert set(EXPECTED) <= set(available_specs())


@pytest.mark.parametrize(("name", "profile"), [(n, p) for n in EXPECTED for p in EXPECTED[n]])
def test_spec_expands_to_the_expected_cells(name: str, profile: str) -> None:
    cells = expand(load_spec(name), profile, Path("runs"))
    assert [c.name for c in cells] == list(EXPECTED[name][profile])
    for cell in cells:
        assert sorted(cell.overrides) == EXPECTED[name][profile][cell.name], cell.name
        keys = [override_key(o) for o in cell.overrides]
        assert len(keys) == len(set(keys)), cell.name  # no key twice: the order of overrides is immaterial
        assert cell.run_dir == Path("runs") / cell.name
