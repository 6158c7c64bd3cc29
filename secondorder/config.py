"""Validation of a composed run configuration into typed sections.

Hydra composes ``conf/`` (plus command-line overrides) into a DictConfig. :func:`validate` checks each
section against the dataclass schema that its ``name`` selects — datasets, models and optimisers each have
a registry — so that an unknown key, a wrong type or an impossible value becomes a one-line
:class:`~secondorder.errors.ConfigError` naming the key (``optimizer.lr=-1.0: must be > 0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from secondorder.data import DATASETS
from secondorder.errors import ConfigError
from secondorder.models import MODELS
from secondorder.optim import OPTIMIZERS
from secondorder.pretraining.rbm import NoPretrainConfig, RBMConfig
from secondorder.problems.base import ObjectiveConfig
from secondorder.validation import Check, check_tree, one_of, positive

#: torch.compile modes ``trainer.compile`` accepts besides true (= default) and false
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class TrainerConfig:
    """Budgets, evaluation, checkpointing and device; see conf/trainer/default.yaml for the meanings."""

    max_steps: int | None = 1000
    max_time_s: float | None = None
    max_epochs: float | None = None
    target_test_error: float | None = None
    target_train_error: float | None = None
    eval_every: int = 100
    eval_every_s: float | None = None
    log_every: int = 10
    checkpoint_every: int = 500
    eval_batch_size: int = 5000
    device: str = "auto"
    dtype: str = "float32"
    resume: str = "false"
    progress: str = "auto"
    polyak_decay: float | None = None
    polyak_start: int = 1
    tf32: bool = False
    compile: str = "false"
    divergence_factor: float | None = 1e4
    distributed: str = "auto"

    def check(self) -> list[Check]:
        return [
            *positive(self, "max_steps", "max_time_s", "max_epochs", "eval_every_s", allow_none=True),
            *positive(self, "eval_every", "log_every", "checkpoint_every", "eval_batch_size"),
            (
                "max_steps",
                any(v is not None for v in (self.max_steps, self.max_time_s, self.max_epochs)),
                "set at least one budget (max_steps, max_time_s or max_epochs)",
            ),
            ("target_test_error", self.target_test_error is None or self.target_test_error >= 0, "must be ≥ 0"),
            ("target_train_error", self.target_train_error is None or self.target_train_error >= 0, "must be ≥ 0"),
            one_of(self, "dtype", ["float32", "float64"]),
            ("polyak_decay", self.polyak_decay is None or 0.0 <= self.polyak_decay < 1.0, "must lie in [0, 1)"),
            *positive(self, "polyak_start"),
            one_of(self, "resume", ["false", "true", "auto", "previous", "restart"]),
            *positive(self, "divergence_factor", allow_none=True),
            one_of(self, "progress", ["auto", "true", "false"]),
            one_of(self, "compile", ["false", "true", *COMPILE_MODES]),
            one_of(self, "distributed", ["auto", "off", "on"]),
            (
                "device",
                self.device in ("auto", "cpu") or self.device.startswith("cuda"),
                "must be auto, cpu, cuda or cuda:N",
            ),
        ]

    def __post_init__(self) -> None:
        # YAML booleans arrive as True/False; keep the three-way flags as lower-case strings.
        self.resume = str(self.resume).lower()
        self.compile = str(self.compile).lower()
        self.progress = str(self.progress).lower()
        self.distributed = str(self.distributed).lower()


@dataclass
class RunConfig:
    """A validated run: one typed object per section."""

    dataset: Any
    model: Any
    optimizer: Any
    trainer: TrainerConfig
    objective: ObjectiveConfig
    seed: int
    data_dir: str
    pretrain: Any = None


_REGISTRIES: dict[str, dict[str, Any]] = {
    "dataset": {name: entry.config for name, entry in DATASETS.items()},
    "model": {name: entry.config for name, entry in MODELS.items()},
    "optimizer": {name: cls.config_class for name, cls in OPTIMIZERS.items()},
    "pretrain": {"none": NoPretrainConfig, "rbm": RBMConfig},
}


_KFAC_RENAMES = {"lambda_decay": "lambda_decrease", "stats_decay_max": "stats_decay"}

#: Keys that were renamed to the shared vocabulary (README "Config names"): section → name → old key → new key,
#: only for the names that had the old key (``optimizer.damping`` is still ACP's own ε, for instance).
RENAMED_KEYS: dict[str, dict[str, dict[str, str]]] = {
    "optimizer": {
        "kfac": _KFAC_RENAMES, "kfac_tridiag": _KFAC_RENAMES, "kfra": _KFAC_RENAMES, "kflr": _KFAC_RENAMES,
        "kfac_rnn": {"approx": "approximation", "damping": "initial_lambda"},
    },
}


def check_renamed_keys(section: str, node: dict[str, Any]) -> None:
    """One-line error for a key that was renamed: ``optimizer.approx was renamed optimizer.approximation``."""
    renames = RENAMED_KEYS.get(section, {}).get(node.get("name"), {})
    for old, new in renames.items():
        if old in node:
            raise ConfigError(f'{section}.{old} was renamed {section}.{new} (see README "Config names")')


def renamed_key_names(section: str) -> set[str]:
    """Every old key of a section, whichever name had it."""
    return {old for renames in RENAMED_KEYS.get(section, {}).values() for old in renames}


def _typed_section(section: str, node: Any, schema: type) -> Any:
    """Merge a plain section into its dataclass schema; one-line error on a bad key or type."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise ConfigError(describe_omegaconf_error(exc, prefix=section)) from None
    check_tree(obj, section)
    return obj


def describe_omegaconf_error(exc: OmegaConfBaseException, prefix: str = "") -> str:
    """One line from an OmegaConf error: the full key and the first line of its message."""
    key = getattr(exc, "full_key", None) or ""
    full_key = f"{prefix}.{key}" if prefix and key else (key or prefix)
    message = str(getattr(exc, "msg", None) or exc).strip().splitlines()[0]
    if "not in" in message or "not in struct" in message:
        return f"{full_key}: unknown key ({message}); `train --cfg job` lists the valid keys"
    return f"{full_key}: {message}"


def validate(cfg: DictConfig | dict[str, Any]) -> RunConfig:
    """Check a composed config and return its typed form; raises :class:`ConfigError`."""
    try:
        plain = OmegaConf.to_container(OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg, resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(describe_omegaconf_error(exc)) from None
    assert isinstance(plain, dict)
    known = {"dataset", "model", "optimizer", "trainer", "objective", "seed", "data_dir", "run_dir", "out_root",
             "pretrain"}
    unknown = sorted(set(plain) - known)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown top-level key; valid keys: {', '.join(sorted(known))}")
    sections: dict[str, Any] = {}
    plain.setdefault("pretrain", {"name": "none"})
    for section, registry in _REGISTRIES.items():
        node = plain.get(section)
        if not isinstance(node, dict) or "name" not in node:
            raise ConfigError(f"{section}: missing or has no 'name'; choose one with {section}=<name>")
        if node["name"] not in registry:
            raise ConfigError(
                f"{section}.name={node['name']!r}: unknown {section}; available: {', '.join(sorted(registry))}"
            )
        check_renamed_keys(section, node)
        sections[section] = _typed_section(section, node, registry[node["name"]])
    trainer = _typed_section("trainer", plain.get("trainer", {}), TrainerConfig)
    objective = _typed_section("objective", plain.get("objective", {}), ObjectiveConfig)
    seed = plain.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed={seed!r}: must be a non-negative integer")
    data_dir = plain.get("data_dir", "data")
    if not isinstance(data_dir, str) or not data_dir:
        raise ConfigError(f"data_dir={data_dir!r}: must be a directory path")
    return RunConfig(trainer=trainer, objective=objective, seed=seed, data_dir=data_dir, **sections)
