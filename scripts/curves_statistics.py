"""Statistics of the generated CURVES re-creation against the original's (issue: stand-in data that behave like the
originals). Prints, for each generator version, the error of the best constant output (the mean training image) —
the per-case sum of squared pixel errors, averaged over cases, on the training and the test set — and the ink per
image, beside the original's 16.9 (train) / 17.0 (test).

    python scripts/curves_statistics.py                 # every version, the default 20 000 / 10 000 images
    python scripts/curves_statistics.py --n-train 4000 --n-test 2000 --version 2
"""

from __future__ import annotations

import argparse

from secondorder.data.curves import VERSION_DEFAULTS, CurvesConfig, generate_curves, mean_image_errors, rendering

ORIGINAL = {"train": 16.9, "test": 17.0}  # digs3pts_1.mat: the mean-image error during K-FAC's early plateau


def statistics(cfg: CurvesConfig) -> dict[str, float]:
    train, test = generate_curves(cfg.n_train, 2 * cfg.seed, cfg), generate_curves(cfg.n_test, 2 * cfg.seed + 1, cfg)
    errors = mean_image_errors(train, test)
    return {**errors, "ink": float(train.double().sum(dim=1).mean()), "peak": float(train.amax(dim=1).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", type=int, choices=sorted(VERSION_DEFAULTS), action="append")
    parser.add_argument("--n-train", type=int, default=20000)
    parser.add_argument("--n-test", type=int, default=10000)
    args = parser.parse_args()
    print(f"original (digs3pts_1.mat): mean-image error train {ORIGINAL['train']}, test {ORIGINAL['test']}")
    for version in args.version or sorted(VERSION_DEFAULTS):
        cfg = CurvesConfig(version=version, n_train=args.n_train, n_test=args.n_test)
        s = statistics(cfg)
        within = all(abs(s[k] - ORIGINAL[k]) <= 0.1 * ORIGINAL[k] for k in ORIGINAL)
        print(f"v{version} {rendering(cfg)}: mean-image error train {s['train']:.2f}, test {s['test']:.2f} "
              f"({'within' if within else 'outside'} 10 % of the original); ink per image {s['ink']:.1f}, "
              f"mean peak {s['peak']:.2f} ({args.n_train} / {args.n_test} images)")


if __name__ == "__main__":
    main()
