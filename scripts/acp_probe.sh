#!/usr/bin/env bash
# Why ACP blew up in results/george/quick (issue 19): ACP (heuristic α) and ACP with fixed α = 1 on George's MNIST
# autoencoder (784-1000-500-250-30, Glorot, squared error, batch 200; mnist_5k) for 300 updates, at the config's
# damping ε = 1e-3 and at 1e-1, at rates 1e-2 and 1e-3, beside plain SGD; then one table of final / best training
# errors and the iteration a run diverged at (`report`). Hypothesis: MNIST's near-constant border pixels give the
# input covariance C eigenvalues ≈ 0, so (C + εI)⁻¹ multiplies those directions by up to 1/ε, and an untuned
# (rate, ε) pair diverges — a damping choice, not a bug (the closed forms are tested in tests/test_george.py).
# Usage: scripts/acp_probe.sh [OUT_DIR]   (about 10 minutes on a 2-core CPU)
set -euo pipefail
out=${1:-runs/acp-probe}
train=${TRAIN:-train}
common=(dataset=mnist_5k dataset.loss=squared_error model.init.scheme=glorot trainer.max_steps=300
        trainer.eval_every=25 trainer.log_every=5 trainer.progress=false)
for lr in 0.01 0.001; do
  "$train" "${common[@]}" optimizer=sgd optimizer.batch_size=200 optimizer.lr=$lr run_dir="$out/sgd_lr$lr" || true
  for damping in 0.001 0.1; do
    for method in acp acp_fixed_alpha; do
      "$train" "${common[@]}" optimizer=$method optimizer.lr=$lr optimizer.damping=$damping \
        run_dir="$out/${method}_lr${lr}_eps${damping}" || true   # a diverged run exits 3: keep going
    done
  done
done
report "$out" --out "$out/report" --x iteration
