"""CURVES: 28×28 images of smooth curves (Hinton & Salakhutdinov 2006), used in thesis §4.12 / Table 4.2.

Two sources, chosen explicitly:

* ``dataset.path=/.../digs3pts_1.mat`` — the original release (Ruslan Salakhutdinov's file, linked from
  Martens' HF demo code: http://www.cs.toronto.edu/~jmartens/digs3pts_1.mat). Variables ``bdata`` (20 000
  training images) and ``bdatatest`` (10 000 test images), one 784-pixel image per row, used as is.
* ``dataset.path=null`` (the default) — a **re-creation** generated here, because the original rendering
  recipe (H&S's supporting material) is not available to us. Every output of a run on it says so.

Generator (deterministic given ``seed``; train and test come from independent streams):

1. Draw three points P₀, P₁, P₂ uniformly in the square [m, s−1−m]² of pixel-centre coordinates
   (s = image size, m = ``margin``) — the six degrees of freedom that the 6-unit code layer is meant to
   capture.
2. Pass a smooth curve through them: the quadratic c(t) = Σₖ ℓₖ(t) Pₖ, t ∈ [0, 1], whose Lagrange basis
   ℓₖ interpolates P₀ at t = 0, P₁ at t = t₁ and P₂ at t = 1, where t₁ = |P₁−P₀| / (|P₁−P₀| + |P₂−P₁|)
   (chord-length parametrisation), clamped to [0.2, 0.8] to keep the curve bounded when points coincide.
3. Render an anti-aliased stroke: with d the distance from a pixel centre to the curve (to the nearest of
   ``samples`` points along it), intensity = clip(w/2 + ½ − d, 0, 1) for stroke width w — the usual
   one-pixel linear coverage ramp. Pixels are in [0, 1], with exact zeros off the stroke.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from secondorder.data.cache import cache_key, cached_tensors
from secondorder.data.matfile import as_rows, load_mat_variables
from secondorder.data.splits import DataSplits
from secondorder.validation import Check, in_range, one_of, positive

GENERATOR_VERSION = 1
ORIGINAL_URL = "http://www.cs.toronto.edu/~jmartens/digs3pts_1.mat"


@dataclass
class CurvesConfig:
    name: str = "curves"
    path: str | None = None
    seed: int = 0
    n_train: int = 20000
    n_test: int = 10000
    image_size: int = 28
    margin: float = 2.0
    stroke_width: float = 1.5
    samples: int = 128
    cache: bool = True
    loss: str = "sigmoid_bce"
    metric: str = "reconstruction_sse"
    batch_size: int = 250

    def check(self) -> list[Check]:
        return [
            *positive(self, "n_train", "n_test", "image_size", "stroke_width", "samples", "batch_size"),
            in_range(self, "margin", 0.0, self.image_size / 2),
            one_of(self, "loss", ["sigmoid_bce", "squared_error"]),
            one_of(self, "metric", ["reconstruction_sse"]),
        ]


def curve_points(points: torch.Tensor, samples: int) -> torch.Tensor:
    """Sample the interpolating quadratic through each triple of points.

    Args:
        points: (n, 3, 2) control points P₀, P₁, P₂.
        samples: number of parameter values t, evenly spaced in [0, 1].

    Returns:
        (n, samples, 2) points on the curves.
    """
    p0, p1, p2 = points.unbind(dim=1)
    a = (p1 - p0).norm(dim=-1)
    b = (p2 - p1).norm(dim=-1)
    t1 = (a / (a + b).clamp_min(1e-12)).clamp(0.2, 0.8)[:, None]  # (n, 1)
    t = torch.linspace(0.0, 1.0, samples, dtype=points.dtype)[None, :]  # (1, S)
    # Lagrange basis for nodes 0, t1, 1.
    l0 = (t - t1) * (t - 1.0) / (t1 * 1.0)
    l1 = t * (t - 1.0) / (t1 * (t1 - 1.0))
    l2 = t * (t - t1) / (1.0 - t1)
    return l0[..., None] * p0[:, None] + l1[..., None] * p1[:, None] + l2[..., None] * p2[:, None]


def render_strokes(curves: torch.Tensor, image_size: int, stroke_width: float, chunk: int = 500) -> torch.Tensor:
    """Rasterise sampled curves (n, S, 2) into (n, image_size²) intensities in [0, 1], row-major."""
    coords = torch.arange(image_size, dtype=curves.dtype)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    pixels = torch.stack([cols.reshape(-1), rows.reshape(-1)], dim=-1)  # (P, 2) as (x, y)
    out = []
    for start in range(0, curves.shape[0], chunk):
        block = curves[start : start + chunk]
        # Direct (not matrix-multiply) distances: exact elementwise arithmetic, identical on every machine.
        distance = torch.cdist(
            pixels[None].expand(block.shape[0], -1, -1), block, compute_mode="donot_use_mm_for_euclid_dist"
        ).amin(dim=-1)
        out.append((stroke_width / 2 + 0.5 - distance).clamp(0.0, 1.0))
    return torch.cat(out)


def generate_curves(n: int, seed: int, cfg: CurvesConfig) -> torch.Tensor:
    """``n`` generated CURVES images, (n, image_size²) float32 in [0, 1]; deterministic in ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    low, high = cfg.margin, cfg.image_size - 1 - cfg.margin
    points = low + (high - low) * torch.rand(n, 3, 2, generator=generator, dtype=torch.float64)
    images = render_strokes(curve_points(points, cfg.samples), cfg.image_size, cfg.stroke_width)
    return images.to(torch.float32)


def load_curves(cfg: CurvesConfig, data_dir: Path) -> DataSplits:
    if cfg.path is not None:
        return _load_original(Path(cfg.path).expanduser())
    params = {
        "version": GENERATOR_VERSION, "seed": cfg.seed, "n_train": cfg.n_train, "n_test": cfg.n_test,
        "image_size": cfg.image_size, "margin": cfg.margin, "stroke_width": cfg.stroke_width,
        "samples": cfg.samples,
    }
    cache_file = data_dir / "curves" / f"generated-{cache_key(params)}.pt"

    def make() -> dict[str, torch.Tensor]:
        # Independent streams: the test set does not change when n_train does.
        return {
            "train": generate_curves(cfg.n_train, 2 * cfg.seed, cfg),
            "test": generate_curves(cfg.n_test, 2 * cfg.seed + 1, cfg),
        }

    tensors = cached_tensors(cache_file, make, use_cache=cfg.cache)
    train, test = tensors["train"], tensors["test"]
    return DataSplits(
        name="curves",
        train_inputs=train, train_targets=train, test_inputs=test, test_targets=test,
        source=f"generated (secondorder CURVES generator v{GENERATOR_VERSION}, seed {cfg.seed})",
        label="CURVES re-creation (generated here; not H&S's digs3pts_1.mat)",
        stand_in=True,
    )


def _load_original(path: Path) -> DataSplits:
    how = f"download it from {ORIGINAL_URL}, or set dataset.path=null to generate the re-creation"
    arrays = load_mat_variables(path, ["bdata", "bdatatest"], how_to_get=how)
    train = torch.from_numpy(as_rows(arrays["bdata"], 784, what=f"{path.name}:bdata").astype("float32"))
    test = torch.from_numpy(as_rows(arrays["bdatatest"], 784, what=f"{path.name}:bdatatest").astype("float32"))
    return DataSplits(
        name="curves",
        train_inputs=train, train_targets=train, test_inputs=test, test_targets=test,
        source=str(path),
        label="CURVES (H&S digs3pts_1.mat)",
        stand_in=False,
    )
