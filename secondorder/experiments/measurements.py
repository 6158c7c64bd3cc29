"""Settings of the measurements that a run does not record (``conf/measure/<name>.yaml``): the KFRA alignment of
Botev et al. 2017, App. G.2, and George 2017's §4.1 search protocol. Like the experiment specs, they are data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from secondorder.composition import CONF_DIR
from secondorder.errors import ConfigError

MEASURE_DIR = CONF_DIR / "measure"


def load_measurement(name: str, folder: Path = MEASURE_DIR) -> dict[str, Any]:
    """The plain settings of measurement ``name``; a one-line error when the file is missing or has no profiles."""
    path = folder / f"{name}.yaml"
    if not path.exists():
        available = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
        raise ConfigError(f"no measurement {name!r} in {folder}; available: {available}")
    settings = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(settings, dict) or not isinstance(settings.get("profiles"), dict):
        raise ConfigError(f"{path}: needs a 'profiles' mapping (quick, full, ...)")
    return settings
