"""Models and their initialisation; the registry maps ``model.name`` to a config class and a builder.

A builder takes the validated config, the loaded data (recurrent models read their input / output sizes
from it) and a seeded generator, and returns the initialised model (float32, CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from secondorder.data.sequences import GeneratedSequences, TokenCorpus
from secondorder.errors import ConfigError
from secondorder.models.autoencoder import AutoencoderConfig, DeepAutoencoder, build_autoencoder
from secondorder.models.init import InitConfig, initialise_
from secondorder.models.lstm import LSTMConfig, LSTMLanguageModel, initialise_uniform_
from secondorder.models.memory_lstm import MemoryLSTM, MemoryLSTMConfig, initialise_memory_lstm_
from secondorder.models.mlp import MLP, MLPConfig, build_mlp
from secondorder.models.rnn import RecurrentNet, RNNConfig, sparse_rnn_init_


def _feed_forward(build: Callable[[Any], nn.Module]) -> Callable[[Any, Any, torch.Generator], nn.Module]:
    def make(cfg: Any, data: Any, generator: torch.Generator) -> nn.Module:
        if isinstance(data, (TokenCorpus, GeneratedSequences)):
            raise ConfigError(f"model {cfg.name} is feed-forward but {data.name} is sequence data; "
                              "pick a matching model=...")
        model = build(cfg)
        initialise_(model, cfg.init, generator)
        return model

    return make


def _lstm_lm(cfg: LSTMConfig, data: Any, generator: torch.Generator) -> nn.Module:
    if not isinstance(data, TokenCorpus):
        raise ConfigError(f"model lstm_lm needs a token corpus (dataset=ptb_word or ptb_char), not {data.name}")
    model = LSTMLanguageModel(data.vocab_size, cfg)
    initialise_uniform_(model, cfg.init_scale, generator)
    return model


def _rnn(cfg: RNNConfig, data: Any, generator: torch.Generator) -> nn.Module:
    if not isinstance(data, GeneratedSequences):
        raise ConfigError(f"model rnn needs a generated sequence task (dataset=pathological), not {data.name}")
    model = RecurrentNet(data.task.input_dim, data.task.output_dim, cfg)
    sparse_rnn_init_(model, generator)
    return model


def _memory_lstm(cfg: MemoryLSTMConfig, data: Any, generator: torch.Generator) -> nn.Module:
    if not isinstance(data, GeneratedSequences):
        raise ConfigError(f"model memory_lstm needs a generated sequence task (dataset=dnc_copy), not {data.name}")
    model = MemoryLSTM(data.task.input_dim, data.task.output_dim, cfg)
    initialise_memory_lstm_(model, generator)
    return model


@dataclass(frozen=True)
class ModelEntry:
    config: type
    build: Callable[[Any, Any, torch.Generator], nn.Module]


MODELS: dict[str, ModelEntry] = {
    "autoencoder": ModelEntry(AutoencoderConfig, _feed_forward(build_autoencoder)),
    "mlp": ModelEntry(MLPConfig, _feed_forward(build_mlp)),
    "lstm_lm": ModelEntry(LSTMConfig, _lstm_lm),
    "rnn": ModelEntry(RNNConfig, _rnn),
    "memory_lstm": ModelEntry(MemoryLSTMConfig, _memory_lstm),
}


def build_model(cfg: Any, seed: int, data: Any = None) -> nn.Module:
    """Build ``cfg.name`` for ``data`` and initialise it deterministically from ``seed`` (float32, CPU)."""
    return MODELS[cfg.name].build(cfg, data, torch.Generator().manual_seed(seed))


__all__ = [
    "MLP", "MODELS", "AutoencoderConfig", "DeepAutoencoder", "InitConfig", "LSTMConfig", "LSTMLanguageModel",
    "MLPConfig", "MemoryLSTM", "MemoryLSTMConfig", "RNNConfig", "RecurrentNet", "build_model",
]
