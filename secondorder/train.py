"""The one trainer loop that drives every optimiser.

It owns what is common to all methods — device and seeds, budgets, evaluation of the paper's error on the
full train and test sets, the run directory (:mod:`secondorder.run_record`), checkpoints and resume,
divergence and signal handling, the progress bar — and asks the optimiser only for ``step``.

Resume (``trainer.resume``): ``false`` refuses a run directory that already holds a run (nothing is ever
overwritten); ``true`` continues from ``checkpoint.pt`` and fails if there is none; ``auto`` continues when a
checkpoint exists and starts afresh otherwise (SLURM requeue). A resumed run on the same hardware produces
the same metrics as an uninterrupted one: model, optimiser, sampler and RNG states are all checkpointed.

Callbacks (:mod:`secondorder.callbacks`) observe the loop after each step, after each evaluation and at the end;
their state is checkpointed with the run. Without callbacks the loop is exactly the plain one.

Data-parallel runs (``trainer.distributed``, :mod:`secondorder.distributed`): under ``torchrun`` or ``srun`` with
several tasks every rank trains on its shard of the union batch; rank 0 alone owns the run directory (lock,
config, log, checkpoints, summary) and hands a resumed run's checkpoint to the others; the ranks agree after every
step on its time and on any signal, so they stop, evaluate and checkpoint at the same iteration.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from secondorder import distributed
from secondorder.averaging import IterateAverage
from secondorder.callbacks import Callback
from secondorder.checkpoint import (
    PREVIOUS_NAME,
    checkpoint_files,
    load_checkpoint,
    restore_previous,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from secondorder.config import RunConfig
from secondorder.errors import ConfigError, ProcessGroupFailed, RunDiverged, RunInterrupted, UserError
from secondorder.folder_lock import FolderLock
from secondorder.models.autoencoder import DeepAutoencoder
from secondorder.models.normalization import uses_batch_statistics
from secondorder.optim import OPTIMIZERS, StepCosts, build_optimizer
from secondorder.pretraining.rbm import pretrain_autoencoder
from secondorder.problems import build_problem
from secondorder.run_record import (
    MetricsLog,
    clean_number,
    provenance,
    utc_now,
    write_json,
)

log = logging.getLogger(__name__)

# Config sections that may change when a run is resumed (budgets, logging, device); anything else must match.
RESUMABLE_CHANGES = ("trainer", "run_dir", "out_root", "data_dir")
SAMPLER_SEED_OFFSET = 1_000_003  # keeps the batch order independent of the model-initialisation stream
PRETRAIN_SEED_OFFSET = 2_000_003


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={name!r}: CUDA is not available here; use trainer.device=cpu")
    return torch.device(name)


def compile_model(model: torch.nn.Module, mode: str) -> None:
    """``trainer.compile``: compile the model's forward in place (``nn.Module.compile``: parameter names, state
    dicts, module hooks and ``functional_call`` stay as they are, so every optimiser and checkpoint works
    unchanged). ``false`` leaves it eager; ``true`` is torch.compile's ``default`` mode; ``reduce-overhead`` adds
    CUDA graphs where shapes are static. The first steps pay the compilation (seconds to a minute on a CPU), and a
    new batch shape compiles once more (then shapes are treated as dynamic)."""
    if mode == "false":
        return
    model.compile(mode="default" if mode == "true" else mode)


def set_tf32(enabled: bool) -> None:
    """TensorFloat-32 for CUDA matmuls and cuDNN convolutions (``trainer.tf32``); both off unless asked for —
    PyTorch leaves cuDNN's on by default, which would silently change convolution results from float32's."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


class StopFlag:
    """Set by SIGTERM/SIGINT; the loop checkpoints and stops after the current step."""

    def __init__(self) -> None:
        self.signal_number: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_number is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.signal_number = signum


@contextmanager
def stop_on_signals(flag: StopFlag):
    previous = {sig: signal.signal(sig, flag) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _config_differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    keys = sorted(set(saved) | set(current))
    out = []
    for key in keys:
        full = f"{prefix}{key}"
        if not prefix and key in RESUMABLE_CHANGES:
            continue
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_differences(a, b, prefix=f"{full}.")
        elif a != b:
            out.append(f"{full} ({a!r} in the run, {b!r} now)")
    return out


class Trainer:
    """Builds the problem and optimiser from a validated config and runs them in ``run_dir``, calling
    ``callbacks`` (:class:`~secondorder.callbacks.Callback`, unique names) at the points of the loop."""

    def __init__(self, run: RunConfig, run_dir: Path, resolved_config: dict[str, Any],
                 callbacks: Sequence[Callback] = ()) -> None:
        names = [callback.name for callback in callbacks]
        if len(set(names)) != len(names):
            raise ConfigError(f"callback names must be unique (they key the checkpoint); got {names}")
        self.callbacks = list(callbacks)
        self.run = run
        self.tcfg = run.trainer
        self.run_dir = run_dir
        self.resolved_config = resolved_config
        device = resolve_device(self.tcfg.device)
        self.ranks = distributed.initialise(self.tcfg.distributed, device)
        self.device = distributed.local_device(device, self.ranks)
        if self.ranks.parallel:  # Hydra names each process's folder by its own clock: rank 0's is the run's
            self.run_dir = Path(distributed.broadcast(str(run_dir)))
        self.dtype = torch.float64 if self.tcfg.dtype == "float64" else torch.float32

        set_tf32(self.tcfg.tf32)
        torch.manual_seed(run.seed)
        self.problem = build_problem(run, self.device, self.dtype)
        if self.tcfg.compile != "false" and not OPTIMIZERS[run.optimizer.name].compile_ok:
            compiled = ", ".join(name for name, method in OPTIMIZERS.items() if method.compile_ok)
            raise ConfigError(f"trainer.compile={self.tcfg.compile} is not available for optimizer="
                              f"{run.optimizer.name}: it reads layer activations through module hooks, which a "
                              f"compiled forward skips; use trainer.compile=false (compiled runs: {compiled})")
        compile_model(self.problem.model, self.tcfg.compile)
        self.optimizer = build_optimizer(run.optimizer, self.problem)
        self.sampler = self.problem.make_sampler(seed=run.seed + SAMPLER_SEED_OFFSET)
        if self.ranks.parallel:
            self._check_parallel()
            self.sampler = self.problem.shard_sampler(self.sampler, self.ranks)
        self.average = (IterateAverage(self.problem.model, self.tcfg.polyak_decay, self.tcfg.polyak_start)
                        if self.tcfg.polyak_decay is not None else None)

        self.iteration = 0
        self.wall_time = 0.0
        self.costs = StepCosts()
        self.loss_sum, self.loss_count = 0.0, 0
        self.best: dict[str, Any] = {}
        self.last_eval: dict[str, float] = {}
        self.started_at = utc_now()
        self.provenance = provenance(self.device)  # once: the code that runs is the code at start
        self.pretraining: dict[str, Any] | None = None
        self.metrics: MetricsLog | None = None
        self.metrics_resume: dict[str, Any] | None = None  # the log's record in the checkpoint resumed from
        self.initial_loss: float | None = None  # the objective at the first evaluation (divergence test)

    # ------------------------------------------------------------------ resume and checkpoints
    def prepare_run_dir(self) -> bool:
        """Apply the resume policy (``trainer.resume``); return True when continuing from a checkpoint.

        ``false`` refuses a directory that holds a run; ``true`` continues its checkpoint; ``auto`` continues one if
        there is one and starts afresh otherwise; ``previous`` continues from ``checkpoint.prev.pt`` (after a damaged
        ``checkpoint.pt``, which is kept aside); ``restart`` moves the old run's files to ``discarded-<time>/`` and
        starts afresh. Nothing is ever deleted."""
        checkpoint = self._resume_point()
        if checkpoint is not None:
            self._load(checkpoint)
        return checkpoint is not None

    def _resume_point(self) -> dict[str, Any] | None:
        """The checkpoint :meth:`prepare_run_dir`'s policy continues from, or ``None`` for a fresh start."""
        existing = self._run_files()
        mode = self.tcfg.resume
        if mode == "false":
            if existing:
                raise ConfigError(
                    f"{self.run_dir} already holds a run; pass trainer.resume=true to continue it, "
                    "trainer.resume=restart to start afresh (its files are moved aside), or choose another run_dir"
                )
            return None
        if mode == "restart":
            self._discard(existing)
            return None
        checkpoint = self._previous_checkpoint() if mode == "previous" else load_checkpoint(self.run_dir)
        if checkpoint is None:
            if mode == "true":
                raise ConfigError(f"trainer.resume=true but {self.run_dir} has no checkpoint.pt to resume from")
            return None  # auto: nothing to continue; rows logged before a first checkpoint are written again
        differences = _config_differences(checkpoint["config"], self.resolved_config)
        if differences:
            more = f" and {len(differences) - 1} more key(s)" if len(differences) > 1 else ""
            raise ConfigError(
                f"cannot resume {self.run_dir}: the config differs in {differences[0]}{more}; "
                "resume with the run's own settings (only trainer.* may change)"
            )
        return checkpoint

    def _prepare_everywhere(self) -> bool:
        """:meth:`prepare_run_dir` on rank 0, whose verdict — refusal, fresh start or the checkpoint to continue —
        every other rank receives (they never read the run directory, so it need not be on a shared disk)."""
        if not self.ranks.parallel:
            return self.prepare_run_dir()
        if self.ranks.main:
            try:
                checkpoint = self._resume_point()
            except UserError as exc:
                distributed.broadcast(("refused", str(exc)))
                raise
            distributed.broadcast(("start", checkpoint))
        else:
            verdict, checkpoint = distributed.broadcast(None)
            if verdict == "refused":
                raise ConfigError(f"rank 0 refused the run: {checkpoint}")
        if checkpoint is not None:
            self._load(checkpoint)
        return checkpoint is not None

    def _check_parallel(self) -> None:
        """One-line refusals of what a data-parallel run cannot yet reproduce exactly."""
        method = OPTIMIZERS[self.run.optimizer.name]
        if not method.distributed_ok:
            supported = ", ".join(name for name, m in OPTIMIZERS.items() if m.distributed_ok)
            raise ConfigError(f"optimizer={self.run.optimizer.name} does not run data-parallel yet (distributed: "
                              f"{supported}); launch it as one process or pass trainer.distributed=off")
        if uses_batch_statistics(self.problem.model):
            raise ConfigError("a batch-normalised model depends on the statistics of each shard, not the union "
                              "batch's, so it does not run data-parallel; launch it as one process or pass "
                              "trainer.distributed=off")
        if self.callbacks:
            raise ConfigError("callbacks (experiment measurements) do not run data-parallel; launch the experiment "
                              "as one process")

    def _run_files(self) -> list[Path]:
        names = ("metrics.csv", "summary.json", "config.yaml")
        return [self.run_dir / n for n in names if (self.run_dir / n).exists()] + checkpoint_files(self.run_dir)

    def _discard(self, files: list[Path]) -> None:
        """Move a run's files into ``discarded-<time>/`` of its directory (``trainer.resume=restart``)."""
        if not files:
            return
        folder = self.run_dir / f"discarded-{utc_now().replace(':', '-')}"
        folder.mkdir(exist_ok=True)
        for path in files:
            os.replace(path, folder / path.name)
        log.warning("moved the previous run's files to %s", folder)

    def _previous_checkpoint(self) -> dict[str, Any]:
        """``trainer.resume=previous``: continue from ``checkpoint.prev.pt`` (:func:`restore_previous`)."""
        previous = restore_previous(self.run_dir, utc_now().replace(":", "-"))
        if previous is None:
            raise ConfigError(f"trainer.resume=previous but {self.run_dir / PREVIOUS_NAME} is missing or damaged; "
                              "start afresh with trainer.resume=restart")
        log.warning("continuing from the previous checkpoint (iteration %d)", previous["iteration"])
        return previous

    def _state(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "wall_time": self.wall_time,
            "costs": self.costs.as_dict(),
            "loss_sum": self.loss_sum,
            "loss_count": self.loss_count,
            "best": self.best,
            "last_eval": self.last_eval,
            "started_at": self.started_at,
            "pretraining": self.pretraining,
            "model": self.problem.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "sampler": self.sampler.state_dict(),
            "rng": rng_state(),
            "average": self.average.state_dict() if self.average is not None else None,
            "config": self.resolved_config,
            "callbacks": {callback.name: callback.state_dict() for callback in self.callbacks},
            "metrics": self.metrics.record() if self.metrics is not None else None,
            "initial_loss": self.initial_loss,
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.iteration = state["iteration"]
        self.wall_time = state["wall_time"]
        self.costs = StepCosts(**state["costs"])
        self.loss_sum, self.loss_count = state["loss_sum"], state["loss_count"]
        self.best, self.last_eval = state["best"], state["last_eval"]
        self.started_at = state["started_at"]
        self.pretraining = state.get("pretraining")
        self.metrics_resume = state.get("metrics") or {"iteration": state["iteration"]}
        self.initial_loss = state.get("initial_loss")
        self.problem.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.sampler.load_state_dict(state["sampler"])
        restore_rng_state(state["rng"])
        if self.average is not None and state.get("average") is not None:
            self.average.load_state_dict(state["average"])
        saved = state.get("callbacks", {})
        for callback in self.callbacks:
            if callback.name not in saved:
                raise ConfigError(f"cannot resume {self.run_dir} with callback {callback.name!r}: the run was "
                                  "started without it; start a new run_dir")
            callback.load_state_dict(saved[callback.name])

    def checkpoint(self) -> None:
        state = self._state()  # on every rank: a language model's sampler gathers every rank's carried state
        if self.ranks.main:
            save_checkpoint(self.run_dir, state)

    def _append(self, row: dict[str, Any]) -> None:
        """A metrics.csv row (rank 0 keeps the log)."""
        if self.metrics is not None:
            self.metrics.append(row)

    # ------------------------------------------------------------------ budgets and logging
    def budget_left(self) -> bool:
        t = self.tcfg
        return (
            (t.max_steps is None or self.iteration < t.max_steps)
            and (t.max_time_s is None or self.wall_time < t.max_time_s)
            and (t.max_epochs is None or self.sampler.epochs < t.max_epochs)
            and not self.target_reached()
        )

    def target_reached(self) -> bool:
        """``trainer.target_test_error`` / ``target_train_error``: the last evaluation's error is at or below
        either target set (success criteria such as the RNN problems' < 1 % wrong sequences, thesis §4.13;
        time-to-target runs)."""
        def error(split: str) -> float:  # the raw or the averaged iterate's, whichever is lower (as ``best``)
            values = [self.last_eval.get(f"{split}_error", math.nan), self.last_eval.get(f"{split}_error_avg",
                                                                                            math.nan)]
            return min((v for v in values if not math.isnan(v)), default=math.inf)

        return any(error(split) <= target for split, target in (("test", self.tcfg.target_test_error),
                                                                 ("train", self.tcfg.target_train_error))
                   if target is not None)

    def evaluate(self) -> dict[str, float]:
        """The problem's evaluation at θ and, with iterate averaging, at θ̄ (``*_avg`` columns); ``best`` keeps
        the lowest of the two, as the papers report (thesis §6.13)."""
        result = self.problem.evaluate(self.tcfg.eval_batch_size)
        if self.average is not None:
            averaged = {}
            if self.average.active:
                with self.average.swapped_in():
                    averaged = self.problem.evaluate(self.tcfg.eval_batch_size)
            result.update({f"{k}_avg": averaged.get(k, math.nan) for k in result})
        self.last_eval = result
        for key in ("train_error", "test_error"):
            for column in (key, f"{key}_avg"):
                value = result.get(column, math.nan)
                if math.isfinite(value) and (key not in self.best or value < self.best[key]["value"]):
                    self.best[key] = {"value": value, "iteration": self.iteration, "wall_time_s": self.wall_time,
                                      "averaged": column.endswith("_avg")}
        return result

    def row(self, stats: dict[str, float], evaluation: dict[str, float] | None) -> dict[str, Any]:
        loss = self.loss_sum / self.loss_count if self.loss_count else None
        self.loss_sum, self.loss_count = 0.0, 0
        return {
            "iteration": self.iteration,
            "wall_time_s": self.wall_time,
            "examples_seen": self.sampler.examples_seen,
            "epochs": self.sampler.epochs,
            **self.costs.as_dict(),
            "loss": loss,
            **(evaluation or {}),
            **stats,
        }

    def summary(self, status: str, message: str = "") -> dict[str, Any]:
        t = self.tcfg
        return {
            "status": status,
            "message": message,
            "iteration": self.iteration,
            "examples_seen": self.sampler.examples_seen,
            "epochs": self.sampler.epochs,
            "wall_time_s": self.wall_time,
            "costs": self.costs.as_dict(),
            "final": {k: clean_number(v) for k, v in self.last_eval.items()},
            "best": self.best,
            "optimizer": self.run.optimizer.name,
            "dataset": self.run.dataset.name,
            "data": self.problem.describe_data(),
            "model": {"name": self.run.model.name,
                      "parameters": sum(p.numel() for p in self.problem.model.parameters())},
            "budget": {"max_steps": t.max_steps, "max_time_s": t.max_time_s, "max_epochs": t.max_epochs,
                       "target_test_error": t.target_test_error, "target_train_error": t.target_train_error},
            "target_reached": self.target_reached(),
            "seed": self.run.seed,
            "pretraining": self.pretraining,
            "dtype": t.dtype,
            "tf32": t.tf32,
            "compile": t.compile,
            "processes": self.ranks.world,
            # this launch's collectives and the bytes rank 0 put into them (a resumed run counts from its resume)
            "communication": ({"collectives": distributed.TRAFFIC.collectives,
                               "payload_bytes": distributed.TRAFFIC.payload_bytes}
                              if self.ranks.parallel else None),
            "peak_gpu_memory_bytes": (torch.cuda.max_memory_allocated(self.device)
                                      if self.device.type == "cuda" else None),
            "started_at": self.started_at,
            "updated_at": utc_now(),
            "provenance": self.provenance,
        }

    def write_summary(self, status: str, message: str = "") -> None:
        if self.ranks.main:
            write_json(self.run_dir / "summary.json", self.summary(status, message))

    # ------------------------------------------------------------------ callbacks
    @contextmanager
    def _isolated_rng(self) -> Iterator[None]:
        """Hooks draw from a forked global generator: a measurement never changes the run's trajectory."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            yield

    def _notify(self, hook: str, *args: Any) -> None:
        """Call ``hook`` (``at_start``, ``after_step``, ``after_evaluation``, ``at_end``) on every callback."""
        if not self.callbacks:
            return
        with self._isolated_rng():
            for callback in self.callbacks:
                getattr(callback, hook)(self, *args)

    def _end(self, status: str, message: str = "") -> dict[str, Any]:
        """Write the final ``summary.json`` and hand it to the callbacks' ``at_end``."""
        summary = self.summary(status, message)
        if self.ranks.main:
            write_json(self.run_dir / "summary.json", summary)
        self._notify("at_end", summary)
        return summary

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict[str, Any]:
        """Run (or continue) the run. The summary's status always ends consistent with the checkpoint and the log:
        ``completed``, ``diverged``, ``interrupted`` (a signal, at any point after the run directory was accepted)
        or ``failed`` (an unexpected error, whose traceback still reaches the caller). The run directory is
        locked for the whole run (:class:`~secondorder.folder_lock.FolderLock`): a second process on it is refused
        with a one-line error and changes nothing. In a data-parallel run only rank 0 touches the directory."""
        if not self.ranks.main:
            return self._fit()
        with ExitStack() as stack:
            try:
                try:
                    self.run_dir.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise ConfigError(f"cannot create the run directory {self.run_dir} ({exc.strerror}); choose "
                                      "another run_dir or out_root") from None
                stack.enter_context(FolderLock(self.run_dir, "training run"))
            except UserError as exc:
                if self.ranks.parallel:  # the other ranks wait for rank 0's verdict on the run directory
                    distributed.broadcast(("refused", str(exc)))
                raise
            return self._fit()

    def _fit(self) -> dict[str, Any]:
        resumed = self._prepare_everywhere()
        if self.ranks.main:
            OmegaConf.save(OmegaConf.create(self.resolved_config), self.run_dir / "config.yaml")
            eval_columns = ("train_error", "test_error", "train_loss", "test_loss",
                            *self.problem.extra_eval_columns)
            averaged = tuple(f"{c}_avg" for c in eval_columns) if self.average is not None else ()
            self.metrics = MetricsLog(self.run_dir / "metrics.csv",
                                      (*self.problem.extra_eval_columns, *averaged, *self.optimizer.stat_names),
                                      resume=self.metrics_resume if resumed else None)
        log.info("run directory: %s", self.run_dir)
        log.info("data: %s; model: %s, %d parameters; optimiser: %s; device: %s%s",
                 self.problem.data_label, self.run.model.name,
                 sum(p.numel() for p in self.problem.model.parameters()), self.run.optimizer.name,
                 self.device, f"; rank {self.ranks.rank} of {self.ranks.world}" if self.ranks.parallel else "")
        if resumed:
            log.info("resumed at iteration %d", self.iteration)
        self.write_summary("running")
        flag = StopFlag()
        progress = self._progress_bar()
        try:
            with stop_on_signals(flag):
                if not resumed:
                    self._start(flag)
                else:
                    self._notify("at_start", resumed)
                return self._loop(flag, progress)
        except (RunDiverged, RunInterrupted):
            raise  # their summaries are written
        except distributed.CollectiveFailed as exc:  # another rank died or hung: this one cannot go on
            message = (f"the data-parallel process group failed at iteration {self.iteration} ({exc.reason}): "
                       "another process stopped or hung, see its log; the last checkpoint is intact: relaunch the "
                       "same command with trainer.resume=true")
            self.write_summary("failed", message)
            raise ProcessGroupFailed(message) from None
        except UserError as exc:  # found only now (e.g. a data file that fails mid-run): the run did not finish
            self.write_summary("failed", str(exc))
            raise
        except KeyboardInterrupt:
            self.write_summary("interrupted", f"stopped at once by a second Ctrl-C at iteration {self.iteration}; "
                                              f"the last checkpoint is intact: continue with `train ... run_dir="
                                              f"{self.run_dir} trainer.resume=true`")
            raise
        except Exception as exc:
            self.write_summary("failed", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            raise
        finally:
            progress.close()

    def _start(self, flag: StopFlag) -> None:
        """A fresh run's beginning: pre-training, the first evaluation and its row; a signal that arrived meanwhile
        stops the run here, with a checkpoint at iteration 0."""
        self._pretrain()
        self._notify("at_start", False)
        evaluation = self.evaluate()
        self._append(self.row({}, evaluation))
        loss = evaluation.get("train_loss", math.nan)
        self.initial_loss = loss if math.isfinite(loss) else None
        self._notify("after_evaluation", evaluation)
        stop = self._agreed_stop(flag)
        if stop is not None:
            self._interrupted(stop)

    def _agreed_stop(self, flag: StopFlag, agreed: float | None = None) -> int | None:
        """The signal to stop on here, the same on every rank: in a data-parallel run the largest signal any rank
        had caught by the agreement (``agreed``, from the step's :func:`~secondorder.distributed.agree`, or one
        taken now) — never the live flag, which a signal may set on one rank just after the others read theirs
        (that rank would checkpoint alone and the collectives would deadlock); later signals count at the next
        point. On one process, the flag."""
        if not self.ranks.parallel:
            return flag.signal_number
        if agreed is None:
            agreed = distributed.agree([flag.signal_number or 0])[0]
        return int(agreed) or None

    def _pretrain(self) -> None:
        """Greedy RBM pre-training (H&S 2006) before the first evaluation; its time counts as training time
        (thesis Fig. 4.5 includes it)."""
        cfg = self.run.pretrain
        if cfg is None or cfg.name == "none":
            return
        model = self.problem.model
        if not isinstance(model, DeepAutoencoder):
            raise ConfigError("pretrain=rbm needs an autoencoder model (the RBM stack is unrolled into it)")
        log.info("pre-training %d RBMs (%s)", len(model.encoder_dims) - 1, cfg.name)
        info = pretrain_autoencoder(model, self.problem.data.train_inputs, cfg,
                                    gaussian_visible=self.problem.loss.name == "squared_error",
                                    seed=self.run.seed + PRETRAIN_SEED_OFFSET)
        self.wall_time += distributed.agree([info["pretrain_time_s"]])[0]
        self.pretraining = info
        log.info("pre-training took %.1f s", info["pretrain_time_s"])

    def _progress_bar(self) -> tqdm:
        enabled = {"true": True, "false": False}.get(self.tcfg.progress, sys.stderr.isatty()) and self.ranks.main
        return tqdm(total=self.tcfg.max_steps, initial=self.iteration, disable=not enabled,
                    desc=f"{self.run.optimizer.name} on {self.run.dataset.name}", dynamic_ncols=True)

    def _loop(self, flag: StopFlag, progress: tqdm) -> dict[str, Any]:
        t = self.tcfg
        stats: dict[str, float] = {}
        while self.budget_left():
            before = self.wall_time
            start = time.perf_counter()
            result = self.optimizer.step(self.iteration, self.sampler)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            elapsed = time.perf_counter() - start
            signalled = None
            if self.ranks.parallel:  # one clock and one signal for all ranks: the slowest rank's step time
                elapsed, signalled = distributed.agree([elapsed, flag.signal_number or 0])
            self.wall_time += elapsed
            self.iteration += 1
            if self.average is not None:
                self.average.update(self.iteration)
            self.costs.add(result.costs)
            self.loss_sum += result.loss
            self.loss_count += 1
            stats = result.stats
            progress.set_postfix_str(self._progress_text(result.loss), refresh=False)
            progress.update(1)

            if not math.isfinite(result.loss):
                self._diverged(stats, f"objective {result.loss} on the training batch")
            if self._exploded(result.loss):
                self._diverged(stats, f"objective {result.loss:.4g} on the training batch, over "
                                      f"trainer.divergence_factor={t.divergence_factor:g} × the initial "
                                      f"{self.initial_loss:.4g}")
            self._notify("after_step", result)
            evaluation = None
            if (self.iteration % t.eval_every == 0 or self._eval_time_passed(before)
                    or not self.budget_left()):
                evaluation = self.evaluate()
                if not math.isfinite(evaluation["train_error"]):
                    self._append(self.row(stats, evaluation))
                    self._diverged(stats, "non-finite training error", log_row=False)
                self._notify("after_evaluation", evaluation)
            if evaluation is not None or self.iteration % t.log_every == 0:
                self._append(self.row(stats, evaluation))
            if self.iteration % t.checkpoint_every == 0 and self.budget_left():
                self.checkpoint()
            stop = self._agreed_stop(flag, signalled)
            if stop is not None:
                self._interrupted(stop)

        self.checkpoint()
        summary = self._end("completed")
        log.info("completed %d iterations in %.1f s of training; final train error %.4g, test error %.4g",
                 self.iteration, self.wall_time, self.last_eval.get("train_error", math.nan),
                 self.last_eval.get("test_error", math.nan))
        log.info("run directory: %s", self.run_dir)
        return summary

    def _progress_text(self, loss: float) -> str:
        """The progress bar's postfix: the mini-batch objective and the last evaluation's errors."""
        text = f"loss={loss:.4g}"
        for key in ("train_error", "test_error"):
            if key in self.last_eval:
                text += f" {key}={self.last_eval[key]:.4g}"
        return text

    def _exploded(self, loss: float) -> bool:
        """Whether the mini-batch objective exceeds ``trainer.divergence_factor`` × its value at the first
        evaluation (a finite blow-up, e.g. SGD with a far too large learning rate); off for objectives that are not
        positive at the start (mixture densities)."""
        factor = self.tcfg.divergence_factor
        if factor is None:
            return False
        if self.initial_loss is None and math.isfinite(loss):
            self.initial_loss = loss  # no train_loss in the evaluation: the first mini-batch's objective
        return self.initial_loss is not None and self.initial_loss > 0 and loss > factor * self.initial_loss

    def _eval_time_passed(self, before: float) -> bool:
        """Whether this step's training time crossed a multiple of ``trainer.eval_every_s`` (stateless, so a resumed
        run evaluates where the uninterrupted one would have, up to timing)."""
        every = self.tcfg.eval_every_s
        return every is not None and math.floor(self.wall_time / every) > math.floor(before / every)

    def _diverged(self, stats: dict[str, float], what: str, log_row: bool = True) -> None:
        if log_row:
            self._append(self.row(stats, None))
        message = (
            f"run diverged at iteration {self.iteration} ({what}); metrics kept in {self.run_dir}, last good "
            "checkpoint untouched; try a smaller learning rate or more damping"
        )
        self._end("diverged", message)
        raise RunDiverged(message)

    def _interrupted(self, signal_number: int) -> None:
        self.checkpoint()
        name = signal.Signals(signal_number).name
        message = (
            f"interrupted by {name} at iteration {self.iteration}; checkpoint written; continue with "
            f"`train ... run_dir={self.run_dir} trainer.resume=true`"
        )
        self._end("interrupted", message)
        raise RunInterrupted(message, signal_number)


def run_training(run: RunConfig, run_dir: Path, resolved_config: dict[str, Any],
                 callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Build and run one training job; returns its summary (raises :class:`UserError` subclasses)."""
    return Trainer(run, run_dir, resolved_config, callbacks).fit()


__all__ = ["Trainer", "run_training"]
