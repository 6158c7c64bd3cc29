"""Data-parallel runs over ``torch.distributed``: who we are, and the one reduction every method uses.

A run on R ranks is the run of one process on the *union* batch. Every rank builds the same model and the same
sampler from the same seed, so all ranks draw the same union batch; each keeps its own strided shard of it
(:class:`~secondorder.problems.samplers.ShardedSampler`). Every per-case quantity the methods use is a mean over
the cases of a batch — the objective h, its gradient, curvature products (1/N) Σ_n J_nᵀ H_L J_n v, factor
statistics — so the union's mean is the case-weighted average of the shard means, Σ_r n_r m_r / Σ_r n_r
(:func:`mean_`), computed by one all-reduce. The ℓ2 prior is the same on every rank and passes through the average
unchanged. Evaluations are sharded the same way, their sums added over the ranks (:func:`totals`).

Launchers (:func:`launch_environment`): ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``) or SLURM's ``srun`` with one task per process (``SLURM_PROCID``, ``SLURM_NTASKS``,
``SLURM_LOCALID``; the rendezvous is the first node of the step on a port derived from the job id). The backend is
gloo on CPUs; on GPUs NCCL for CUDA tensors with gloo beside it for the small CPU-side collectives
(:func:`backend_for`).
"""

from __future__ import annotations

import atexit
import math
import os
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

from secondorder.errors import ConfigError, UserError

MODES = ("auto", "off", "on")
#: SLURM rendezvous port: this base plus the job id modulo ``PORT_SPAN`` (two steps of one job would collide, as
#: they would under torchrun's fixed default)
PORT_BASE, PORT_SPAN = 20000, 20000
Job = TypeVar("Job")


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run: ``rank`` of ``world`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 writes the run directory; the others compute beside it."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1


SINGLE = Ranks()


@dataclass
class Traffic:
    """Collectives this process has run in the training loop and the bytes it contributed to them (the tensors'
    payload; the transport's own overhead, e.g. a ring all-reduce sending each byte about twice, not included)."""

    collectives: int = 0
    payload_bytes: int = 0

    def count(self, tensor: Tensor) -> None:
        self.collectives += 1
        self.payload_bytes += tensor.numel() * tensor.element_size()


TRAFFIC = Traffic()


def _integer(env: Mapping[str, str], key: str) -> int:
    try:
        return int(env[key])
    except ValueError:
        raise ConfigError(f"the launcher set {key}={env[key]!r}, not an integer; launch with torchrun or "
                          "srun") from None


def launch_environment(env: Mapping[str, str] | None = None) -> tuple[Ranks, dict[str, str]] | None:
    """The ranks a launcher started this process with, and the rendezvous variables to set; ``None`` when no
    launcher started more than one process (a plain ``train``, or ``srun`` with one task)."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" in env and "RANK" in env:  # torchrun (or a hand-made launch that sets the same variables)
        ranks = Ranks(_integer(env, "RANK"), _integer(env, "WORLD_SIZE"), _integer(env, "LOCAL_RANK")
                      if "LOCAL_RANK" in env else 0)
        rendezvous = {"MASTER_ADDR": env.get("MASTER_ADDR", "127.0.0.1"), "MASTER_PORT": env.get("MASTER_PORT",
                                                                                                   "29500")}
    elif "SLURM_PROCID" in env and "SLURM_STEP_ID" in env:  # a task of an srun step (a batch script has no step id)
        tasks = "SLURM_STEP_NUM_TASKS" if "SLURM_STEP_NUM_TASKS" in env else "SLURM_NTASKS"
        if _integer(env, tasks) <= 1:
            return None
        ranks = Ranks(_integer(env, "SLURM_PROCID"), _integer(env, tasks), _integer(env, "SLURM_LOCALID"))
        job = _integer(env, "SLURM_JOB_ID")
        rendezvous = {"MASTER_ADDR": env.get("MASTER_ADDR") or _first_node(env),
                      "MASTER_PORT": env.get("MASTER_PORT") or str(PORT_BASE + job % PORT_SPAN)}
    else:
        return None
    if not 0 <= ranks.rank < ranks.world:
        raise ConfigError(f"the launcher gave rank {ranks.rank} of {ranks.world} processes; relaunch with torchrun "
                          "or srun")
    return (ranks, rendezvous) if ranks.parallel else None


def _first_node(env: Mapping[str, str]) -> str:
    """The first host of the SLURM step (the rendezvous host), from ``scontrol show hostnames``."""
    nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST")
    if not nodes:
        return "127.0.0.1"
    try:
        names = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True,
                               timeout=30, check=True).stdout.split()
    except (OSError, subprocess.SubprocessError):
        names = []
    return names[0] if names else nodes.split(",")[0]


def initialise(mode: str, device: torch.device, env: Mapping[str, str] | None = None,
               timeout_s: float = 600.0) -> Ranks:
    """Join the launcher's process group for ``trainer.distributed`` = ``mode`` and return this process's ranks.

    ``off``: one process, whatever launched it. ``auto``: the launcher's group when there is one. ``on``: the
    launcher's group, refused in one line without one. Joining twice (several runs in one process) reuses it."""
    if mode not in MODES:
        raise ConfigError(f"trainer.distributed={mode} is not one of {', '.join(MODES)}")
    launched = launch_environment(env) if mode != "off" else None
    if launched is None:
        if mode == "on":
            raise ConfigError("trainer.distributed=on but no launcher started several processes; launch with "
                              "`torchrun --nproc_per_node=N train ...` or `srun --ntasks=N train ...`")
        return SINGLE
    ranks, rendezvous = launched
    if dist.is_initialized():
        if (dist.get_rank(), dist.get_world_size()) != (ranks.rank, ranks.world):
            raise ConfigError("a process group with other ranks is already running in this process")
        return ranks
    for key, value in rendezvous.items():
        os.environ.setdefault(key, value)
    dist.init_process_group(backend_for(device), rank=ranks.rank, world_size=ranks.world,
                            timeout=timedelta(seconds=timeout_s))
    atexit.register(_leave)
    return ranks


class CollectiveFailed(UserError):
    """A collective of the process group failed — a backend error or its timeout: another process stopped or hung
    (or, a bug, called a different collective). ``reason``: the backend's first sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the data-parallel process group failed ({reason}): another process stopped or hung, "
                         "see its log")
        self.reason = reason


def _collective(operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``operation(*args, **kwargs)``, a backend's failure raised as :class:`CollectiveFailed` (gloo raises a plain
    ``RuntimeError``, NCCL a ``DistBackendError``)."""
    try:
        return operation(*args, **kwargs)
    except RuntimeError as exc:
        raise CollectiveFailed(describe_failure(exc)) from exc


def describe_failure(exc: BaseException) -> str:
    """The first sentence of a backend's error (gloo and NCCL prefix theirs with a source location)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^\[[^\]]*\]\s*", "", text)
    return text.split(". ")[0].rstrip(".")


def backend_for(device: torch.device) -> str:
    """gloo for a CPU run; for a GPU run NCCL for the CUDA tensors and gloo beside it for the few CPU ones (the
    case counts, evaluation sums and stopping decisions, which NCCL alone would refuse)."""
    return "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def local_device(device: torch.device, ranks: Ranks) -> torch.device:
    """One GPU per process (the CPU is shared): see :func:`gpu_index`."""
    if device.type != "cuda" or not ranks.parallel:
        return device
    chosen = torch.device("cuda", gpu_index(ranks.local_rank, torch.cuda.device_count()))
    torch.cuda.set_device(chosen)
    return chosen


def gpu_index(local_rank: int, visible: int) -> int:
    """The GPU a process of a node takes: ``cuda:local_rank`` when it sees the node's GPUs (``torchrun``,
    ``srun --gres=gpu:N``), ``cuda:0`` when the launcher bound one GPU to it (``srun --gpus-per-task=1``: each
    task sees one); anything else would put two processes on one GPU, which NCCL refuses."""
    if local_rank < visible:
        return local_rank
    if visible == 1:
        return 0
    raise ConfigError(f"process {local_rank} of its node sees {visible} GPU(s); launch at most one process per "
                      "GPU (--ntasks-per-node ≤ GPUs, torchrun --nproc_per_node ≤ GPUs) or bind one GPU to each "
                      "(srun --gpus-per-task=1)")


def world() -> int:
    """Processes in the running group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def mean_(tensors: Sequence[Tensor], cases: int) -> None:
    """Turn every tensor from this rank's mean over its ``cases`` into the mean over the union of all ranks' cases,
    in place: t ← Σ_r n_r t_r / Σ_r n_r, one all-reduce for the lot (the counts ride along); nothing on one
    process. Shards may be unequal (a batch of 31 on 2 ranks: 16 and 15). A term every rank adds alike — the ℓ2
    prior — passes through unchanged, since its weights sum to one."""
    size = world()
    if size == 1 or not tensors:
        return
    groups: dict[tuple[torch.dtype, torch.device], list[Tensor]] = {}
    for tensor in tensors:
        groups.setdefault((tensor.dtype, tensor.device), []).append(tensor)
    for (dtype, device), members in groups.items():
        flat = torch.cat([*(t.reshape(-1) * cases for t in members), torch.tensor([cases], dtype=dtype,
                                                                                  device=device)])
        TRAFFIC.count(flat)
        _collective(dist.all_reduce, flat)
        flat = flat[:-1] / flat[-1]
        offset = 0
        for t in members:
            t.copy_(flat[offset: offset + t.numel()].view_as(t))
            offset += t.numel()


def place() -> tuple[int, int]:
    """(rank, world) of this process in the running group; (0, 1) without one."""
    return (dist.get_rank(), dist.get_world_size()) if world() > 1 else (0, 1)


def union_count(cases: int) -> int:
    """The number of cases of the union batch whose shard on this rank has ``cases``."""
    if world() == 1:
        return cases
    total = torch.tensor([cases], dtype=torch.int64)
    TRAFFIC.count(total)
    _collective(dist.all_reduce, total)
    return int(total)


def local_count(first: int) -> int:
    """How many of the union batch's first ``first`` cases this rank holds: with strided shards they are the
    first ``local_count(first)`` cases of its own shard (a method's statistics or curvature subset)."""
    rank, size = place()
    return len(range(rank, first, size))


def gather_cases(local: Tensor) -> Tensor:
    """The union of every rank's rows of a per-case tensor, in the union batch's order (rank r holds cases
    r, r + R, …); the tensor itself on one process. For draws that must not depend on the number of ranks —
    K-FAC's targets sampled from the model's predictive distribution draw at the union's shape, as one process
    would, and each rank keeps its own rows (:func:`own_cases`)."""
    _, size = place()
    if size == 1:
        return local
    counts = [torch.zeros(1, dtype=torch.int64) for _ in range(size)]
    _collective(dist.all_gather, counts, torch.tensor([local.shape[0]], dtype=torch.int64))
    sizes = [int(c) for c in counts]
    padded = torch.zeros((max(sizes), *local.shape[1:]), dtype=local.dtype, device=local.device)
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in range(size)]
    TRAFFIC.count(padded)
    _collective(dist.all_gather, parts, padded)
    index = torch.arange(sum(sizes), device=local.device)
    return torch.stack(parts)[index % size, index // size]


def draw_for_sequences(draw: Any, z: Tensor, mask: Tensor) -> Tensor:
    """``draw(z)`` — targets sampled from the model — at the union batch's shape, as one process draws them; this
    rank's rows returned. ``z`` holds the outputs at the scored positions ``mask`` (m, T) of this rank's sequences,
    in sequence-major order (``z_full[mask]``), so the union's z is rebuilt sequence by sequence (rank r holds
    sequences r, r + R, …) — one all-gather of the padded outputs, (m, T, d): for a word model that is the logits
    of every token, the price of draws that do not depend on the number of ranks."""
    if world() == 1:
        return draw(z)
    full = z.new_zeros((*mask.shape, *z.shape[1:]))
    full[mask] = z
    union_mask = gather_cases(mask.to(torch.uint8)).bool()
    drawn = draw(gather_cases(full)[union_mask])
    placed = drawn.new_zeros((*union_mask.shape, *drawn.shape[1:]))
    placed[union_mask] = drawn
    return own_cases(placed)[mask]


def own_cases(union: Tensor) -> Tensor:
    """This rank's rows of a union-ordered per-case tensor (the inverse of :func:`gather_cases`)."""
    rank, size = place()
    return union if size == 1 else union[rank::size]


def owners(costs: Sequence[float], size: int) -> list[int]:
    """The rank that computes each of a list of jobs: the costliest first, each to the least-loaded rank so far
    (ties to the lowest rank) — the same answer on every rank."""
    load = [0.0] * size
    owner = [0] * len(costs)
    for job in sorted(range(len(costs)), key=lambda j: (-costs[j], j)):
        owner[job] = min(range(size), key=lambda r: (load[r], r))
        load[owner[job]] += costs[job]
    return owner


def spread(jobs: Sequence[Job], compute: Callable[[list[Job]], list[list[Tensor]]],
           shapes: Callable[[Job], list[tuple[int, ...]]], costs: Sequence[float], dtype: torch.dtype,
           device: torch.device | str = "cpu") -> list[list[Tensor]]:
    """``compute(jobs)`` — a list of result tensors per job, of ``shapes(job)`` — with the jobs shared out over the
    ranks (:func:`owners` by ``costs``) and each rank's results broadcast to the others in ``dtype`` on ``device``
    (one broadcast per rank that owns a job): K-FAC's decompositions and solves spread by layer, as KAISA
    (Pauloski et al. 2021) assigns them. Every rank must know the same jobs (their shapes computable everywhere);
    the results are those of one process computing them all. On one process, ``compute(jobs)``."""
    rank, size = place()
    if size == 1:
        return compute(list(jobs))
    owner = owners(costs, size)
    mine = [i for i in range(len(jobs)) if owner[i] == rank]
    computed = dict(zip(mine, compute([jobs[i] for i in mine]) if mine else [], strict=True))
    results: list[list[Tensor]] = [[] for _ in jobs]
    for source in range(size):
        layout = [(i, shape) for i in range(len(jobs)) if owner[i] == source for shape in shapes(jobs[i])]
        if not layout:
            continue
        if source == rank:
            flat = torch.cat([t.reshape(-1).to(dtype) for i in mine for t in computed[i]])
        else:
            flat = torch.empty(sum(math.prod(shape) for _, shape in layout), dtype=dtype, device=device)
        TRAFFIC.count(flat)
        _collective(dist.broadcast, flat, src=source)
        offset = 0
        for i, shape in layout:
            n = math.prod(shape)
            results[i].append(flat[offset: offset + n].view(shape))
            offset += n
    return results


def my_share(cases: int) -> slice:
    """This rank's strided share of ``cases`` items (an evaluation set): every item on one process."""
    rank, size = place()
    return slice(rank, cases, size)


def totals(values: Sequence[float]) -> list[float]:
    """Each value summed over the ranks (float64; one all-reduce): an evaluation's error and loss sums."""
    if world() == 1:
        return list(values)
    buffer = torch.tensor(list(values), dtype=torch.float64)
    TRAFFIC.count(buffer)
    _collective(dist.all_reduce, buffer)
    return buffer.tolist()


def agree(values: Sequence[float]) -> list[float]:
    """The largest of each value over the ranks (the loop's stopping decisions: step time, a signal), so that
    every rank stops, evaluates and checkpoints at the same iteration."""
    if world() == 1:
        return list(values)
    buffer = torch.tensor(list(values), dtype=torch.float64)
    TRAFFIC.count(buffer)
    _collective(dist.all_reduce, buffer, op=dist.ReduceOp.MAX)
    return buffer.tolist()


def broadcast(value: Any) -> Any:
    """Rank 0's value of a picklable object, on every rank."""
    if world() == 1:
        return value
    box = [value]
    _collective(dist.broadcast_object_list, box, src=0)
    return box[0]


def barrier() -> None:
    if world() > 1:
        _collective(dist.barrier)
