"""Trainer callbacks: measurements that run inside the one trainer loop (:mod:`secondorder.train`).

The split follows AlgoPerf's workload / submission separation: the trainer owns the run — problem, optimiser,
training sampler, budgets, evaluation, checkpoints and resume — and a callback only *observes* it at fixed points
of the loop. A measurement (the KFRA alignment of Botev et al. 2017, App. G.2; a search trial's final loss) is
thereby timed, budgeted, checkpointed and resumed like any run, without a training loop of its own.

Hooks, in the order the trainer calls them::

    at_start(trainer, resumed)        once per ``fit``: after pre-training, before the iteration-0 evaluation
                                      (fresh run), or after the checkpoint is restored (resumed run)
    after_evaluation(trainer, evaluation)   after every evaluation, the iteration-0 one included
    after_step(trainer, result)       after every optimiser step with a finite loss (``trainer.iteration``
                                      already counts it), before that iteration's evaluation and checkpoint
    at_end(trainer, summary)          once when the run ends: completed, diverged or interrupted
                                      (``summary["status"]``)

Contract. A callback must not change the run it observes: it may read ``trainer.problem``, ``trainer.optimizer``,
``trainer.iteration``, ``trainer.run`` and ``trainer.run_dir``, but not step the optimiser, change the
parameters or draw from ``trainer.sampler``; batches it needs come from a sampler of its own. The trainer runs
every hook inside :func:`torch.random.fork_rng`, so draws from the global generator inside a hook leave the
training trajectory unchanged. Time spent in hooks is not training time (``wall_time_s`` excludes it).

State. ``state_dict()`` returns tensors and plain values only (lists, dicts, numbers, strings); the trainer saves
it in every checkpoint under the callback's ``name`` and hands it back to ``load_state_dict`` on resume, before
``at_start``. A callback whose measurements are written to a file rewrites that file from its restored state, so
rows recorded after the last checkpoint of an interrupted run are dropped and then measured again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from secondorder.optim.base import StepResult

if TYPE_CHECKING:  # the annotation only; train.py imports this module
    from secondorder.train import Trainer


class Callback:
    """Base class with no-op hooks; subclasses override the hooks they need and set a unique ``name``."""

    name: str = "callback"

    def at_start(self, trainer: Trainer, resumed: bool) -> None:
        """The run is ready to train (iteration ``trainer.iteration``; 0 unless ``resumed``)."""

    def after_step(self, trainer: Trainer, result: StepResult) -> None:
        """Optimiser step number ``trainer.iteration`` is done; ``result`` holds its loss, costs and stats."""

    def after_evaluation(self, trainer: Trainer, evaluation: dict[str, float]) -> None:
        """The full-set evaluation at ``trainer.iteration`` (train/test error and loss, ``*_avg`` columns)."""

    def at_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        """The run ended; ``summary`` is what ``summary.json`` now holds."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to continue this callback exactly (tensors and plain values)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (called before :meth:`at_start` on resume)."""


__all__ = ["Callback"]
