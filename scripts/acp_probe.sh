#!/usr/bin/env bash
# Why ACP blew up in results/george/quick and in one tuning trial of results/george/evidence (issue 19). George's
# MNIST autoencoder (784-1000-500-250-30, Glorot, squared error, batch 200; mnist_5k), 300 updates per run.
#   1. ACP (heuristic α) and ACP with fixed α = 1 at damping ε = 1e-3 and 1e-1, rates 1e-2 and 1e-3, beside plain
#      SGD (default BLAS threads);
#   2. ACP at the blown-up tuning trial's rate (0.0295) with its ε (1.36e-4), 6.5e-3 and 1e-1, seeds 0–2, one BLAS
#      thread per run (as the tuning ran), two runs at a time;
#   3. the tuning trial itself (seed 0, its rate and ε) with one thread and with the default threads;
# then one table of final / best training errors (`report`). Hypothesis: MNIST's near-constant border pixels give
# the input covariance C eigenvalues ≈ 0, so (C + εI)⁻¹ multiplies those directions by up to 1/ε, and an untuned
# (rate, ε) pair diverges — a damping choice, not a bug (the closed forms are tested in tests/test_george.py).
# Findings: results/george/acp-probe/notes.md.
# Usage: scripts/acp_probe.sh [OUT_DIR]   (about 15 minutes on a 2-core CPU)
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
rate=0.029476497183813854 trial_eps=0.0001356090395364464
acp_at_trial_rate() {  # EPS SEED RUN_NAME [ENV...]: one ACP run at the tuning trial's rate
  local eps=$1 seed=$2 name=$3; shift 3
  env "$@" "$train" "${common[@]}" optimizer=acp optimizer.lr=$rate optimizer.damping="$eps" seed="$seed" \
    run_dir="$out/$name" > /dev/null 2>&1 || true
}
one_thread=(OMP_NUM_THREADS=1 MKL_NUM_THREADS=1)
for seed in 0 1 2; do
  acp_at_trial_rate $trial_eps $seed "grid/eps${trial_eps}_seed$seed" "${one_thread[@]}" &
  acp_at_trial_rate 0.006501 $seed "grid/eps0.006501_seed$seed" "${one_thread[@]}" &
  wait
  acp_at_trial_rate 0.1 $seed "grid/eps0.1_seed$seed" "${one_thread[@]}"
done
acp_at_trial_rate $trial_eps 0 acp_trial6_exact_1thread "${one_thread[@]}"
acp_at_trial_rate $trial_eps 0 acp_trial6_exact
report "$out" --out "$out/report" --x iteration
