"""Multilayer perceptron classifier: ``Linear → act → … → Linear``, returning output pre-activations.

George's CIFAR-10 benchmark (thesis §4.3, sizes [EXT] from its final deposited version): 3072 inputs, 8 hidden
layers of 100 rectifier units, 10 softmax outputs. The classification view of MNIST uses the encoder of the
H&S autoencoder followed by a 10-way output (KFRA paper §5.2: "the same architecture as for the encoding
layers of the autoencoders").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

from torch import nn

from secondorder.models.autoencoder import ACTIVATIONS
from secondorder.models.init import InitConfig
from secondorder.models.normalization import NORMALIZATIONS, normalization_layer
from secondorder.validation import Check, one_of


@dataclass
class MLPConfig:
    name: str = "mlp"
    dims: list[int] = field(default_factory=lambda: [3072, *[100] * 8, 10])
    activation: str = "relu"
    normalization: str = "none"
    init: InitConfig = field(default_factory=lambda: InitConfig(scheme="he"))

    def check(self) -> list[Check]:
        return [
            ("dims", len(self.dims) >= 2 and min(self.dims) > 0, "must list at least two positive layer sizes"),
            one_of(self, "activation", ACTIVATIONS),
            one_of(self, "normalization", NORMALIZATIONS),
        ]


class MLP(nn.Sequential):
    """With ``normalization`` every hidden layer is ``Linear (no bias) → normalisation → act``
    (:mod:`secondorder.models.normalization`); the output layer is never normalised."""

    def __init__(self, dims: list[int], activation: str = "relu", normalization: str = "none") -> None:
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(pairwise(dims)):
            hidden = i < len(dims) - 2
            normalized = hidden and normalization != "none"
            layers.append(nn.Linear(fan_in, fan_out, bias=not normalized))
            if normalized:
                layers.append(normalization_layer(normalization, fan_out))
            if hidden:
                layers.append(ACTIVATIONS[activation]())
        super().__init__(*layers)


def build_mlp(cfg: MLPConfig) -> MLP:
    return MLP(cfg.dims, cfg.activation, cfg.normalization)
