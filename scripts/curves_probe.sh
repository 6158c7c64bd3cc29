#!/usr/bin/env bash
# The generalisation probe behind the CURVES v2 choice (secondorder/data/curves.py): Adam, 2 000 updates, on 2 000
# training and 2 000 test images of v1 and of four v2 candidates, each inked to the original's mean-image error.
# Usage: scripts/curves_probe.sh [OUT_DIR]   (about 30 s per run on a 2-core CPU); then read each metrics.csv.
set -euo pipefail
out=${1:-runs/curves-probe}
train=${TRAIN:-train}
common=(optimizer=adam dataset=curves dataset.n_train=2000 dataset.n_test=2000 trainer.max_steps=2000
        trainer.eval_every=250 trainer.log_every=250 trainer.progress=false)
"$train" "${common[@]}" run_dir="$out/v1" dataset.version=1
"$train" "${common[@]}" run_dir="$out/m4s10" dataset.version=2 dataset.margin=4.0 dataset.pen_sigma=1.0 dataset.ink=0.765
"$train" "${common[@]}" run_dir="$out/m6s13" dataset.version=2 dataset.margin=6.0 dataset.pen_sigma=1.3 dataset.ink=0.816
"$train" "${common[@]}" run_dir="$out/m3s15" dataset.version=2 dataset.margin=3.0 dataset.pen_sigma=1.5 dataset.ink=0.62
"$train" "${common[@]}" run_dir="$out/m2s10" dataset.version=2 dataset.margin=2.0 dataset.pen_sigma=1.0 dataset.ink=0.682
