"""From a spec and a profile to cells: the problems × methods (grids expanded), each with its ``train`` overrides.

A cell's overrides are layered, a later layer replacing an earlier override of the same key (Hydra's "last one
wins", made explicit so that no key appears twice):

    1. the method's overrides (and its ``when`` rules),
    2. the problem's overrides (and its ``when`` rules),
    3. the stand-in data of the problem's ``data`` entry, when the profile's data is ``standin``,
    4. the profile's budget and evaluation overrides,
    5. the problem's overrides for this profile (``per_profile``),
    6. the method's overrides for this profile.

``{…}`` in an override, a label or the cell-name template is a placeholder: a variable (``{problem}``,
``{method}``, a grid or ``vars`` variable) or arithmetic on them (``{2.0 ** -k}``, ``{int(updates * T)}``),
rendered with ``str`` (so ``{2.0 ** -9}`` gives ``0.001953125``). ``${…}`` (Hydra interpolation) is left alone.
"""

from __future__ import annotations

import ast
import itertools
import operator
import re
from pathlib import Path
from typing import Any

from secondorder.errors import ConfigError
from secondorder.experiments.runner import Cell
from secondorder.experiments.spec import Entry, Spec

PLACEHOLDER = re.compile(r"(?<!\$)\{([^{}]+)\}")
OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
             ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow, ast.Mod: operator.mod}
FUNCTIONS = {"int": int, "float": float, "round": round}


def evaluate(expression: str, variables: dict[str, Any]) -> Any:
    """The value of a placeholder: numbers, strings, variables, + − × / // ** %, int(), float(), round()."""

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in variables:
                raise ConfigError(f"{{{expression}}}: no variable {node.id!r}; known: {', '.join(sorted(variables))}")
            return variables[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
            return OPERATORS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = value(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS
                and not node.keywords):
            return FUNCTIONS[node.func.id](*(value(a) for a in node.args))
        raise ConfigError(f"{{{expression}}}: only variables, numbers, + - * / // ** % and int / float / round "
                          "are allowed in a placeholder")

    try:
        return value(ast.parse(expression.strip(), mode="eval").body)
    except SyntaxError:
        raise ConfigError(f"{{{expression}}} is not an expression") from None


def render(template: str, variables: dict[str, Any]) -> str:
    """Replace each ``{expression}`` of ``template`` by its value."""
    return PLACEHOLDER.sub(lambda m: str(evaluate(m.group(1), variables)), template)


def override_key(override: str) -> str:
    """``optimizer.lr=0.1`` → ``optimizer.lr``; ``+x=1`` and ``~x`` → ``x``; ``dataset=mnist`` → ``dataset``."""
    return override.partition("=")[0].lstrip("+~")


def merge(overrides: list[str]) -> list[str]:
    """Later overrides replace earlier ones of the same key; the replacement takes the later position."""
    merged: dict[str, str] = {}
    for override in overrides:
        key = override_key(override)
        merged.pop(key, None)
        merged[key] = override
    return list(merged.values())


def instances(entry: Entry) -> list[dict[str, Any]]:
    """The entry's variables at each grid point (first axis outermost); one point without a grid."""
    axes = list(entry.grid)
    return [{**entry.vars, **dict(zip(axes, point, strict=True))}
            for point in itertools.product(*entry.grid.values())]


def _with_rules(entry: Entry, variables: dict[str, Any]) -> list[str]:
    return [*entry.overrides, *(o for rule in entry.when if rule.applies(variables) for o in rule.overrides)]


def cell_overrides(spec: Spec, profile: str, problem: Entry, method: Entry, variables: dict[str, Any]) -> list[str]:
    """The six layers of the module docstring, merged and rendered."""
    settings = spec.profile(profile)
    standin = spec.standins.get(problem.data, ()) if settings.data == "standin" and problem.data else ()
    layers = [*_with_rules(method, variables), *_with_rules(problem, variables), *standin, *settings.budget,
              *settings.evaluation, *problem.per_profile.get(profile, ()), *method.per_profile.get(profile, ())]
    return merge([render(o, variables) for o in layers])


def expand(spec: Spec, profile: str, runs_root: Path) -> list[Cell]:
    """Every cell of ``spec`` in ``profile``: problems (outer) × methods, grids expanded, run folders under
    ``runs_root``. Labels carry ``problem``, ``method`` (the rendered label), ``entry`` (the spec's method key) and
    every variable, for reports."""
    settings = spec.profile(profile)
    cells: list[Cell] = []
    for problem in (p for p in spec.problems if p.runs_in(profile)):
        for problem_vars in instances(problem):
            try:
                problem_label = render(problem.label, problem_vars)
            except ConfigError as exc:
                raise ConfigError(f"experiment {spec.name}: problems.{problem.key}: {exc}") from None
            for method in (m for m in spec.methods_for(problem) if m.runs_in(profile)):
                for method_vars in instances(method):
                    try:
                        variables = {**problem_vars, **method_vars, "problem": problem_label,
                                     "method": render(method.label, method_vars), "entry": method.key}
                        if problem.measures != ("error",):  # the report's plotted measures, where not the default
                            variables["measures"] = problem.measures
                        name = render(spec.cell, variables)
                        overrides = cell_overrides(spec, profile, problem, method, variables)
                    except ConfigError as exc:
                        raise ConfigError(f"experiment {spec.name}: {problem.key} × {method.key}: {exc}") from None
                    cells.append(Cell(name, overrides, runs_root / name, variables, settings.seeds))
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"experiment {spec.name}: two cells are named {twice!r}; make the labels distinct")
    return cells
