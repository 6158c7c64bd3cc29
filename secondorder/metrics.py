"""Error measures as the papers report them.

* ``reconstruction_sse`` — autoencoders (thesis §4.12, with Table 4.3: "the average sum of squared reconstruction
  errors"): Σ_pixels (ŷ − x)² per case, averaged over cases, with ŷ the loss's prediction (σ(z) for logistic
  outputs). No ½, unlike the squared-error *loss*.
* ``classification_error`` — fraction of cases whose arg-max prediction differs from the label.
* ``binary_error`` — fraction of cases whose predicted p(y = 1) falls on the wrong side of ½ (odd/even task).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from secondorder.errors import ConfigError


def reconstruction_sse(prediction: Tensor, target: Tensor) -> Tensor:
    """Per-case sum of squared errors, shape (B,)."""
    return (prediction - target).pow(2).flatten(1).sum(dim=1)


def classification_error(prediction: Tensor, target: Tensor) -> Tensor:
    """Per-case 0/1 error, shape (B,); ``target`` holds labels or one-hot / probability rows."""
    labels = target if target.ndim == 1 else target.argmax(dim=1)
    return (prediction.argmax(dim=1) != labels).to(prediction.dtype)


def binary_error(prediction: Tensor, target: Tensor) -> Tensor:
    """Per-case 0/1 error for a prediction p(y = 1 | x) of shape (B,) and 0/1 targets."""
    return ((prediction > 0.5).to(prediction.dtype) != target.reshape(prediction.shape)).to(prediction.dtype)


METRICS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "reconstruction_sse": reconstruction_sse,
    "classification_error": classification_error,
    "binary_error": binary_error,
}


def get_metric(name: str) -> Callable[[Tensor, Tensor], Tensor]:
    try:
        return METRICS[name]
    except KeyError:
        raise ConfigError(f"unknown metric {name!r}; available: {', '.join(sorted(METRICS))}") from None


__all__ = ["METRICS", "binary_error", "classification_error", "get_metric", "reconstruction_sse"]
