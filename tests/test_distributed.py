"""Data-parallel runs (``trainer.distributed``): two gloo processes on the CPU reproduce the one-process run on the
same union batches, a resume from a mid-run checkpoint included; rank 0 alone writes; what cannot run data-parallel
is refused in one line on every rank, without a hang.

The oracle is the one-process run itself, in float64: the case-weighted average of the shard means is the union
mean up to rounding, so every metric agrees to 1e-10 relative (a run that summed instead of averaged, weighted
unequal shards equally or let one rank's ℓ2 prior count twice is off by far more).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from secondorder import distributed
from secondorder.bench.data_parallel import free_port, start
from secondorder.distributed import Ranks, launch_environment
from secondorder.errors import ConfigError
from secondorder.problems.samplers import EpochSampler, ShardedSampler, StreamSampler
from tests.conftest import TINY
from tests.helpers import script

RUN = [*TINY, "trainer.dtype=float64", "trainer.log_every=1", "trainer.eval_every=4", "trainer.progress=false"]
TIMING = ("wall_time_s",)


# ---------------------------------------------------------------- the launchers' environments
def test_torchrun_environment_gives_the_ranks_and_the_rendezvous() -> None:
    env = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "node7", "MASTER_PORT": "29511"}
    ranks, rendezvous = launch_environment(env)
    assert ranks == Ranks(1, 4, 1) and not ranks.main and ranks.parallel
    assert rendezvous == {"MASTER_ADDR": "node7", "MASTER_PORT": "29511"}


def test_srun_environment_gives_the_ranks_and_a_port_from_the_job_id() -> None:
    env = {"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_STEP_NUM_TASKS": "2", "SLURM_LOCALID": "0",
           "SLURM_STEP_ID": "0", "SLURM_JOB_ID": "20123", "MASTER_ADDR": "n1"}  # a 2-task step of a 4-task job
    ranks, rendezvous = launch_environment(env)
    assert ranks == Ranks(0, 2, 0) and ranks.main
    assert rendezvous == {"MASTER_ADDR": "n1", "MASTER_PORT": str(distributed.PORT_BASE + 123)}


@pytest.mark.parametrize("env", [{}, {"RANK": "0", "WORLD_SIZE": "1"},
                                 {"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_STEP_ID": "0"},
                                 {"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_JOB_ID": "1"},  # sbatch, no srun
                                 {"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_STEP_NUM_TASKS": "1",
                                  "SLURM_STEP_ID": "0"}])  # srun --ntasks=1 inside a 4-task job
def test_one_process_is_not_a_distributed_launch(env: dict[str, str]) -> None:
    assert launch_environment(env) is None


def test_impossible_launcher_values_are_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match="not an integer"):
        launch_environment({"RANK": "x", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="rank 3 of 2"):
        launch_environment({"RANK": "3", "WORLD_SIZE": "2"})


def test_distributed_on_without_a_launcher_is_refused_and_off_ignores_one() -> None:
    with pytest.raises(ConfigError, match="torchrun"):
        distributed.initialise("on", torch.device("cpu"), env={})
    launched = {"RANK": "1", "WORLD_SIZE": "2"}
    assert distributed.initialise("off", torch.device("cpu"), env=launched) == distributed.SINGLE
    assert distributed.initialise("auto", torch.device("cpu"), env={}) == distributed.SINGLE


def test_the_strided_shards_of_the_ranks_make_up_the_union_batch() -> None:
    inputs, targets = torch.arange(40.0).view(20, 2), torch.arange(20)
    union = EpochSampler(inputs, targets, seed=3).next(8)
    shards = []
    for rank in range(2):
        sampler = ShardedSampler(EpochSampler(inputs, targets, seed=3), lambda b, i: (b[0][i], b[1][i]),
                                 Ranks(rank, 2), lambda b: b[0].shape[0])
        shards.append(sampler.next(8))
        assert sampler.examples_seen == 8 and sampler.epochs == pytest.approx(0.4)
    assert torch.equal(torch.stack([s[0] for s in shards], 1).reshape(8, 2), union[0])  # rank r: cases r, r + 2, …
    assert torch.equal(torch.stack([s[1] for s in shards], 1).reshape(8), union[1])
    assert sampler.n == 20
    last = ShardedSampler(EpochSampler(inputs, targets, seed=3), lambda b, i: (b[0][i], b[1][i]), Ranks(2, 3),
                          lambda b: b[0].shape[0])
    assert last.next(7)[1].tolist() == union7(inputs, targets)[2::3]  # unequal shards: 3, 2, 2 of 7
    with pytest.raises(ConfigError, match="cannot feed 3 processes"):
        last.next(2)


def union7(inputs: torch.Tensor, targets: torch.Tensor) -> list[int]:
    return EpochSampler(inputs, targets, seed=3).next(7)[1].tolist()


# ---------------------------------------------------------------- two gloo processes against one
def launch(ranks: int, args: list[str], cwd: Path, timeout: float = 240) -> list[subprocess.CompletedProcess[str]]:
    """``train`` as ``torchrun --nproc_per_node=ranks`` would start it (the benchmark's launcher), one thread each."""
    results = []
    for process in start(ranks, args, threads=1, cwd=cwd):
        out, err = process.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


def assert_same_metrics(a: Path, b: Path, rel: float = 1e-10) -> None:
    """Every metric of every row to ``rel`` relative (the wall-clock time aside)."""
    left, right = pd.read_csv(a / "metrics.csv"), pd.read_csv(b / "metrics.csv")
    assert list(left.columns) == list(right.columns) and len(left) == len(right)
    for column in left.columns:
        if column in TIMING:
            continue
        for it, x, y in zip(left["iteration"], left[column], right[column], strict=True):
            if isinstance(x, float) and math.isnan(x):
                assert math.isnan(y), column
            else:
                assert y == pytest.approx(x, rel=rel, abs=1e-300), (column, it)


SECOND_ORDER = ["optimizer.batch_size=64", "optimizer.inverse_period=5", "optimizer.gamma_period=5"]


def one_and_two_ranks(tmp_path: Path, common: list[str], steps: tuple[int, int] = (6, 12),
                      two: tuple[str, ...] = ()) -> None:
    """The run on one process (``one``) and on two (``two``): ``steps[0]`` iterations, then continued to
    ``steps[1]`` from the checkpoint written at the end of the first launch (which evaluates at its budget's end,
    so the one-process reference is split the same way); ``two``: overrides of the two-rank launches alone."""
    for total, resume in ((steps[0], "false"), (steps[1], "true")):
        (single,) = launch(1, [*common, f"trainer.max_steps={total}", f"trainer.resume={resume}",
                               f"run_dir={tmp_path / 'one'}"], tmp_path)
        assert single.returncode == 0, single.stderr
        results = launch(2, [*common, f"trainer.max_steps={total}", f"trainer.resume={resume}",
                             f"run_dir={tmp_path / 'two'}", *two], tmp_path)
        assert all(r.returncode == 0 for r in results), [r.stderr[-2000:] for r in results]


@pytest.mark.parametrize("method", [
    pytest.param(["optimizer=sgd", "optimizer.lr=0.01", "optimizer.batch_size=32"], marks=pytest.mark.slow),
    ["optimizer=adam", "optimizer.batch_size=32"],
    pytest.param(["optimizer=nesterov", "optimizer.lr=0.001", "optimizer.batch_size=31"], marks=pytest.mark.slow),
    # K-FAC's batch grows 64 → 65 at iteration 7 (unequal shards), inverses at 1–3, 5, 10; statistics on the first
    # 8 cases, targets sampled; λ moves at 5 and 10, γ candidates at 5 and 10
    ["optimizer=kfac", *SECOND_ORDER],
    pytest.param(["optimizer=kfac_tridiag", *SECOND_ORDER], marks=pytest.mark.slow),
    pytest.param(["optimizer=kfac", *SECOND_ORDER, "optimizer.parallel_inverses=every_rank"],
                 marks=pytest.mark.slow),
    ["optimizer=kfra", "optimizer.batch_size=64"],
    pytest.param(["optimizer=kflr", "optimizer.batch_size=64"], marks=pytest.mark.slow),
], ids=["sgd", "adam", "nesterov", "kfac", "kfac_tridiag", "kfac_every_rank", "kfra", "kflr"])
def test_two_ranks_reproduce_one_process_and_resume_midway(tmp_path: Path, data_dir: Path,
                                                           method: list[str]) -> None:
    """Equal shards (32 = 16 + 16) and unequal ones (31 = 16 + 15: a mean of the two shard means would be off);
    the K-FAC family with every batch mean it forms (gradient, factor statistics, the re-scaling's Gram, ρ's
    objective) and its sampled targets drawn as one process draws them."""
    out = tmp_path / "runs"
    one_and_two_ranks(tmp_path, [*RUN, *method, f"data_dir={data_dir}", "trainer.checkpoint_every=5"],
                      two=(f"out_root={out}",))
    assert_same_metrics(tmp_path / "one", tmp_path / "two")
    summary = pd.read_json(tmp_path / "two" / "summary.json", typ="series")
    assert summary["status"] == "completed" and summary["iteration"] == 12 and summary["processes"] == 2
    assert summary["communication"]["collectives"] >= 6 and summary["communication"]["payload_bytes"] > 8 * 6 * 38758
    assert not out.exists()  # rank 1 left nothing behind: its Hydra record went to a scratch folder


LANGUAGE_MODEL = ["dataset=ptb_char", "dataset.bptt=12", "dataset.eval_train_tokens=600", "dataset.eval_tokens=600",
                  "dataset.eval_batch_size=5", "model.hidden_dim=12", "model.embedding_dim=8"]


@pytest.mark.parametrize("task", [
    # a character LSTM on 5 streams (3 + 2 per rank, each rank carrying its streams' state across windows)
    [*LANGUAGE_MODEL, "dataset.batch_size=5", "optimizer.batch_size=5"],
    # the memory-augmented LSTM: sequences whose scored steps (the mask) are a part of each
    pytest.param(["dataset=dnc_copy", "dataset.T=22", "dataset.n_test=40", "optimizer.batch_size=25"],
                 marks=pytest.mark.slow),
    pytest.param([*LANGUAGE_MODEL, "dataset.batch_size=5", "optimizer.batch_size=5",
                  "optimizer.parallel_inverses=every_rank"], marks=pytest.mark.slow),
], ids=["ptb_char", "dnc_copy", "ptb_char_every_rank"])
def test_kfac_rnn_on_two_ranks_reproduces_one_process_and_resumes(tmp_path: Path, data_dir: Path,
                                                                   task: list[str]) -> None:
    """K-FAC for RNNs with its gradient, lag-0 / lag-1 factor statistics and ρ's terms as union means and its
    sampled targets drawn at the union's shape; inverse refreshes at 1–3, 4, 8, 12 (each layer's on one rank,
    broadcast, or on every rank); λ adapted every 2."""
    common = [*task, "trainer.device=cpu", "trainer.dtype=float64", "trainer.log_every=1", "trainer.eval_every=4",
              "trainer.progress=false", f"data_dir={data_dir}", "optimizer=kfac_rnn", "optimizer.inverse_period=4",
              "optimizer.lambda_period=2", "objective.l2=1e-3", "trainer.checkpoint_every=5"]
    one_and_two_ranks(tmp_path, common)
    assert_same_metrics(tmp_path / "one", tmp_path / "two")
    metrics = pd.read_csv(tmp_path / "two" / "metrics.csv")
    assert metrics["rho"].notna().sum() >= 5 and metrics["train_error"].notna().sum() >= 3


@pytest.mark.parametrize(("task", "ranks"), [
    # the streams' carried state gathered from 2 ranks (3 + 2 streams) and shared out again to 3 (2 + 2 + 1)
    ([*LANGUAGE_MODEL, "dataset.batch_size=5", "optimizer.batch_size=5", "optimizer=kfac_rnn",
      "optimizer.inverse_period=4", "optimizer.lambda_period=2"], (2, 3)),
    pytest.param([*TINY, "optimizer=kfac", *SECOND_ORDER], (2, 1), marks=pytest.mark.slow),
], ids=["kfac_rnn_2_to_3", "kfac_2_to_1"])
def test_a_checkpoint_resumes_on_another_number_of_ranks(tmp_path: Path, data_dir: Path, task: list[str],
                                                         ranks: tuple[int, int]) -> None:
    """Checkpoints hold the union's state (every stream's carried state, in stream order), so a run started on
    ``ranks[0]`` processes and resumed on ``ranks[1]`` is the one-process run."""
    common = [*task, "trainer.device=cpu", "trainer.dtype=float64", "trainer.log_every=1", "trainer.eval_every=4",
              "trainer.progress=false", f"data_dir={data_dir}", "trainer.checkpoint_every=5"]
    for name, plan in (("one", (1, 1)), ("moved", ranks)):
        for total, resume, processes in ((6, "false", plan[0]), (12, "true", plan[1])):
            results = launch(processes, [*common, f"trainer.max_steps={total}", f"trainer.resume={resume}",
                                         f"run_dir={tmp_path / name}"], tmp_path)
            assert all(r.returncode == 0 for r in results), [r.stderr[-2000:] for r in results]
    assert_same_metrics(tmp_path / "one", tmp_path / "moved")
    summary = pd.read_json(tmp_path / "moved" / "summary.json", typ="series")
    assert summary["iteration"] == 12 and summary["processes"] == ranks[1]


def test_stream_shards_make_up_the_union_window_and_resume_from_its_state() -> None:
    """Rank r of R trains the streams r, r + R, … of every window; a checkpoint's carried state is the union's (in
    stream order), from which each rank takes its own streams back."""
    stream = torch.arange(100)
    union = StreamSampler(stream, batch_size=5, bptt=4, advance=None)
    shards = [union.shard(Ranks(rank, 2)) for rank in range(2)]
    whole = union.next(5)
    parts = [shard.next(5) for shard in shards]
    assert torch.equal(parts[0].inputs, whole.inputs[0::2]) and torch.equal(parts[1].targets, whole.targets[1::2])
    assert all(shard.examples_seen == union.examples_seen == 20 for shard in shards)
    state = [(torch.arange(5.0)[:, None].repeat(1, 3), -torch.arange(5.0)[:, None])]  # one layer's (h, c)
    whole.final_state = state
    saved = union.state_dict()  # (one process: nothing to gather)
    shards[1].load_state_dict(saved)
    assert shards[1].next(5).state[0][0][:, 0].tolist() == [1.0, 3.0]  # streams 1 and 3
    assert shards[1].position == 8 and union.next(5).inputs[1::2].equal(shards[1].last_batch.inputs)
    with pytest.raises(ConfigError, match="cannot feed 3 processes"):
        StreamSampler(stream, batch_size=2, bptt=4, advance=None, ranks=Ranks(0, 3))


def test_hf_on_two_ranks_reproduces_one_process_and_resumes(tmp_path: Path, data_dir: Path) -> None:
    """HF whole (empirical-Fisher preconditioner, CG-backtracking, line search, λ adapted by ρ) with every gradient,
    CG product (a curvature chunk of 16 of the 64 cases), preconditioner statistic and objective as union means.

    CG is run for 5 iterations: CG in floating point amplifies rounding with every iteration it runs, so at HF's
    default length (here 17–39 iterations) no reproduction holds 1e-10, distributed or not — one process against
    itself with 1 thread and with 2 (a different summation order in BLAS) differs by 2e-5 in the loss after two
    iterations, and two ranks against one by 2e-8; with 10 CG iterations by 3e-6 after twelve, with 5 by 1e-13
    (measured)."""
    common = [*RUN, f"data_dir={data_dir}", "optimizer=hf", "optimizer.gradient_batch=64", "optimizer.max_cg_iters=5",
              "trainer.checkpoint_every=5"]
    one_and_two_ranks(tmp_path, common)
    assert_same_metrics(tmp_path / "one", tmp_path / "two")
    metrics = pd.read_csv(tmp_path / "two" / "metrics.csv")
    assert metrics["lambda"].nunique() >= 5 and (metrics["cg_iters"].dropna() == 5).all()


def test_a_lost_process_fails_the_run_in_one_line_and_the_checkpoint_resumes_it(tmp_path: Path,
                                                                                 data_dir: Path) -> None:
    """Rank 1 killed mid-run: rank 0 stops at its next collective with one line (exit 2), the run is marked failed,
    and relaunching with trainer.resume=true continues from the last checkpoint."""
    common = [*RUN, f"data_dir={data_dir}", "optimizer=kfac", "optimizer.batch_size=64", "trainer.checkpoint_every=5",
              f"run_dir={tmp_path / 'run'}"]
    processes = start(2, [*common, "trainer.max_steps=100000"], threads=1, cwd=tmp_path)
    metrics = tmp_path / "run" / "metrics.csv"
    deadline = time.monotonic() + 180
    while not (metrics.exists() and len(metrics.read_text().splitlines()) > 12) and time.monotonic() < deadline:
        time.sleep(0.2)
    processes[1].kill()
    _, err = processes[0].communicate(timeout=180)
    processes[1].communicate()
    assert processes[0].returncode == 2, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("train: error: the data-parallel process group failed at")
    assert "trainer.resume=true" in err and "Traceback" not in err
    summary = pd.read_json(tmp_path / "run" / "summary.json", typ="series")
    assert summary["status"] == "failed" and summary["iteration"] > 10
    saved = int(torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["iteration"])
    results = launch(2, [*common, f"trainer.max_steps={saved + 3}", "trainer.resume=true"], tmp_path)
    assert all(r.returncode == 0 for r in results), [r.stderr[-2000:] for r in results]
    resumed = pd.read_json(tmp_path / "run" / "summary.json", typ="series")
    assert resumed["status"] == "completed" and resumed["iteration"] == saved + 3


def test_a_signal_to_one_rank_stops_every_rank_at_one_iteration_with_a_checkpoint(tmp_path: Path,
                                                                                   data_dir: Path) -> None:
    """SIGTERM to rank 1 alone (a launcher that signals one task): the ranks agree on the stop, rank 0 writes the
    checkpoint of that iteration, both exit 143, and the run resumes from it."""
    # an evaluation every step: a signal often lands after the ranks' agreement, where acting on it alone would
    # leave rank 1 checkpointing while rank 0 steps on (a deadlock the agreed stop prevents)
    common = [*RUN, f"data_dir={data_dir}", "optimizer=kfac", "optimizer.batch_size=64", "trainer.eval_every=1",
              "trainer.checkpoint_every=1000", f"run_dir={tmp_path / 'run'}"]
    processes = start(2, [*common, "trainer.max_steps=100000"], threads=1, cwd=tmp_path)
    metrics = tmp_path / "run" / "metrics.csv"
    deadline = time.monotonic() + 180
    while not (metrics.exists() and len(metrics.read_text().splitlines()) > 12) and time.monotonic() < deadline:
        time.sleep(0.2)
    processes[1].send_signal(signal.SIGTERM)
    errors = [process.communicate(timeout=60)[1] for process in processes]
    assert [process.returncode for process in processes] == [143, 143], errors
    summary = pd.read_json(tmp_path / "run" / "summary.json", typ="series")
    saved = int(torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["iteration"])
    assert summary["status"] == "interrupted" and summary["iteration"] == saved > 10
    assert all(f"at iteration {saved};" in error for error in errors)
    results = launch(2, [*common, f"trainer.max_steps={saved + 2}", "trainer.resume=true"], tmp_path)
    assert all(r.returncode == 0 for r in results), [r.stderr[-2000:] for r in results]


def test_rank_zero_names_the_run_directory(tmp_path: Path, data_dir: Path) -> None:
    results = launch(2, [*RUN, f"data_dir={data_dir}", "optimizer=sgd", "trainer.max_steps=3",
                         f"out_root={tmp_path / 'runs'}"], tmp_path)
    assert all(r.returncode == 0 for r in results), [r.stderr[-2000:] for r in results]
    runs = [p.parent for p in (tmp_path / "runs").rglob("summary.json")]
    assert len(runs) == 1  # one run directory, however many processes
    assert sorted(p.name for p in (tmp_path / "runs").rglob("*") if p.is_file() and ".hydra" not in p.parts) == \
        sorted(["checkpoint.pt", "config.yaml", "metrics.csv", "summary.json", "cli.log"])


@pytest.mark.parametrize(("overrides", "message"), [
    (["optimizer=ncg"], "optimizer=ncg does not run data-parallel yet"),
    (["optimizer=hf", "optimizer.preconditioner=ggn_diagonal"], "ggn_diagonal draws random vectors"),
    (["optimizer=adam", "optimizer.batch_size=1"], "cannot feed 2 processes"),
])
def test_what_cannot_run_data_parallel_is_refused_on_every_rank(tmp_path: Path, data_dir: Path,
                                                                 overrides: list[str], message: str) -> None:
    results = launch(2, [*RUN, f"data_dir={data_dir}", *overrides, "trainer.max_steps=3",
                         f"run_dir={tmp_path / 'r'}"], tmp_path, timeout=120)
    for result in results:
        assert result.returncode != 0
        lines = [line for line in result.stderr.splitlines() if line.startswith("train: error:")]
        assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]


def test_a_refused_run_directory_stops_every_rank(tmp_path: Path, data_dir: Path) -> None:
    args = [*RUN, f"data_dir={data_dir}", "optimizer=sgd", "trainer.max_steps=2", f"run_dir={tmp_path / 'r'}"]
    assert all(r.returncode == 0 for r in launch(2, args, tmp_path))
    results = launch(2, args, tmp_path, timeout=120)  # resume=false on a folder that holds a run
    assert all(r.returncode != 0 for r in results)
    assert "already holds a run" in results[0].stderr and "rank 0 refused the run" in results[1].stderr


def test_multirun_in_a_distributed_launch_is_refused(tmp_path: Path, data_dir: Path) -> None:
    env = {**os.environ, "RANK": "1", "WORLD_SIZE": "2", "MASTER_PORT": str(free_port())}
    result = subprocess.run([script("train"), "-m", "optimizer=sgd,adam", *RUN], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "runs one configuration" in result.stderr


def test_each_process_takes_its_own_gpu_whichever_way_the_launcher_shows_them() -> None:
    """torchrun / --gres: every process sees the node's GPUs and takes its local rank's; --gpus-per-task=1: each
    sees one, its own; more processes than GPUs: refused in one line, not two processes on one GPU."""
    assert [distributed.gpu_index(rank, 4) for rank in range(4)] == [0, 1, 2, 3]
    assert [distributed.gpu_index(rank, 1) for rank in range(4)] == [0, 0, 0, 0]
    with pytest.raises(ConfigError, match="process 2 of its node sees 2 GPU"):
        distributed.gpu_index(2, 2)


def test_gpu_runs_keep_gloo_beside_nccl_for_their_cpu_side_collectives() -> None:
    """Case counts, evaluation sums and stopping decisions are CPU tensors, which NCCL alone refuses."""
    assert distributed.backend_for(torch.device("cuda", 1)) == "cpu:gloo,cuda:nccl"
    assert distributed.backend_for(torch.device("cpu")) == "gloo"


def test_the_union_mean_is_the_identity_on_one_process() -> None:
    tensor = torch.tensor([1.0, 2.0])
    distributed.mean_([tensor], 7)
    assert tensor.tolist() == [1.0, 2.0] and sys.modules["secondorder.distributed"].world() == 1


def test_factor_decompositions_are_shared_out_by_cost() -> None:
    """Costliest first, each to the least-loaded rank: 1000³ alone on one rank, the rest on the other."""
    assert distributed.owners([8.0, 1000.0**3, 27.0, 8.0], 2) == [1, 0, 1, 1]
    assert distributed.owners([1.0] * 5, 3) == [0, 1, 2, 0, 1]
    assert distributed.owners([5.0], 4) == [0]
    # one process computes everything itself
    matrices = [torch.eye(2), 2 * torch.eye(3)]
    out = distributed.spread(matrices, lambda mine: [[m.trace().reshape(1)] for m in mine], lambda m: [(1,)],
                             [8.0, 27.0], torch.float64)
    assert [float(r[0]) for r in out] == [2.0, 6.0]
