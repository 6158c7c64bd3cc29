"""Validation of configuration values beyond their types.

Config sections are dataclasses (OmegaConf structured configs check keys and types). Value rules live in
each dataclass's ``check`` method, which yields ``(key, ok, rule)`` triples; :func:`check_tree` walks nested
dataclasses and turns the first failed rule into a one-line :class:`~secondorder.errors.ConfigError` that
names the full key, e.g. ``optimizer.lr=-1.0: must be > 0``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

from secondorder.errors import ConfigError

Check = tuple[str, bool, str]


def check_tree(obj: Any, prefix: str) -> None:
    """Run ``obj.check()`` on a config dataclass and every nested one; raise on the first failure."""
    if not dataclasses.is_dataclass(obj):
        return
    checker = getattr(obj, "check", None)
    if checker is not None:
        for key, ok, rule in checker():
            if not ok:
                value = getattr(obj, key, "?")
                raise ConfigError(f"{prefix}.{key}={value!r}: {rule}")
    for f in dataclasses.fields(obj):
        check_tree(getattr(obj, f.name), f"{prefix}.{f.name}")


def positive(obj: Any, *keys: str, allow_none: bool = False) -> Iterator[Check]:
    """Each named value must be > 0 (or None when ``allow_none``)."""
    for key in keys:
        value = getattr(obj, key)
        if value is None and allow_none:
            continue
        yield key, value is not None and value > 0, "must be > 0"


def non_negative(obj: Any, *keys: str) -> Iterator[Check]:
    for key in keys:
        yield key, getattr(obj, key) >= 0, "must be >= 0"


def in_range(obj: Any, key: str, low: float, high: float, *, closed_high: bool = False) -> Check:
    value = getattr(obj, key)
    ok = low <= value <= high if closed_high else low <= value < high
    bracket = "]" if closed_high else ")"
    return key, ok, f"must lie in [{low}, {high}{bracket}"


def one_of(obj: Any, key: str, choices: Iterable[str]) -> Check:
    choices = list(choices)
    return key, getattr(obj, key) in choices, f"must be one of {', '.join(choices)}"
