"""Config composition: the ``conf/`` tree, its option groups, and the validated run that a list of Hydra
overrides describes. Library code (experiments, benchmarks, scripts) composes runs here; the command line
(:mod:`secondorder.cli`) only adds argument handling and error printing on top.

An experiment runs a configured run in-process with :func:`compose_config` and the trainer::

    run, resolved = compose_config(["optimizer=kfra", ..., f"run_dir={run_dir}"])
    summary = run_training(run, Path(resolved["run_dir"]), resolved, callbacks=[...])
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException
from omegaconf import DictConfig, OmegaConf

from secondorder.config import RENAMED_KEYS, RunConfig, renamed_key_names, validate
from secondorder.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parent / "conf"
CONFIG_GROUPS = ("dataset", "model", "optimizer", "trainer", "experiment", "pretrain")


_PLAIN_VALUE = re.compile(r"[\w/.-]*")  # characters Hydra's override grammar surely takes unquoted in a path


def path_override(key: str, path: Path | str) -> str:
    """``key=path`` as a Hydra override, the path coming back verbatim: one with characters the override grammar
    reserves (``^``, spaces, quotes, brackets, …: e.g. a run folder named after ``adam_lr2^-12``) is single-quoted
    with ``'`` escaped, and ``${`` is escaped so that OmegaConf does not read it as an interpolation."""
    text = str(path)
    if _PLAIN_VALUE.fullmatch(text):
        return f"{key}={text}"
    return f"{key}='" + text.replace("'", "\\'").replace("${", "\\${") + "'"


def available_options(group: str) -> list[str]:
    """Config names in a group, nested ones as ``folder/name`` (e.g. ``table_4_3/curves_rand_hf``)."""
    folder = CONF_DIR / group
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


def check_group_choices(overrides: list[str]) -> None:
    """Reject ``optimizer=nope`` (also inside sweeps) before Hydra composes anything."""
    try:
        candidates = [o for o in overrides if not o.startswith("-") and "=" in o]  # flags and their values skip
        parsed = OverridesParser.create().parse_overrides(candidates)
    except OverrideParseException as exc:
        raise ConfigError(f"cannot parse overrides: {str(exc).splitlines()[0]}") from None
    for override in parsed:
        group = override.key_or_group
        if group not in CONFIG_GROUPS or override.is_delete():
            continue
        values = (list(override.sweep_string_iterator()) if override.is_sweep_override()
                  else [str(override.value())])
        options = available_options(group)
        for value in values:
            if value not in options:
                raise ConfigError(f"unknown {group} {value!r}; available: {', '.join(options)}")


def admit_renamed_keys(overrides: list[str]) -> list[str]:
    """Let a renamed key reach validation, which names its new spelling: ``optimizer.approx=…`` becomes
    ``++optimizer.approx=…`` (add or override — the same as a plain override wherever the key exists, e.g. ACP's
    own ``optimizer.damping``); Hydra would otherwise stop at "Key 'approx' is not in struct"."""
    old = {f"{section}.{key}" for section in RENAMED_KEYS for key in renamed_key_names(section)}
    return [f"++{o}" if o.split("=", 1)[0] in old else o for o in overrides]


def _compose(overrides: list[str]) -> DictConfig:
    check_group_choices(overrides)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=admit_renamed_keys(list(overrides)))


def compose_run(overrides: list[str]) -> RunConfig:
    """The validated :class:`~secondorder.config.RunConfig` that ``train <overrides>`` would run."""
    return validate(_compose(overrides))


def compose_config(overrides: list[str]) -> tuple[RunConfig, dict[str, Any]]:
    """The validated run that ``train <overrides>`` would run and its resolved config (what the trainer writes to
    ``config.yaml`` and compares on resume); ``resolved["run_dir"]`` is the run directory (pass ``run_dir=...``
    among the overrides to choose it, as with ``train``)."""
    cfg = _compose(overrides)
    run = validate(cfg)
    resolved: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    return run, resolved
