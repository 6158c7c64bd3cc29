"""Problems: model + matching loss + data + ℓ2 prior, one class per kind of data.

:func:`build_problem` loads the dataset, builds the model for it and picks the problem class from the data:
fixed tensors → :class:`SupervisedProblem`; a token corpus → :class:`LanguageModelProblem`; a generated
sequence task → :class:`SequenceTaskProblem`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from secondorder.data import load_dataset
from secondorder.data.sequences import GeneratedSequences, TokenCorpus
from secondorder.losses import get_loss
from secondorder.metrics import get_metric
from secondorder.models import build_model
from secondorder.problems.base import ObjectiveConfig, Problem
from secondorder.problems.language_model import LanguageModelProblem
from secondorder.problems.samplers import EpochSampler, Sampler, StreamSampler, TaskSampler
from secondorder.problems.sequence_task import SequenceTaskProblem
from secondorder.problems.supervised import SupervisedProblem


def build_problem(run: Any, device: torch.device, dtype: torch.dtype) -> Problem:
    """The problem a validated :class:`~secondorder.config.RunConfig` describes, on ``device``."""
    data = load_dataset(run.dataset, Path(run.data_dir).expanduser())
    model = build_model(run.model, seed=run.seed, data=data).to(device, dtype)
    if isinstance(data, TokenCorpus):
        d = run.dataset
        problem: Problem = LanguageModelProblem(
            model, get_loss(d.loss), data, run.objective, device, d.bptt, d.batch_size, d.eval_batch_size,
            d.eval_train_tokens, d.metric, d.eval_tokens,
        )
    elif isinstance(data, GeneratedSequences):
        problem = SequenceTaskProblem(model, get_loss(data.task.loss), data, run.objective, device, dtype,
                                      seed=run.seed)
    else:
        problem = SupervisedProblem(model, get_loss(run.dataset.loss), data.to(device, dtype),
                                    get_metric(run.dataset.metric), run.objective)
    problem.check_compatible()
    return problem


__all__ = [
    "EpochSampler", "LanguageModelProblem", "ObjectiveConfig", "Problem", "Sampler", "SequenceTaskProblem",
    "StreamSampler", "SupervisedProblem", "TaskSampler", "build_problem",
]
