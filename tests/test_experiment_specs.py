"""Experiment specs: how they expand into cells, their one-line errors, and that the specs of the ``make
reproduce-*`` targets expand to exactly the cells the former Python declarations produced.

``tests/expected/reproduce_cells.json`` holds, per experiment and profile, every cell's name (in run order) and its
``train`` overrides (sorted: Hydra applies group choices before values and no key appears twice, so the order of
a cell's overrides does not change its run). It was written from the Python declarations that the specs replace,
with the renamed optimiser options (``optimizer.approx`` → ``optimizer.approximation``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from secondorder.errors import ConfigError
from secondorder.experiments.expansion import evaluate, expand, merge, override_key, render
from secondorder.experiments.spec import STANDINS, Spec, available_specs, load_spec, parse_spec, standin_map

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


def spec(**entries) -> Spec:
    """A spec from keyword sections (YAML-shaped dicts), with an inline stand-in map."""
    raw = {"title": "t", "profiles": {"quick": {"data": "standin", "budget": ["trainer.max_time_s=5"]},
                                      "full": {"seeds": 3}},
           "standins": {"mnist": ["dataset=mnist_5k"]}, **entries}
    return parse_spec("toy", raw)


def test_layers_merge_with_later_overrides_replacing_earlier_ones() -> None:
    toy = spec(problems={"mnist": {"overrides": ["dataset=mnist", "trainer.max_time_s=1"], "data": "mnist",
                                   "per_profile": {"quick": ["trainer.max_time_s=9"]}}},
               methods={"adam": {"overrides": ["optimizer=adam", "dataset=curves"],
                                 "per_profile": {"full": ["trainer.max_steps=7"]}}})
    (quick,) = expand(toy, "quick", Path("r"))
    # method < problem < stand-in < profile budget < problem per-profile < method per-profile
    assert quick.overrides == ["optimizer=adam", "dataset=mnist_5k", "trainer.max_time_s=9"]
    assert quick.name == "mnist__adam" and quick.seeds == 1 and quick.labels == {"problem": "mnist",
                                                                                 "method": "adam", "entry": "adam"}
    (full,) = expand(toy, "full", Path("r"))
    assert full.overrides == ["optimizer=adam", "dataset=mnist", "trainer.max_time_s=1", "trainer.max_steps=7"]
    assert full.seeds == 3 and [r.key for r in full.seed_runs()] == [f"mnist__adam/seed{s}" for s in range(3)]
    assert full.seed_runs()[2].overrides[-1] == "seed=2" and full.seed_runs()[2].run_dir == Path("r/mnist__adam/seed2")
    assert quick.seed_runs()[0].overrides == quick.overrides and quick.seed_runs()[0].run_dir == Path("r/mnist__adam")


def test_grids_placeholders_rules_and_profiles() -> None:
    toy = spec(cell="{problem}_{method}",
               problems={"lags": {"grid": {"task": ["a", "b"], "T": [10, 30]}, "label": "{task}_T{T}",
                                  "vars": {"updates": 400}, "overrides": ["dataset={task}", "dataset.T={T}"],
                                  "when": [{"match": {"task": "b"},
                                            "overrides": ["optimizer.initial_lambda={0.1 * T}"]}]},
                         "only_full": {"profiles": ["full"], "methods": ["hf"]}},
               methods={"sgd": {"grid": {"k": [6, 7], "f": [1, 0.25]}, "label": "lr2^-{k}_T{f}",
                                "overrides": ["optimizer.lr={2.0 ** -k}",
                                              "optimizer.lr_halving_period={int(updates * f)}",
                                              "optimizer.initial_lambda=0.3"]},
                        "hf": {"profiles": ["full"], "overrides": ["optimizer=hf"]}})
    quick = {c.name: c for c in expand(toy, "quick", Path("r"))}
    assert list(quick)[:5] == ["a_T10_lr2^-6_T1", "a_T10_lr2^-6_T0.25", "a_T10_lr2^-7_T1", "a_T10_lr2^-7_T0.25",
                               "a_T30_lr2^-6_T1"]
    assert len(quick) == 4 * 4  # problems a/b × T, methods k × f; hf and only_full run in full only
    b = quick["b_T30_lr2^-7_T0.25"]
    assert b.overrides == ["optimizer.lr=0.0078125", "optimizer.lr_halving_period=100", "dataset=b", "dataset.T=30",
                           "optimizer.initial_lambda=3.0", "trainer.max_time_s=5"]
    assert "optimizer.initial_lambda=0.3" in quick["a_T30_lr2^-7_T0.25"].overrides
    assert b.labels == {"task": "b", "T": 30, "updates": 400, "k": 7, "f": 0.25, "problem": "b_T30",
                        "method": "lr2^-7_T0.25", "entry": "sgd"}
    full = [c.name for c in expand(toy, "full", Path("r"))]
    assert len(full) == 4 * 5 + 1 and "a_T10_hf" in full and full[-1] == "only_full_hf"


def test_placeholders_evaluate_arithmetic_only() -> None:
    assert render("lr={2.0 ** -k} T={int(n * f)} {name}_{round(x, 1)} ${keep}", {
        "k": 3, "n": 40000, "f": 0.0625, "name": "adam", "x": 0.26}) == "lr=0.125 T=2500 adam_0.3 ${keep}"
    assert evaluate("-(a + 1) // 2 % 5", {"a": 6}) == (-(6 + 1) // 2) % 5
    for bad in ("__import__('os')", "a.b", "[1]", "k if k else 1"):
        with pytest.raises(ConfigError, match="only variables"):
            evaluate(bad, {"k": 1, "a": 1})
    with pytest.raises(ConfigError, match="no variable 'q'; known: k"):
        render("{q}", {"k": 1})
    assert merge(["a=1", "+b=2", "a=3", "~b"]) == ["a=3", "~b"] and override_key("++x.y=1") == "x.y"


@pytest.mark.parametrize(("entries", "message"), [
    ({"methods": {"m": {"overides": []}}}, "methods.m: unknown key 'overides'; allowed:"),
    ({"methods": {"m": {"grid": {"k": [1, 2]}}}}, 'a grid entry needs a label template naming its variables, e.g. '
                                                  'label: "m_{k}"'),
    ({"methods": {"m": ["optimizer"]}}, "'optimizer' is not a train override; write key=value"),
    ({"problems": {"p": {"methods": ["nope"]}}}, "problems.p: unknown method 'nope'; methods: m"),
    ({"problems": {"p": {"profiles": ["evidence"]}}}, "p: unknown profile 'evidence'; profiles: quick, full"),
    ({"problems": {"p": {"data": "faces"}}}, "data 'faces' has no stand-in; add it to the stand-in map"),
    ({"profiles": {"quick": {"seeds": 0}}}, "profiles.quick: seeds must be a positive integer, got 0"),
    ({"profiles": {"quick": {"data": "offline"}}}, "data must be 'real' or 'standin'"),
    ({"cell": "{method}"}, "two cells are named 'm'; make the labels distinct"),
])
def test_spec_mistakes_are_one_line_errors(entries: dict, message: str) -> None:
    sections = {"problems": {"p": {}, "q": {}}, "methods": {"m": ["optimizer=sgd"]}, **entries}
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        expand(spec(**sections), "quick", Path("r"))
    assert "\n" not in str(error.value) and str(error.value).startswith("experiment toy")


def test_standins_are_declared_once_and_shared() -> None:
    shared = standin_map(STANDINS, "test")
    assert shared == {"curves": ("dataset.n_train=4000", "dataset.n_test=2000"), "mnist": ("dataset=mnist_5k",),
                      "faces": ("dataset=faces_lfw", "dataset.variants_per_image=40"),
                      "mnist_parity": ("dataset=mnist_5k_parity",)}
    for name in available_specs():
        assert load_spec(name).standins == shared
    assert STANDINS not in available_specs()
    with pytest.raises(ConfigError, match="unknown experiment 'standins'"):
        load_spec(STANDINS)


def test_a_bad_placeholder_names_the_spec_and_the_entries() -> None:
    toy = spec(problems={"p": ["dataset={task}"]}, methods={"m": ["optimizer=sgd"]})
    with pytest.raises(ConfigError, match=re.escape("experiment toy: p × m: {task}: no variable 'task'; known: "
                                                    "entry, method, problem")):
        expand(toy, "quick", Path("r"))


def test_the_readme_example_spec_expands() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    example = readme.split("**A spec**", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    readme_spec = parse_spec("readme", yaml.safe_load(example))
    quick = {c.name: c.overrides for c in expand(readme_spec, "quick", Path("r"))}
    assert quick == {"curves__kfra": ["optimizer=kfra", "objective.l2=1e-5", "dataset=curves", "dataset.n_train=4000",
                                      "dataset.n_test=2000", "trainer.max_steps=null", "trainer.max_time_s=45",
                                      "trainer.eval_every=100"]}
    full = {c.name: c.overrides for c in expand(readme_spec, "full", Path("r"))}
    assert len(full) == 1 + 2 * 3 * 2 and full["curves__adam_lr2^-8_T0.5"] == [
        "optimizer=adam", "optimizer.lr=0.00390625", "optimizer.lr_halving_period=20000", "dataset=curves",
        "trainer.max_steps=40000"]


def test_tuning_budget_and_trials_per_profile() -> None:
    toy = spec(methods={"sgd": ["optimizer=sgd"]}, problems={"mnist": {"overrides": ["dataset=mnist"]}},
               tuning={"profiles": ["quick", "full"], "methods": ["sgd"], "search": "george_lr",
                       "budget": ["trainer.max_steps=100"], "trials": 20,
                       "per_profile": {"quick": {"budget": ["trainer.max_time_s=3"], "trials": 4}}})
    assert toy.tuning.for_profile("quick") == (("trainer.max_time_s=3",), 4)
    assert toy.tuning.for_profile("full") == (("trainer.max_steps=100",), 20)
    george = load_spec("george").tuning
    assert george.for_profile("evidence")[1] == 8 and "nnn" in george.methods
    with pytest.raises(ConfigError, match=r"per_profile\.quick: unknown key 'steps'"):
        spec(methods={"sgd": ["optimizer=sgd"]}, problems={"mnist": {"overrides": ["dataset=mnist"]}},
             tuning={"methods": ["sgd"], "search": "george_lr", "per_profile": {"quick": {"steps": 3}}})


def test_a_tuning_search_per_method() -> None:
    entries = {"methods": {"sgd": ["optimizer=sgd"], "acp": ["optimizer=acp"]},
               "problems": {"mnist": {"overrides": ["dataset=mnist"]}}}
    toy = spec(**entries, tuning={"methods": ["sgd", "acp"], "search": {"default": "george_lr", "acp": "george_acp"}})
    assert (toy.tuning.search_for("sgd"), toy.tuning.search_for("acp")) == ("george_lr", "george_acp")
    with pytest.raises(ConfigError, match="needs a 'default' entry"):
        spec(**entries, tuning={"methods": ["acp"], "search": {"acp": "george_acp"}})
    with pytest.raises(ConfigError, match="search for 'nnn', which is not tuned"):
        spec(**entries, tuning={"methods": ["acp"], "search": {"default": "george_lr", "nnn": "george_acp"}})
    with pytest.raises(ConfigError, match="unknown problem 'cifar10'"):
        spec(**entries, tuning={"methods": ["acp"], "search": "george_lr", "problems": ["cifar10"]})
