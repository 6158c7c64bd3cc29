"""Citations a reader can check: no line numbers into transcriptions of the papers, no files outside the repository.

A reader has the papers, not our working notes: cite "thesis §6.6.5", "Botev et al. 2017, App. C" or "Martens' released
K-FAC code", never ``L3294`` / ``L1773–L1780``, "seed002 report" or "design.md".
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCOPE = ("secondorder", "conf", "scripts", "hydra_plugins", "Makefile", "README.md")

FORBIDDEN = re.compile(
    r"\bL\d{2,}(?:\s*[–-]\s*L?\d+)?\b"  # a line number: L1234, L12–L34, L1406–1410
    r"|\bseed ?00\d"                    # a seed file or its report: seed002, seed 004
    r"|\bdesign\.md\b"
    r"|\banchors\.md\b"
)


def offences(text: str) -> list[str]:
    """Every forbidden citation in ``text``, as ``line: match``."""
    return [f"{number}: {match.group(0)}" for number, line in enumerate(text.splitlines(), 1)
            for match in FORBIDDEN.finditer(line)]


def tracked_files() -> list[str]:
    """The repository's tracked files in scope (``git ls-files``; a plain walk where git is unavailable)."""
    try:
        listed = subprocess.run(["git", "ls-files", "--", *SCOPE], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        listed = [str(p.relative_to(ROOT)) for top in SCOPE for p in (ROOT / top).rglob("*")
                  if "__pycache__" not in p.parts] + (["README.md"] if (ROOT / "README.md").exists() else [])
    return sorted(set(listed))


@pytest.mark.parametrize("text", [
    "(thesis L3294)", "L1773–L1780", "L12-L34", "(L1406–1410)", "(L43)", "see seed002 report §7.5",
    "seed 004 says", "design.md §2", "(anchors.md §10b)",
])
def test_the_check_catches_each_kind_of_unreadable_citation(text: str) -> None:
    assert offences(f"x = 1  # {text}\n")


@pytest.mark.parametrize("text", [
    "Martens & Grosse 2015, §6.5", "thesis §4.12, Table 4.3", "Botev et al. 2017, App. C", "George 2017, Alg. 1",
    "Martens, Ba & Johnson 2018, §3.5.2, eq. 9", "an L2 prior", "the L1 norm", "seed 0", "seed=42",
])
def test_the_check_passes_readable_citations(text: str) -> None:
    assert offences(f"x = 1  # {text}\n") == []


def test_the_scope_is_not_empty() -> None:
    files = tracked_files()
    assert "README.md" in files and "conf/config.yaml" in files and "secondorder/optim/kfac.py" in files


def test_no_file_cites_line_numbers_or_files_outside_the_repository() -> None:
    found = []
    for name in tracked_files():
        path = ROOT / name
        if path.is_symlink() or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary files carry no citations
        found += [f"{name}:{offence}" for offence in offences(text)]
    assert not found, "cite paper + section / equation / table instead:\n" + "\n".join(found)
