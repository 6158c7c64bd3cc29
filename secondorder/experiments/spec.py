"""Experiment specs: a paper experiment declared as data (``conf/reproduce/<name>.yaml``).

A spec names its problems and methods — each a list of ``train`` overrides, optionally a grid of variables — and
its profiles (``quick``, ``full``, …): seeds, budget, evaluation cadence, real or stand-in data. The shared map of
offline stand-in data lives once in ``conf/reproduce/standins.yaml``. :mod:`secondorder.experiments.expansion`
turns a spec and a profile into cells; the layout of a spec is described in the README ("Paper experiments").

Every mistake in a spec (an unknown key, a missing field, a wrong type) is a one-line :class:`ConfigError` that
names the spec, the entry and what to write instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from secondorder.composition import CONF_DIR
from secondorder.errors import ConfigError

SPEC_DIR = CONF_DIR / "reproduce"
STANDINS = "standins"  # conf/reproduce/standins.yaml: the shared stand-in data map, not an experiment

SPEC_KEYS = {"title", "claims", "notes", "cell", "hooks", "standins", "profiles", "problems", "methods", "tuning"}
PROFILE_KEYS = {"seeds", "data", "reduced", "note", "budget", "evaluation", "runs", "jobs"}
ENTRY_KEYS = {"label", "overrides", "per_profile", "profiles", "grid", "vars", "when"}
PROBLEM_KEYS = ENTRY_KEYS | {"data", "methods", "measures"}
MEASURES = ("error", "loss")  # what a problem's plots show: the metric, or the objective's data term
RULE_KEYS = {"match", "overrides"}
TUNING_KEYS = {"profiles", "methods", "problems", "search", "budget", "trials", "per_profile"}


@dataclass(frozen=True)
class Profile:
    """How much to run: seeds per cell, real or stand-in data, budget and evaluation overrides for every cell."""

    name: str
    seeds: int = 1
    data: str = "real"  # "real" | "standin" (each problem's ``data`` replaced from the stand-in map)
    reduced: bool = False  # reports label the numbers as not comparable with the paper's
    note: str | None = None  # Markdown shown at the top of every report of this profile
    budget: tuple[str, ...] = ()
    evaluation: tuple[str, ...] = ()
    runs: str | None = None  # where run folders go (``~`` expanded; + ``/<experiment>/<profile>``); None: ``runs/``
    jobs: int = 1  # runs at once on this machine (each with cores / jobs threads); wall-clock budgets assume 1


@dataclass(frozen=True)
class Rule:
    """Overrides added where every ``match`` variable has one of the listed values (e.g. ``task: [xor]``)."""

    match: dict[str, tuple[Any, ...]]
    overrides: tuple[str, ...]

    def applies(self, variables: dict[str, Any]) -> bool:
        return all(variables.get(name) in values for name, values in self.match.items())


@dataclass(frozen=True)
class Entry:
    """A problem or a method: overrides, per-profile overrides, the profiles it runs in, and an optional grid.

    ``grid`` maps variable names to value lists; the entry expands to their Cartesian product (first axis
    outermost), each point labelled by the ``label`` template (e.g. ``"{optimizer}_lr2^-{k}"``).
    """

    key: str
    label: str
    overrides: tuple[str, ...] = ()
    per_profile: dict[str, tuple[str, ...]] = field(default_factory=dict)
    profiles: tuple[str, ...] | None = None  # None: every profile
    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    when: tuple[Rule, ...] = ()
    data: str | None = None  # problems: the stand-in map's entry for this problem's data
    methods: tuple[str, ...] | None = None  # problems: the method entries it runs (None: all)
    measures: tuple[str, ...] = ("error",)  # problems: plotted measures (``<problem>_<measure>_vs_*.png``)

    def runs_in(self, profile: str) -> bool:
        return self.profiles is None or profile in self.profiles


@dataclass(frozen=True)
class Tuning:
    """Learning-rate tuning before the comparison: a ``sweep`` of ``search`` per listed method (George 2017)."""

    profiles: tuple[str, ...]
    methods: tuple[str, ...]
    search: str
    budget: tuple[str, ...]
    trials: int
    per_profile: dict[str, tuple[tuple[str, ...], int]] = field(default_factory=dict)  # profile → (budget, trials)
    problems: tuple[str, ...] = ()  # the problems whose cells are tuned; () = every problem
    searches: dict[str, str] = field(default_factory=dict)  # method entry → its own search (else ``search``)

    def search_for(self, entry: str) -> str:
        """The search (``conf/search/<name>.yaml``) that tunes the method entry ``entry``."""
        return self.searches.get(entry, self.search)

    def for_profile(self, profile: str) -> tuple[tuple[str, ...], int]:
        """The trial budget and the number of trials in ``profile``."""
        return self.per_profile.get(profile, (self.budget, self.trials))


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    profiles: dict[str, Profile]
    problems: tuple[Entry, ...]
    methods: tuple[Entry, ...]
    cell: str = "{problem}__{method}"  # run-folder name of a cell
    claims: tuple[str, ...] = ()  # the paper's claims, cited by section / table / figure
    notes: tuple[str, ...] = ()  # our choices and how the profiles differ from the paper
    hooks: str | None = None  # registered report / prepare hooks (secondorder.experiments.reproduce.HOOKS)
    standins: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tuning: Tuning | None = None

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise ConfigError(f"experiment {self.name} has no profile {name!r}; choose one of "
                              f"{', '.join(self.profiles)}")
        return self.profiles[name]

    def methods_for(self, problem: Entry) -> list[Entry]:
        if problem.methods is None:
            return list(self.methods)
        by_key = {m.key: m for m in self.methods}
        return [by_key[key] for key in problem.methods]


def available_specs() -> list[str]:
    """Experiment names: the YAML files of ``conf/reproduce/`` other than the stand-in map."""
    return sorted(p.stem for p in SPEC_DIR.glob("*.yaml") if p.stem != STANDINS)


def spec_path(target: str) -> Path:
    """``kfra`` → ``conf/reproduce/kfra.yaml``; a path to a ``.yaml`` file is taken as it is."""
    if target.endswith((".yaml", ".yml")):
        path = Path(target)
        if not path.exists():
            raise ConfigError(f"no experiment spec at {path}")
        return path
    path = SPEC_DIR / f"{target}.yaml"
    if target == STANDINS or not path.exists():
        raise ConfigError(f"unknown experiment {target!r}; available: {', '.join(available_specs())} "
                          "(or give the path of a spec .yaml)")
    return path


def load_spec(target: str) -> Spec:
    """The validated spec of an experiment name (``conf/reproduce/``) or of a spec file's path."""
    path = spec_path(target)
    raw = _read(path)
    return parse_spec(path.stem, raw)


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with title, profiles, problems and methods")
    return raw


def standin_map(value: Any, where: str) -> dict[str, tuple[str, ...]]:
    """A spec's ``standins``: the name of a map in ``conf/reproduce/`` (default ``standins``) or a mapping."""
    if isinstance(value, str):
        path = SPEC_DIR / f"{value}.yaml"
        if not path.exists():
            raise ConfigError(f"{where}: standins {value!r}: no {path}")
        value = _read(path)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: standins must name a map in conf/reproduce/ or be a mapping data → overrides")
    return {str(k): _overrides(v, f"{where}: standins.{k}") for k, v in value.items()}


def parse_spec(name: str, raw: dict[str, Any]) -> Spec:
    where = f"experiment {name}"
    _keys(raw, SPEC_KEYS, where)
    for required in ("title", "profiles", "problems", "methods"):
        if required not in raw:
            raise ConfigError(f"{where}: missing '{required}' (see README, Paper experiments)")
    profiles = {str(k): _profile(str(k), v, f"{where}: profiles.{k}") for k, v in _mapping(
        raw["profiles"], f"{where}: profiles").items()}
    methods = tuple(_entry(str(k), v, f"{where}: methods.{k}", ENTRY_KEYS)
                    for k, v in _mapping(raw["methods"], f"{where}: methods").items())
    problems = tuple(_entry(str(k), v, f"{where}: problems.{k}", PROBLEM_KEYS)
                     for k, v in _mapping(raw["problems"], f"{where}: problems").items())
    method_keys = {m.key for m in methods}
    for entry in (*problems, *methods):
        unknown = [p for p in (entry.profiles or ()) if p not in profiles] + [
            p for p in entry.per_profile if p not in profiles]
        if unknown:
            raise ConfigError(f"{where}: {entry.key}: unknown profile {unknown[0]!r}; "
                              f"profiles: {', '.join(profiles)}")
    for problem in problems:
        missing = [m for m in (problem.methods or ()) if m not in method_keys]
        if missing:
            raise ConfigError(f"{where}: problems.{problem.key}: unknown method {missing[0]!r}; "
                              f"methods: {', '.join(sorted(method_keys))}")
    standins = standin_map(raw.get("standins", STANDINS), where)
    needed = {p.data for p in problems if p.data is not None} - set(standins)
    if needed and any(p.data == "standin" for p in profiles.values()):
        raise ConfigError(f"{where}: data {sorted(needed)[0]!r} has no stand-in; add it to the stand-in map")
    return Spec(name=name, title=str(raw["title"]), profiles=profiles, problems=problems, methods=methods,
                cell=str(raw.get("cell", "{problem}__{method}")), claims=_strings(raw.get("claims"), where),
                notes=_strings(raw.get("notes"), where), hooks=raw.get("hooks"), standins=standins,
                tuning=_tuning(raw.get("tuning"), f"{where}: tuning", method_keys, {p.key for p in problems}))


def _profile(name: str, raw: Any, where: str) -> Profile:
    raw = _mapping(raw, where)
    _keys(raw, PROFILE_KEYS, where)
    seeds = raw.get("seeds", 1)
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise ConfigError(f"{where}: seeds must be a positive integer, got {seeds!r}")
    data = raw.get("data", "real")
    if data not in ("real", "standin"):
        raise ConfigError(f"{where}: data must be 'real' or 'standin', got {data!r}")
    runs = raw.get("runs")
    if runs is not None and (not isinstance(runs, str) or not runs.strip()):
        raise ConfigError(f"{where}: runs must be a folder path, got {runs!r}")
    jobs = raw.get("jobs", 1)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ConfigError(f"{where}: jobs must be a positive integer, got {jobs!r}")
    return Profile(name, seeds, data, bool(raw.get("reduced", False)), raw.get("note"),
                   _overrides(raw.get("budget"), f"{where}.budget"),
                   _overrides(raw.get("evaluation"), f"{where}.evaluation"), runs, jobs)


def _entry(key: str, raw: Any, where: str, allowed: set[str]) -> Entry:
    raw = {} if raw is None else raw
    if isinstance(raw, list):  # shorthand: a bare list of overrides
        raw = {"overrides": raw}
    raw = _mapping(raw, where)
    _keys(raw, allowed, where)
    grid = {str(k): tuple(_list(v, f"{where}.grid.{k}")) for k, v in _mapping(raw.get("grid", {}),
                                                                             f"{where}.grid").items()}
    if grid and "label" not in raw:
        raise ConfigError(f"{where}: a grid entry needs a label template naming its variables, e.g. "
                          f"label: \"{key}_" + "_".join(f"{{{v}}}" for v in grid) + '"')
    per_profile = {str(k): _overrides(v, f"{where}.per_profile.{k}")
                   for k, v in _mapping(raw.get("per_profile", {}), f"{where}.per_profile").items()}
    profiles = raw.get("profiles")
    methods = raw.get("methods")
    measures = tuple(map(str, _list(raw.get("measures", ["error"]), f"{where}.measures")))
    unknown = [m for m in measures if m not in MEASURES]
    if unknown:
        raise ConfigError(f"{where}.measures: {unknown[0]!r} is not one of {', '.join(MEASURES)}")
    return Entry(key=key, label=str(raw.get("label", key)), overrides=_overrides(raw.get("overrides"), where),
                 per_profile=per_profile, profiles=None if profiles is None else tuple(_list(profiles, where)),
                 grid=grid, vars=dict(_mapping(raw.get("vars", {}), f"{where}.vars")),
                 when=tuple(_rule(r, f"{where}.when") for r in _list(raw.get("when", []), f"{where}.when")),
                 data=raw.get("data"), methods=None if methods is None else tuple(map(str, _list(methods, where))),
                 measures=measures)


def _rule(raw: Any, where: str) -> Rule:
    raw = _mapping(raw, where)
    _keys(raw, RULE_KEYS, where)
    match = {str(k): tuple(v) if isinstance(v, list) else (v,) for k, v in _mapping(raw.get("match"),
                                                                                    f"{where}.match").items()}
    return Rule(match, _overrides(raw.get("overrides"), where))


def _tuning(raw: Any, where: str, method_keys: set[str], problem_keys: set[str]) -> Tuning | None:
    if raw is None:
        return None
    raw = _mapping(raw, where)
    _keys(raw, TUNING_KEYS, where)
    if "search" not in raw:
        raise ConfigError(f"{where}: name the search space (conf/search/), e.g. search: george_lr, or "
                          "search: {default: george_lr, acp: george_acp}")
    search, searches = raw["search"], {}
    if isinstance(search, dict):
        searches = {str(k): str(v) for k, v in search.items() if k != "default"}
        if "default" not in search:
            raise ConfigError(f"{where}: a per-method search needs a 'default' entry")
        search = search["default"]
    methods = tuple(map(str, _list(raw.get("methods", []), where)))
    unknown = [m for m in methods if m not in method_keys]
    if unknown:
        raise ConfigError(f"{where}: unknown method {unknown[0]!r}")
    budget, trials = _overrides(raw.get("budget"), f"{where}.budget"), int(raw.get("trials", 20))
    per_profile = {}
    for profile, entry in _mapping(raw.get("per_profile", {}), f"{where}.per_profile").items():
        entry = _mapping(entry, f"{where}.per_profile.{profile}")
        _keys(entry, {"budget", "trials"}, f"{where}.per_profile.{profile}")
        per_profile[str(profile)] = (_overrides(entry.get("budget", list(budget)), f"{where}.per_profile.{profile}"),
                                     int(entry.get("trials", trials)))
    problems = tuple(map(str, _list(raw.get("problems", []), f"{where}.problems")))
    if set(problems) - problem_keys:
        raise ConfigError(f"{where}: unknown problem {sorted(set(problems) - problem_keys)[0]!r}")
    if set(searches) - set(methods):
        raise ConfigError(f"{where}: search for {sorted(set(searches) - set(methods))[0]!r}, which is not tuned")
    return Tuning(tuple(_list(raw.get("profiles", []), where)), methods, str(search), budget, trials,
                  per_profile, problems, searches)


def _keys(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")


def _mapping(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    return raw


def _list(raw: Any, where: str) -> list[Any]:
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: expected a list, got {type(raw).__name__}")
    return raw


def _overrides(raw: Any, where: str) -> tuple[str, ...]:
    """A list of ``train`` overrides (``key=value`` strings)."""
    if raw is None:
        return ()
    items = _list(raw, where)
    bad = [o for o in items if not isinstance(o, str) or ("=" not in o and not o.startswith("~"))]
    if bad:
        raise ConfigError(f"{where}: {bad[0]!r} is not a train override; write key=value (quote it in YAML)")
    return tuple(items)


def _strings(raw: Any, where: str) -> tuple[str, ...]:
    return tuple(str(s) for s in _list(raw, where)) if raw is not None else ()
