#!/usr/bin/env bash
# Wheels for scripts/gpu_check.sh on a machine that cannot reach a package index (the device tool's GPU machines
# have torch, pandas, matplotlib and tqdm, not Hydra). Writes .whl/ (git-ignored: add "/.whl/" to
# .git/info/exclude) with the versions installed in .venv, all pure Python (antlr4 4.9.3 ships only a source
# archive, so it is built into a wheel here).
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
[[ -x $python ]] || { echo "gpu_wheels.sh: no .venv here; run 'make setup' first" >&2; exit 2; }
version() { "$python" -c "import importlib.metadata as m; print(m.version('$1'))"; }
mkdir -p .whl
"$python" -m pip wheel -q --no-deps -w .whl "hydra-core==$(version hydra-core)" "omegaconf==$(version omegaconf)" \
    "antlr4-python3-runtime==$(version antlr4-python3-runtime)"
ls -l .whl
