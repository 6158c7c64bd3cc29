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
2. Pass a smooth curve along them:

   * **versions 3, 4**: the quadratic Bézier curve b(t) = (1−t)² P₀ + 2t(1−t) P₁ + t² P₂, t ∈ [0, 1]
     — from P₀ to P₂, bent towards P₁, inside the triangle P₀P₁P₂;
   * **versions 1, 2**: the quadratic c(t) = Σₖ ℓₖ(t) Pₖ whose Lagrange basis ℓₖ interpolates P₀ at t = 0, P₁ at
     t = t₁ and P₂ at t = 1, where t₁ = |P₁−P₀| / (|P₁−P₀| + |P₂−P₁|) (chord-length parametrisation), clamped to
     [0.2, 0.8] to keep the curve bounded when points coincide. When P₁ lies beyond an end point the curve
     overshoots into a hairpin, and a small move of a point can swing it across the frame.
3. Ink it, with d the distance from a pixel centre to the curve (to the nearest of ``samples`` points on it):

   * **version 4** (the default): a Gaussian pen, intensity = ink · exp(−d² / 2σ²), σ = ``pen_sigma`` = 3 px,
     ink = 0.617, margin 4 px;
   * **version 3**: the same pen with σ = 2.5 px, ink = 0.602, margin 3 px;
   * **version 2**: the same pen with σ = 1.5 px, ink = 0.62, margin 3 px;
   * **version 1** (the first re-creation): a thin anti-aliased stroke, intensity = clip(w/2 + ½ − d, 0, 1),
     w = ``stroke_width`` = 1.5 px, margin 2 px.

Versions 1–3 stay selectable (``dataset.version``) for the runs made with them.

How the versions were chosen. The original's one known statistic is the error of the best constant output (the
mean image; every optimiser's first plateau): 16.9 on the training set and 17.0 on the test set of digs3pts_1.mat
(Martens' released K-FAC code's CURVES log). The mean-image error scales with ink², so for each curve family, pen
width and margin the peak ink is set to hit 16.9 (``scripts/curves_statistics.py``). What is left free is how
*learnable* the images are, and the original is very learnable: K-FAC reaches training error 0.10 with test 0.21
(thesis Table 4.3; the test − train gap stays 0.05–0.12 in Martens' log). Version 1 (mean-image error 26.1 / 26.0)
overfits under K-FAC (training 1.86, test 25.4 after 1 000 iterations). Version 2 was chosen by a probe of Adam
(2 000 updates on 2 000 / 2 000 images, ``scripts/curves_probe.sh``):

    margin  σ     ink    train / test after 2 000 Adam updates   (÷ plateau)
    2       1.0   0.682  7.81 / 9.12                              0.46
    4       1.0   0.765  6.36 / 7.64                              0.38
    6       1.3   0.816  3.91 / 4.52                              0.23
    3       1.5   0.62   5.00 / 5.77                              0.30

but that probe did not predict K-FAC: on version 2 its test error bottoms out at 2.20 and climbs to 4.48 while the
training error falls to 0.26 (``results/curves-v2``). Version 3 was chosen with a probe that does track K-FAC,
``scripts/curves_smoothness.py``: the error of rebuilding each of 1 000 test images as an affine combination of
its 12 nearest training images (of 20 000) — how smooth the image manifold is at the training set's density. K-FAC's
best test error was ≈ 2.6 × this error on both versions run in full (v1 5.55 → 14.3, v2 0.81 → 2.20). Each row
inked to the plateau:

    curve          margin  σ     ink     local-linear error
    v1 stroke      2       —     1       5.55
    interpolating  3       1.5   0.62    0.81   (v2)
    interpolating  3       2.0   0.567   0.47
    interpolating  3       2.5   0.536   0.30
    interpolating  3       3.0   0.518   0.20
    interpolating  6       2.0   0.731   0.24
    Bézier         3       1.5   0.717   0.46
    Bézier         3       2.0   0.646   0.24
    Bézier         3       2.5   0.602   0.146  (v3)
    Bézier         3       3.0   0.574   0.097
    Bézier         3       3.5   0.557   0.068
    Bézier         4       2.5   0.646   0.120
    Bézier         4       3.0   0.617   0.080  (v4)

The Bézier curve halves the error at every pen width (no hairpins); version 4 (σ = 3 px, strokes 7 px wide at
half height, margin 4) brings it to 0.080. With 20 000 / 10 000 images it gives 16.88 / 16.88. K-FAC
(``results/curves-v3``, ``results/curves-v4``): on v4, training error 0.095 with test 0.190 at iteration 550 — the
original's Table 4.3 cells are 0.11 / 0.20 and 0.10 / 0.21 — but trained on to 0.050 the test error drifts up to
0.251 (v3: 0.094 / 0.285 at the same point, 0.064 / 0.334 at the end). What cannot be known without the original
file: its curve family, pen profile, peak intensity and point distribution — only the plateau and the test error
at the original's training error are matched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from secondorder.data.cache import cache_key, cached_tensors
from secondorder.data.matfile import as_rows, load_mat_variables
from secondorder.data.splits import DataSplits
from secondorder.validation import Check, one_of, positive

GENERATOR_VERSION = 4  # the default; versions 1–3 stay selectable for the runs made with them
ORIGINAL_URL = "http://www.cs.toronto.edu/~jmartens/digs3pts_1.mat"
# Each version's rendering defaults (see the module docstring for how version 2's were chosen).
VERSION_DEFAULTS: dict[int, dict[str, float]] = {
    1: {"margin": 2.0},
    2: {"margin": 3.0, "pen_sigma": 1.5, "ink": 0.62},
    3: {"margin": 3.0, "pen_sigma": 2.5, "ink": 0.602},
    4: {"margin": 4.0, "pen_sigma": 3.0, "ink": 0.617},
}
# The curve each version passes through its three points: the interpolating quadratic (v1, v2) or the quadratic
# Bézier curve with the points as its control polygon (v3, v4).
CURVE_FAMILY: dict[int, str] = {1: "interpolating", 2: "interpolating", 3: "bezier", 4: "bezier"}


@dataclass
class CurvesConfig:
    name: str = "curves"
    path: str | None = None
    seed: int = 0
    n_train: int = 20000
    n_test: int = 10000
    image_size: int = 28
    version: int = GENERATOR_VERSION
    margin: float | None = None  # None: the version's own (VERSION_DEFAULTS)
    stroke_width: float = 1.5    # version 1: width of the linear-ramp stroke, pixels
    pen_sigma: float | None = None  # versions 2–4: standard deviation of the Gaussian pen, pixels (None: default)
    ink: float | None = None        # versions 2–4: the pen's peak intensity (None: default)
    samples: int = 128
    cache: bool = True
    loss: str = "sigmoid_bce"
    metric: str = "reconstruction_sse"
    batch_size: int = 250

    def check(self) -> list[Check]:
        return [
            *positive(self, "n_train", "n_test", "image_size", "stroke_width", "samples", "batch_size"),
            *positive(self, "pen_sigma", allow_none=True),
            ("ink", self.ink is None or 0 < self.ink <= 1, "must lie in (0, 1]"),
            ("version", self.version in VERSION_DEFAULTS, f"must be one of {sorted(VERSION_DEFAULTS)}"),
            ("margin", self.margin is None or 0 <= self.margin < self.image_size / 2,
             f"must lie in [0, {self.image_size / 2}) or be null"),
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


def bezier_points(points: torch.Tensor, samples: int) -> torch.Tensor:
    """Sample the quadratic Bézier curve b(t) = (1−t)² P₀ + 2t(1−t) P₁ + t² P₂, t ∈ [0, 1], of each triple.

    It starts at P₀, ends at P₂ and is pulled towards P₁ without passing through it, so it stays inside the
    triangle P₀P₁P₂: no overshoot when P₁ lies beyond an end point, and the image changes smoothly with the points.

    Args:
        points: (n, 3, 2) control points P₀, P₁, P₂.
        samples: number of parameter values t, evenly spaced in [0, 1].

    Returns:
        (n, samples, 2) points on the curves.
    """
    t = torch.linspace(0.0, 1.0, samples, dtype=points.dtype)[None, :, None]
    p0, p1, p2 = (p[:, None] for p in points.unbind(dim=1))
    return (1.0 - t).square() * p0 + 2.0 * t * (1.0 - t) * p1 + t.square() * p2


def render_strokes(curves: torch.Tensor, image_size: int, stroke_width: float, chunk: int = 500) -> torch.Tensor:
    """Rasterise sampled curves (n, S, 2) into (n, image_size²) intensities in [0, 1], row-major, with the
    version-1 stroke: a one-pixel linear coverage ramp, clip(w/2 + ½ − d, 0, 1) for stroke width w."""
    return (stroke_width / 2 + 0.5 - curve_distances(curves, image_size, chunk)).clamp(0.0, 1.0)


def render_gaussian_pen(curves: torch.Tensor, image_size: int, sigma: float, ink: float,
                        chunk: int = 500) -> torch.Tensor:
    """Rasterise sampled curves (n, S, 2) with a Gaussian pen: intensity ink · exp(−d² / 2σ²), d the distance from
    the pixel centre to the curve; (n, image_size²) in [0, ink], row-major."""
    distance = curve_distances(curves, image_size, chunk)
    return ink * torch.exp(-distance.square() / (2.0 * sigma**2))


def curve_distances(curves: torch.Tensor, image_size: int, chunk: int = 500) -> torch.Tensor:
    """Distance from every pixel centre to the nearest sampled point of each curve, (n, image_size²)."""
    coords = torch.arange(image_size, dtype=curves.dtype)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    pixels = torch.stack([cols.reshape(-1), rows.reshape(-1)], dim=-1)  # (P, 2) as (x, y)
    out = []
    for start in range(0, curves.shape[0], chunk):
        block = curves[start : start + chunk]
        # Direct (not matrix-multiply) distances: exact elementwise arithmetic, identical on every machine.
        out.append(torch.cdist(pixels[None].expand(block.shape[0], -1, -1), block,
                               compute_mode="donot_use_mm_for_euclid_dist").amin(dim=-1))
    return torch.cat(out)


def rendering(cfg: CurvesConfig) -> dict[str, float]:
    """The rendering parameters in force: the config's, the version's defaults where the config leaves them null."""
    defaults = VERSION_DEFAULTS[cfg.version]
    chosen = {"margin": cfg.margin if cfg.margin is not None else defaults["margin"]}
    if cfg.version == 1:
        chosen["stroke_width"] = cfg.stroke_width
    else:
        chosen["pen_sigma"] = cfg.pen_sigma if cfg.pen_sigma is not None else defaults["pen_sigma"]
        chosen["ink"] = cfg.ink if cfg.ink is not None else defaults["ink"]
    return chosen


def generate_curves(n: int, seed: int, cfg: CurvesConfig) -> torch.Tensor:
    """``n`` generated CURVES images, (n, image_size²) float32 in [0, 1]; deterministic in ``seed``."""
    chosen = rendering(cfg)
    generator = torch.Generator().manual_seed(seed)
    low, high = chosen["margin"], cfg.image_size - 1 - chosen["margin"]
    points = low + (high - low) * torch.rand(n, 3, 2, generator=generator, dtype=torch.float64)
    trace = bezier_points if CURVE_FAMILY[cfg.version] == "bezier" else curve_points
    curves = trace(points, cfg.samples)
    if cfg.version == 1:
        images = render_strokes(curves, cfg.image_size, chosen["stroke_width"])
    else:
        images = render_gaussian_pen(curves, cfg.image_size, chosen["pen_sigma"], chosen["ink"])
    return images.to(torch.float32)


def mean_image_errors(train: torch.Tensor, test: torch.Tensor) -> dict[str, float]:
    """The error of the best constant output, the mean training image x̄: (1/N) Σ_n ‖x_n − x̄‖² on each split
    (float64) — every optimiser's first plateau, and the statistic versions 2 and 3 are calibrated to."""
    mean = train.double().mean(dim=0)
    return {split: float((x.double() - mean).square().sum(dim=1).mean())
            for split, x in (("train", train), ("test", test))}


def load_curves(cfg: CurvesConfig, data_dir: Path) -> DataSplits:
    if cfg.path is not None:
        return _load_original(Path(cfg.path).expanduser())
    params = {"version": cfg.version, "seed": cfg.seed, "n_train": cfg.n_train, "n_test": cfg.n_test,
              "image_size": cfg.image_size, "samples": cfg.samples, **rendering(cfg)}
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
        source=f"generated (secondorder CURVES generator v{cfg.version}, seed {cfg.seed})",
        label=f"CURVES re-creation v{cfg.version} (generated here; not H&S's digs3pts_1.mat)",
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
