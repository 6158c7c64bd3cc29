"""Models and their initialisation; the registry maps ``model.name`` to a config class and a builder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from secondorder.models.autoencoder import AutoencoderConfig, DeepAutoencoder, build_autoencoder
from secondorder.models.init import InitConfig, initialise_
from secondorder.models.mlp import MLP, MLPConfig, build_mlp


@dataclass(frozen=True)
class ModelEntry:
    config: type
    build: Callable[[Any], nn.Module]


MODELS: dict[str, ModelEntry] = {
    "autoencoder": ModelEntry(AutoencoderConfig, build_autoencoder),
    "mlp": ModelEntry(MLPConfig, build_mlp),
}


def build_model(cfg: Any, seed: int) -> nn.Module:
    """Build ``cfg.name`` and initialise it deterministically from ``seed`` (float32, on the CPU)."""
    model = MODELS[cfg.name].build(cfg)
    initialise_(model, cfg.init, torch.Generator().manual_seed(seed))
    return model


__all__ = ["MLP", "MODELS", "AutoencoderConfig", "DeepAutoencoder", "InitConfig", "MLPConfig", "build_model"]
