"""The one-way line between the library and the application (README "Architecture").

Library: the maths and the trainer (curvature, kfac, optim, problems, data, models, pretraining, losses, metrics,
config composition and validation, train, checkpoints, run records). Application: what a user types (cli, sweep and
search, experiments, bench, report, the Hydra sweeper plugin). The library never imports the application, and no
module hides an import inside a function (the usual way to dodge an import cycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "secondorder"
APPLICATION = ("cli", "sweep", "search", "search_history", "experiments", "bench", "report")


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "conf" not in p.relative_to(PACKAGE).parts)


def is_application(path: Path) -> bool:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py") in APPLICATION


def imported_modules(tree: ast.AST) -> list[tuple[str, ast.stmt]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node))
    return found


def function_level_imports(tree: ast.AST) -> list[ast.stmt]:
    out = []
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out += [n for n in ast.walk(function) if isinstance(n, (ast.Import, ast.ImportFrom))]
    return out


def violations_of_the_line(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {name}"
            for name, node in imported_modules(tree)
            if name.split(".")[0] == "secondorder" and len(name.split(".")) > 1
            and name.split(".")[1] in APPLICATION]


@pytest.mark.parametrize("path", [p for p in modules() if not is_application(p)],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_library_never_imports_the_application(path: Path) -> None:
    assert violations_of_the_line(path) == []


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_our_own_code_inside_a_function(path: Path) -> None:
    hidden = [f"{path.relative_to(PACKAGE.parent)}:{node.lineno}" for node in function_level_imports(
        ast.parse(path.read_text())) if (getattr(node, "module", None) or node.names[0].name).startswith("secondorder")]
    assert hidden == []


def test_the_checks_can_fail(tmp_path: Path) -> None:
    source = "import torch\nfrom secondorder.cli import train\n\ndef f():\n    from secondorder.sweep import main\n"
    tree = ast.parse(source)
    assert [name for name, _ in imported_modules(tree)] == ["torch", "secondorder.cli", "secondorder.sweep"]
    assert len(function_level_imports(tree)) == 1
