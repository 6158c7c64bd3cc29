#!/usr/bin/env bash
# K-FAC vs Adam (its config defaults) vs the NAG baseline on CURVES for the same number of iterations, then a
# report with plots under results/. Usage: scripts/compare_kfac_curves.sh [STEPS] [OUT]   (from the repo root)
# Reduced budget on purpose (CPU); the label says so in results/<OUT>/README.md.
set -euo pipefail
STEPS=${1:-300}
OUT=${2:-kfac-vs-adam-curves}
RUNS=runs/$OUT
BIN=${BIN:-.venv/bin}
common=(dataset=curves trainer.max_steps="$STEPS" trainer.eval_every=25 trainer.log_every=5 trainer.progress=false)
"$BIN/train" experiment=kfac_curves "${common[@]}" run_dir="$RUNS/kfac"
"$BIN/train" optimizer=adam "${common[@]}" run_dir="$RUNS/adam"
"$BIN/train" experiment=nag_curves "${common[@]}" run_dir="$RUNS/nag"
"$BIN/report" "$RUNS" --out "results/$OUT"
