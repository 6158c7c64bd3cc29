"""Console entry points: ``train``, ``sweep``, ``report``.

``train`` is a Hydra application over ``conf/`` (any override, ``-m`` multirun, launchers). Errors a user
can act on — an unknown option, a wrong key or type, an impossible value, a missing data file, a diverged
or interrupted run — are printed as one line (``train: error: ...``) with a non-zero exit and no traceback;
set ``HYDRA_FULL_ERROR=1`` to see the traceback anyway.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from secondorder.composition import CONF_DIR, admit_renamed_keys, check_group_choices
from secondorder.config import describe_omegaconf_error, validate
from secondorder.distributed import launch_environment
from secondorder.errors import ConfigError, UserError
from secondorder.report.command import main as report_main
from secondorder.sweep import main as sweep_main
from secondorder.train import run_training

log = logging.getLogger("secondorder")
_single_run_failure: list[UserError] = []


def _task(cfg: DictConfig) -> float | None:
    """One Hydra job: validate, train, return the final training error (for Hydra sweepers)."""
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
    if isinstance(exc, MissingConfigException):
        first = str(exc).splitlines()[0]
        return f"{first.removeprefix('In ').strip()}; check the config name (see conf/)"
    cause = exc.__cause__
    if isinstance(cause, OmegaConfBaseException):
        return describe_omegaconf_error(cause)
    if isinstance(exc, OmegaConfBaseException):
        return describe_omegaconf_error(exc)
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__


def train(argv: list[str] | None = None) -> None:
    """``train [overrides...]`` — one run, or ``train -m a=1,2 ...`` for several."""
    # torch.func's first jvp touches a deprecated torch.jit path; nothing a user can act on.
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    sys.argv = [sys.argv[0], *admit_renamed_keys(sys.argv[1:])]
    show_traceback = bool(os.environ.get("HYDRA_FULL_ERROR"))
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us; we print them as one line
    main = hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(_task)
    try:
        sys.argv = [sys.argv[0], *_follower_overrides(sys.argv[1:])]
        check_group_choices(sys.argv[1:])
        _single_run_failure.clear()
        main()
        if _single_run_failure:
            raise _single_run_failure[0]
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except (UserError, HydraException, OmegaConfBaseException, yaml.YAMLError, OSError) as exc:
        failure = None if show_traceback else _one_line_failure(exc)
        if failure is None:
            raise
        _fail(*failure)
    finally:
        if not show_traceback:
            os.environ.pop("HYDRA_FULL_ERROR", None)


def _follower_overrides(args: list[str], env: dict[str, str] | None = None) -> list[str]:
    """A data-parallel launch (torchrun, ``srun --ntasks=N``): ranks other than 0 leave no trace on disk — Hydra
    writes its record and log into a scratch folder, and the run directory is rank 0's (the trainer receives it).
    Several configurations in one launch (``-m``) are refused: each would need its own process group."""
    launched = launch_environment(env)
    if launched is None or any(o.startswith("trainer.distributed=off") for o in args):
        return args
    if any(a in ("-m", "--multirun") for a in args):
        raise ConfigError("a data-parallel launch (torchrun / srun --ntasks=N) runs one configuration; drop -m, or "
                          "launch one job per configuration (the submitit launcher does)")
    ranks, _ = launched
    if ranks.main:
        return args
    scratch = tempfile.mkdtemp(prefix=f"secondorder-rank{ranks.rank}-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return [*args, f"hydra.run.dir={scratch}", "hydra.output_subdir=null", "hydra/job_logging=disabled"]


def _one_line_failure(exc: BaseException) -> tuple[str, int] | None:
    """The one-line message and exit code for an error a user can act on; ``None``: a bug, keep the traceback."""
    if isinstance(exc, UserError):
        return str(exc), exc.exit_code
    if isinstance(exc, (HydraException, OmegaConfBaseException)):
        return _one_line_hydra_error(exc), 2
    if isinstance(exc, yaml.YAMLError):
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.name}, line {mark.line + 1}" if mark is not None else "a config file"
        return f"{where}: invalid YAML ({getattr(exc, 'problem', None) or exc}); fix the file", 2
    if isinstance(exc, OSError) and exc.filename is not None:  # the run or sweep folder cannot be written
        return (f"cannot write {exc.filename} ({exc.strerror}); choose another out_root or run_dir (or free space / "
                "fix permissions there)", 2)
    return None


def _fail(message: str, code: int, prog: str = "train") -> None:
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(code)


def sweep(argv: list[str] | None = None) -> None:
    """``sweep search=<name> [overrides] [--trials N] [--dir DIR] [--launcher slurm]`` — a resumable search."""
    try:
        sys.exit(sweep_main(sys.argv[1:] if argv is None else argv))
    except UserError as exc:
        _fail(str(exc), exc.exit_code, "sweep")


def report(argv: list[str] | None = None) -> None:
    """``report RUN_OR_DIR ... [--out DIR]`` — tables and plots from finished runs."""
    try:
        report_main(sys.argv[1:] if argv is None else argv)
    except UserError as exc:
        _fail(str(exc), exc.exit_code, "report")
