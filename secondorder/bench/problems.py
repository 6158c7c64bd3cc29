"""The models the benchmarks time, on random data of the right shape (timings do not depend on the values).

* Autoencoders of thesis Table 4.2 with their matching losses: ``curves`` (784-400-200-100-50-25-6, logistic
  outputs + cross-entropy), ``mnist`` (784-1000-500-250-30, same loss), ``faces`` (625-2000-1000-500-30, linear
  outputs + squared error); inputs uniform in [0, 1].
* The K-FAC-RNN paper's Penn TreeBank LSTMs (``conf/model/ptb_*.yaml``): ``ptb_word`` (vocabulary 10 000, two
  layers of 650, truncated BPTT 35) and ``ptb_char`` (50 symbols, two layers of 128, BPTT 100); tokens uniform over
  the vocabulary. A batch of K cases is ⌈K / BPTT⌉ windows: K counts predicted tokens, as the objective does.
* ``rnn_addition`` — the thesis's HF-RNN setting (``experiment=hf_rnn``): the 100-unit sparse-init RNN on the
  addition task at T = 100; K counts sequences.
* ``tiny`` / ``tiny_lm`` / ``tiny_rnn`` — small stand-ins for the tests of the benchmark scripts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from secondorder.composition import compose_run
from secondorder.data.sequences import SequenceBatch, TokenCorpus
from secondorder.data.splits import DataSplits
from secondorder.losses import get_loss
from secondorder.metrics import reconstruction_sse
from secondorder.models import AutoencoderConfig, build_model
from secondorder.models.lstm import LSTMConfig, LSTMLanguageModel, initialise_uniform_
from secondorder.problems import LanguageModelProblem, ObjectiveConfig, SupervisedProblem, build_problem

AUTOENCODERS = {
    "curves": ([784, 400, 200, 100, 50, 25, 6], "sigmoid_bce"),
    "mnist": ([784, 1000, 500, 250, 30], "sigmoid_bce"),
    "faces": ([625, 2000, 1000, 500, 30], "squared_error"),
    "tiny": ([64, 16, 4], "sigmoid_bce"),
}


@dataclass(frozen=True)
class LanguageModelShape:
    vocabulary: int
    width: int
    bptt: int


LANGUAGE_MODELS = {
    "ptb_word": LanguageModelShape(10_000, 650, 35),
    "ptb_char": LanguageModelShape(50, 128, 100),
    "tiny_lm": LanguageModelShape(20, 8, 5),
}
RNN_TASKS = {"rnn_addition": ["experiment=hf_rnn", "dataset=addition", "dataset.T=100"],
             "tiny_rnn": ["experiment=hf_rnn", "dataset=addition", "dataset.T=10", "model.hidden_dim=5"]}
MODELS = (*AUTOENCODERS, *LANGUAGE_MODELS, *RNN_TASKS)


def is_language_model(name: str) -> bool:
    return name in LANGUAGE_MODELS


def bench_problem(name: str, cases: int, device: torch.device, l2: float = 0.0, pool: int = 4) -> Any:
    """The model ``name`` with ``pool`` × ``cases`` random training cases (so samplers can draw distinct
    batches of ``cases``), seed 0."""
    generator = torch.Generator().manual_seed(0)
    if name in RNN_TASKS:  # generated task data: built exactly as ``train`` builds it
        run = compose_run(RNN_TASKS[name])
        run.objective.l2 = l2
        return build_problem(run, device, torch.float32)
    if name in AUTOENCODERS:
        dims, loss_name = AUTOENCODERS[name]
        model = build_model(AutoencoderConfig(encoder_dims=dims), seed=0).to(device)
        x = torch.rand(pool * cases, dims[0], generator=generator).to(device)
        data = DataSplits(name, x, x, x, x, "random", "random inputs", True)
        return SupervisedProblem(model, get_loss(loss_name), data, reconstruction_sse, ObjectiveConfig(l2=l2))
    shape = LANGUAGE_MODELS[name]
    windows = max(1, math.ceil(cases / shape.bptt))
    model = LSTMLanguageModel(shape.vocabulary, LSTMConfig(embedding_dim=shape.width, hidden_dim=shape.width))
    initialise_uniform_(model, 0.05, generator)
    model = model.to(device)
    stream = torch.randint(0, shape.vocabulary, (pool * windows * shape.bptt + 1,), generator=generator)
    corpus = TokenCorpus(name, stream, stream[: 2 * shape.bptt + 1], stream[: 2 * shape.bptt + 1],
                         [str(i) for i in range(shape.vocabulary)], "word", "random", "random tokens", True)
    return LanguageModelProblem(model, get_loss("softmax_ce"), corpus, ObjectiveConfig(l2=l2), device,
                                bptt=shape.bptt, batch_size=windows, eval_batch_size=1, eval_train_tokens=None,
                                metric="perplexity")


def bench_batch(problem: Any, name: str, cases: int, device: torch.device) -> Any:
    """One batch of ``cases`` (autoencoders: rows; language models: ⌈cases / BPTT⌉ windows of BPTT tokens)."""
    if name in AUTOENCODERS:
        x = problem.data.train_inputs[:cases]
        return x, x
    if name in RNN_TASKS:
        return problem.make_sampler(seed=0).next(cases)
    shape = LANGUAGE_MODELS[name]
    windows = max(1, math.ceil(cases / shape.bptt))
    tokens = problem.corpus.train[: windows * shape.bptt + 1].to(device)
    inputs, targets = tokens[:-1].view(windows, shape.bptt), tokens[1:].view(windows, shape.bptt)
    return SequenceBatch(inputs, targets, torch.ones_like(inputs, dtype=torch.bool))


def batch_size_for(name: str, cases: int) -> int:
    """The sampler's batch size giving ``cases`` cases: rows, or windows for a language model."""
    return max(1, math.ceil(cases / LANGUAGE_MODELS[name].bptt)) if is_language_model(name) else cases


def gradient_evaluation(problem: Any, batch: Any) -> dict[str, torch.Tensor]:
    """The unit every benchmark divides by: one forward + backward of the mean objective on ``batch``;
    returns the gradients."""
    for p in problem.model.parameters():
        p.grad = None
    problem.objective(batch).backward()
    return {n: p.grad for n, p in problem.model.named_parameters()}
