"""How learnable a CURVES re-creation is, measured in seconds: the error of rebuilding each test image from its
nearest training images (issue: stand-in data that behave like the originals).

For a test image x with k nearest training images x₁ … x_k (Euclidean, pixel space), the locally linear
reconstruction is Σᵢ wᵢ xᵢ with the weights minimising ‖x − Σᵢ wᵢ xᵢ‖² subject to Σᵢ wᵢ = 1 (a lightly
regularised k × k solve, as in locally linear embedding). Its mean squared error over test images says how smooth
the image manifold is at the density of the training set — what a 6-unit autoencoder must interpolate. It tracked
K-FAC's best test error (experiment=kfac_curves, 1 000 iterations) at 1.9–2.7× on every version: v1 5.55 → 14.3,
v2 0.81 → 2.20, v3 0.146 → 0.281, v4 0.080 → 0.190 (results/curves-v*, secondorder/data/curves.py).

    python scripts/curves_smoothness.py                      # every version, 20 000 training / 1 000 test images
    python scripts/curves_smoothness.py --version 2 --set pen_sigma=2.0 --set ink=0.567
"""

from __future__ import annotations

import argparse

import torch

from secondorder.data.curves import VERSION_DEFAULTS, CurvesConfig, generate_curves, mean_image_errors, rendering


def local_linear_errors(train: torch.Tensor, test: torch.Tensor, k: int = 12,
                        regulariser: float = 1e-3) -> dict[str, float]:
    """Mean squared error of the nearest training image and of the locally linear reconstruction from ``k``."""
    train, test = train.double(), test.double()
    distances, neighbours = torch.cdist(test, train).topk(k, largest=False)
    local = train[neighbours] - test[:, None, :]                     # (n_test, k, pixels)
    gram = local @ local.transpose(1, 2)                              # (n_test, k, k)
    trace = gram.diagonal(dim1=1, dim2=2).sum(dim=1)[:, None, None]
    gram = gram + regulariser * trace / k * torch.eye(k, dtype=gram.dtype)
    weights = torch.linalg.solve(gram, torch.ones(len(test), k, dtype=gram.dtype))
    weights = weights / weights.sum(dim=1, keepdim=True)
    rebuilt = (weights[:, :, None] * train[neighbours]).sum(dim=1)
    return {"nearest": float(distances[:, 0].square().mean()),
            "local_linear": float((test - rebuilt).square().sum(dim=1).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", type=int, choices=sorted(VERSION_DEFAULTS), action="append")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a rendering override: margin, pen_sigma, ink or stroke_width")
    parser.add_argument("--n-train", type=int, default=20000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("-k", type=int, default=12)
    args = parser.parse_args()
    overrides = {key: float(value) for key, value in (item.split("=", 1) for item in args.set)}
    for version in args.version or sorted(VERSION_DEFAULTS):
        cfg = CurvesConfig(version=version, **overrides)
        train, test = generate_curves(args.n_train, 0, cfg), generate_curves(args.n_test, 1, cfg)
        plateau = mean_image_errors(train, test)
        errors = local_linear_errors(train, test, args.k)
        print(f"v{version} {rendering(cfg)}: mean-image error {plateau['train']:.2f} / {plateau['test']:.2f}; "
              f"nearest training image {errors['nearest']:.3f}; local-linear (k={args.k}) "
              f"{errors['local_linear']:.3f} ({args.n_train} training / {args.n_test} test images)")


if __name__ == "__main__":
    main()
