"""Random rotation / scaling / translation of face images, resampled to a small square (FACES construction).

Hinton & Salakhutdinov (2006) built FACES from the Olivetti faces by random rotations, scalings,
translations/cropping and subsampling to 25×25; the KFRA paper (Botev et al. 2017, App. A) states the
ranges it used: rotation angle uniform in [−90°, 90°] and scale factor uniform in [1.4, 1.8], then
subsampling to 25×25. Here each output pixel grid is mapped into the source image by

    x_source = R(α) · x_out / s + t,     (normalised coordinates, [−1, 1]²)

with α the angle, s the scale (magnification: s > 1 zooms in) and t a translation, and the source is sampled
bilinearly on a ``supersample``-times finer grid that is then average-pooled — a box filter against the
aliasing of plain subsampling. Pixels outside the source read 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def random_transforms(
    n: int, generator: torch.Generator, max_rotation_deg: float, scale_range: tuple[float, float],
    max_translation: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Angles (radians), scales and translations (n, 2), each uniform in its range."""
    angles = (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1) * math.radians(max_rotation_deg)
    low, high = scale_range
    scales = low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)
    shifts = (2 * torch.rand(n, 2, generator=generator, dtype=torch.float64) - 1) * max_translation
    return angles, scales, shifts


def transform_images(
    sources: Tensor, index: Tensor, angles: Tensor, scales: Tensor, shifts: Tensor,
    out_size: int, supersample: int = 4, chunk: int = 4096,
) -> Tensor:
    """Resample ``sources[index[k]]`` (N, H, W) under transform k; returns (len(index), out_size²) float32."""
    outputs = []
    fine = out_size * supersample
    for start in range(0, len(index), chunk):
        sl = slice(start, start + chunk)
        cos, sin = torch.cos(angles[sl]) / scales[sl], torch.sin(angles[sl]) / scales[sl]
        theta = torch.stack(
            [torch.stack([cos, -sin, shifts[sl, 0]], dim=1), torch.stack([sin, cos, shifts[sl, 1]], dim=1)], dim=1
        ).to(torch.float32)
        batch = sources[index[sl]][:, None].to(torch.float32)
        grid = F.affine_grid(theta, [len(theta), 1, fine, fine], align_corners=False)
        sampled = F.grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        outputs.append(F.avg_pool2d(sampled, supersample).reshape(len(theta), -1))
    return torch.cat(outputs)
