"""Deep autoencoders of Hinton & Salakhutdinov (2006) as used in thesis §4.12 (Table 4.2).

The encoder maps through ``encoder_dims`` (e.g. CURVES 784-400-200-100-50-25-6); the decoder mirrors it
(6-25-50-…-784). Hidden units are logistic, the code layer is linear (Martens' released HF demo
code), and the network returns the output *pre-activations*: the matching loss owns the output
nonlinearity (:mod:`secondorder.losses`). Built from ``nn.Linear`` and elementwise modules only, so that
``torch.func`` transforms and per-layer curvature hooks see every weight matrix.

Parameter counts: CURVES 842 340, MNIST 784-1000-500-250-30 2 837 314, FACES 625-2000-1000-500-30 7 537 655.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

from torch import nn

from secondorder.models.init import InitConfig
from secondorder.models.normalization import NORMALIZATIONS, normalization_layer
from secondorder.validation import Check, one_of

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "linear": nn.Identity,
}


@dataclass
class AutoencoderConfig:
    name: str = "autoencoder"
    encoder_dims: list[int] = field(default_factory=lambda: [784, 400, 200, 100, 50, 25, 6])
    hidden_activation: str = "sigmoid"
    code_activation: str = "linear"
    normalization: str = "none"
    init: InitConfig = field(default_factory=InitConfig)

    def check(self) -> list[Check]:
        return [
            ("encoder_dims", len(self.encoder_dims) >= 2 and min(self.encoder_dims) > 0,
             "must list at least two positive layer sizes"),
            one_of(self, "hidden_activation", ACTIVATIONS),
            one_of(self, "code_activation", ACTIVATIONS),
            one_of(self, "normalization", NORMALIZATIONS),
        ]


def mirrored_dims(encoder_dims: list[int]) -> list[int]:
    """Full layer sizes of the symmetric autoencoder: encoder then its reverse."""
    return list(encoder_dims) + list(encoder_dims[-2::-1])


class DeepAutoencoder(nn.Sequential):
    """``Linear → act → … → Linear`` with a mirrored decoder; returns output pre-activations. With
    ``normalization`` every hidden layer (the code layer included, the output layer not) is
    ``Linear (no bias) → normalisation → act`` (:mod:`secondorder.models.normalization`)."""

    def __init__(self, encoder_dims: list[int], hidden_activation: str = "sigmoid",
                 code_activation: str = "linear", normalization: str = "none") -> None:
        dims = mirrored_dims(encoder_dims)
        code_layer = len(encoder_dims) - 2  # index of the Linear map that produces the code
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(pairwise(dims)):
            output_layer = i == len(dims) - 2
            normalized = normalization != "none" and not output_layer
            layers.append(nn.Linear(fan_in, fan_out, bias=not normalized))
            if output_layer:
                break  # output layer: pre-activations
            if normalized:
                layers.append(normalization_layer(normalization, fan_out))
            activation = code_activation if i == code_layer else hidden_activation
            layers.append(ACTIVATIONS[activation]())
        super().__init__(*layers)
        self.encoder_dims = list(encoder_dims)


def build_autoencoder(cfg: AutoencoderConfig) -> DeepAutoencoder:
    return DeepAutoencoder(cfg.encoder_dims, cfg.hidden_activation, cfg.code_activation, cfg.normalization)
