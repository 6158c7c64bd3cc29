"""Console entry points: ``train``, ``sweep``, ``report``.

``train`` is a Hydra application over ``conf/`` (any override, ``-m`` multirun, launchers). Errors a user
can act on — an unknown option, a wrong key or type, an impossible value, a missing data file, a diverged
or interrupted run — are printed as one line (``train: error: ...``) with a non-zero exit and no traceback;
set ``HYDRA_FULL_ERROR=1`` to see the traceback anyway.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from secondorder.errors import ConfigError, UserError

CONF_DIR = Path(__file__).resolve().parent / "conf"
CONFIG_GROUPS = ("dataset", "model", "optimizer", "trainer", "experiment", "pretrain")

log = logging.getLogger("secondorder")
_single_run_failure: list[UserError] = []


def available_options(group: str) -> list[str]:
    """Config names in a group, nested ones as ``folder/name`` (e.g. ``table_4_3/curves_rand_hf``)."""
    folder = CONF_DIR / group
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


def check_group_choices(overrides: list[str]) -> None:
    """Reject ``optimizer=nope`` (also inside sweeps) before Hydra composes anything."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

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


def compose_run(overrides: list[str]) -> Any:
    """The validated :class:`~secondorder.config.RunConfig` that ``train <overrides>`` would run (in-process
    drivers such as the alignment experiment use it)."""
    from hydra import compose, initialize_config_dir

    from secondorder.config import validate

    check_group_choices(overrides)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return validate(compose(config_name="config", overrides=list(overrides)))


def _task(cfg: DictConfig) -> float | None:
    """One Hydra job: validate, train, return the final training error (for Hydra sweepers)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from secondorder.config import validate
    from secondorder.train import run_training

    hydra_cfg = HydraConfig.get()
    try:
        run = validate(cfg)
        run_dir = Path(hydra_cfg.runtime.output_dir)
        resolved: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
        resolved["run_dir"] = str(run_dir)
        summary = run_training(run, run_dir, resolved)
    except UserError as exc:
        if hydra_cfg.mode == RunMode.MULTIRUN:
            log.error("job %s failed: %s", hydra_cfg.job.num, exc)
            raise  # the sweep runs its other jobs, then Hydra reports this one
        _single_run_failure.append(exc)  # reported by train() as one line, after Hydra returns
        return None
    return summary["final"].get("train_error")


def _one_line_hydra_error(exc: BaseException) -> str:
    from hydra.errors import MissingConfigException

    if isinstance(exc, MissingConfigException):
        first = str(exc).splitlines()[0]
        return f"{first.removeprefix('In ').strip()}; check the config name (see conf/)"
    cause = exc.__cause__
    if isinstance(cause, OmegaConfBaseException):
        from secondorder.config import describe_omegaconf_error

        return describe_omegaconf_error(cause)
    if isinstance(exc, OmegaConfBaseException):
        from secondorder.config import describe_omegaconf_error

        return describe_omegaconf_error(exc)
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__


def train(argv: list[str] | None = None) -> None:
    """``train [overrides...]`` — one run, or ``train -m a=1,2 ...`` for several."""
    import warnings

    import hydra

    # torch.func's first jvp touches a deprecated torch.jit path; nothing a user can act on.
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
    from hydra.errors import HydraException

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    show_traceback = bool(os.environ.get("HYDRA_FULL_ERROR"))
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us; we print them as one line
    main = hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(_task)
    try:
        check_group_choices(sys.argv[1:])
        _single_run_failure.clear()
        main()
        if _single_run_failure:
            raise _single_run_failure[0]
    except UserError as exc:
        if show_traceback:
            raise
        _fail(str(exc), exc.exit_code)
    except (HydraException, OmegaConfBaseException) as exc:
        if show_traceback:
            raise
        _fail(_one_line_hydra_error(exc), 2)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    finally:
        if not show_traceback:
            os.environ.pop("HYDRA_FULL_ERROR", None)


def _fail(message: str, code: int, prog: str = "train") -> None:
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(code)


def sweep(argv: list[str] | None = None) -> None:
    """``sweep search=<name> [overrides] [--method …] [--trials N] [--jobs N] [--dir DIR]`` — hyperparameter search."""
    from secondorder.sweep import main as sweep_main

    try:
        sys.exit(sweep_main(sys.argv[1:] if argv is None else argv))
    except UserError as exc:
        _fail(str(exc), exc.exit_code, "sweep")


def report(argv: list[str] | None = None) -> None:
    """``report RUN_OR_DIR ... [--out DIR]`` — tables and plots from finished runs."""
    from secondorder.report.command import main as report_main

    try:
        report_main(sys.argv[1:] if argv is None else argv)
    except UserError as exc:
        _fail(str(exc), exc.exit_code, "report")
