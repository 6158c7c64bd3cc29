# secondorder — developer and reproduction entry points.
#   make run     bootstrap .venv if needed, then a short Adam run on (generated) CURVES
#   make test    bootstrap .venv if needed, then the default (fast, CPU) test suite
# Cluster users with their own CUDA build of torch: make setup TORCH_SPEC="torch==X+cuYYY ..." or install
# torch into .venv first (setup keeps an importable torch).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.secondorder-installed
DATA_DIR ?= $(or $(SECONDORDER_DATA),data)
RUN_ARGS ?= optimizer=adam dataset=curves trainer.max_steps=3000 trainer.eval_every=500 trainer.log_every=50

.PHONY: setup run test test-all lint data bench bench-curvature bench-iterations bench-time-to-target bench-data-parallel clean reproduce-table-4.3 \
        reproduce-kfac-autoencoders reproduce-kfra reproduce-kfra-alignment reproduce-george reproduce-hf-rnn \
        reproduce-kfac-rnn reproduce-all

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch, torchvision" 2>/dev/null || $(BIN)/python -m pip install $(TORCH_SPEC)
	$(BIN)/python -m pip install -e '.[dev]'
	@touch $(STAMP)

run: setup
	$(BIN)/train $(RUN_ARGS)

test: setup
	$(BIN)/python -m pytest

test-all: setup  ## the default suite plus long tests marked slow
	$(BIN)/python -m pytest -m ""

lint: setup
	$(BIN)/ruff check .

data: setup  ## fetch datasets where a network exists; list what is missing
	$(BIN)/python -m secondorder.data.fetch $(DATA_DIR)

BENCH_PROFILE ?=
bench: setup  ## the benchmark suite → results/bench/<device>/ (quick on CPU ≈ 18 min; full with CUDA; BENCH_PROFILE=…)
	$(BIN)/python -m secondorder.bench.suite $(if $(BENCH_PROFILE),--profile $(BENCH_PROFILE)) $(BENCH_ARGS)

bench-curvature: setup  ## GGN/Fisher/Hessian-vector product cost vs a gradient → results/bench/<device>/curvature.*
	$(BIN)/python -m secondorder.bench.curvature $(BENCH_ARGS)

bench-iterations: setup  ## every optimiser's step vs an Adam step, in parts → results/bench/<device>/iterations.*
	$(BIN)/python -m secondorder.bench.iterations $(BENCH_ARGS)

bench-time-to-target: setup  ## HF, K-FAC, KFRA, tuned Adam to target errors → results/bench/<device>/time_to_target.*
	$(BIN)/python -m secondorder.bench.time_to_target $(BENCH_ARGS)

bench-data-parallel: setup  ## steps/s and bytes/step at 1 and N processes (gloo on CPU, NCCL on GPUs) → results/bench/<device>/data_parallel.*
	$(BIN)/python -m secondorder.bench.data_parallel $(BENCH_ARGS)

clean:
	rm -rf runs outputs multirun .pytest_cache .ruff_cache

# Every reproduce-* target but kfra-alignment is a spec, conf/reproduce/<target>.yaml, run by one runner.
PROFILE ?= quick
reproduce-table-4.3: setup  ## thesis Table 4.3 + Fig. 4.5 → results/table-4.3/$(PROFILE)/ (PROFILE=quick|evidence|full)
	$(BIN)/python -m secondorder.experiments table-4.3 --profile $(PROFILE)

reproduce-kfac-autoencoders: setup  ## thesis Fig. 6.9/6.10 → results/kfac-autoencoders/$(PROFILE)/
	$(BIN)/python -m secondorder.experiments kfac-autoencoders --profile $(PROFILE)

reproduce-kfra: setup reproduce-kfra-alignment  ## Botev et al. 2017 §5 (+ odd/even, App. G.2) → results/kfra/$(PROFILE)/
	$(BIN)/python -m secondorder.experiments kfra --profile $(PROFILE)

reproduce-kfra-alignment: setup  ## Botev et al. 2017 App. G.2 → results/kfra-alignment/$(PROFILE)/
	$(BIN)/python -m secondorder.experiments.alignment --profile $(PROFILE) --data-dir $(DATA_DIR)

reproduce-george: setup  ## George 2017 §4.1 table + Fig. 4.1, Figs 6.1/6.2 → results/george/$(PROFILE)/
	$(BIN)/python -m secondorder.experiments george --profile $(PROFILE) --data-dir $(DATA_DIR)

reproduce-hf-rnn: setup  ## thesis §4.13 Fig. 4.7: HF ± structural damping on the RNN problems → results/hf-rnn/$(PROFILE)/
	$(BIN)/python -m secondorder.experiments hf-rnn --profile $(PROFILE)

reproduce-kfac-rnn: setup  ## Martens, Ba & Johnson 2018 §4: K-FAC for RNNs on PTB and copy → results/kfac-rnn/$(PROFILE)/
	$(BIN)/python -m secondorder.experiments kfac-rnn --profile $(PROFILE)

reproduce-all: reproduce-table-4.3 reproduce-kfac-autoencoders reproduce-kfra reproduce-george reproduce-hf-rnn \
               reproduce-kfac-rnn
