"""Language modelling with truncated back-propagation through time (Zaremba et al. 2014 setup).

Training batches are consecutive windows of ``bptt`` tokens from ``batch_size`` parallel streams, the state
carried from one window to the next (:class:`~secondorder.problems.samplers.StreamSampler`). The objective is
the mean cross-entropy per token (nats). Evaluation runs each split the same way with ``eval_batch_size``
streams and reports perplexity exp(mean CE) for words or bits per character mean CE / ln 2 for characters —
on the training text (``eval_train_tokens`` limits it to a prefix, to keep evaluation cheap), the validation
text (``valid_*`` columns) and the test text (``eval_tokens`` limits those two to a prefix — for reduced runs, and
labelled in the run's data description).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from secondorder.data.sequences import SequenceBatch, TokenCorpus
from secondorder.distributed import Ranks, my_share, totals
from secondorder.losses import MatchingLoss
from secondorder.problems.base import ObjectiveConfig, Problem
from secondorder.problems.samplers import Sampler, StreamSampler, batchify


def detach_state(state: Any) -> Any:
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, (list, tuple)):
        return type(state)(detach_state(s) for s in state)
    return state


class LanguageModelProblem(Problem):
    extra_eval_columns = ("valid_error", "valid_loss")

    def __init__(self, model: nn.Module, loss: MatchingLoss, corpus: TokenCorpus, objective: ObjectiveConfig,
                 device: torch.device, bptt: int, batch_size: int, eval_batch_size: int,
                 eval_train_tokens: int | None, metric: str, eval_tokens: int | None = None) -> None:
        super().__init__(model, loss, objective)
        self.corpus = corpus
        self.bptt, self.batch_size, self.eval_batch_size = bptt, batch_size, eval_batch_size
        self.metric = metric
        train = corpus.train if eval_train_tokens is None else corpus.train[:eval_train_tokens]
        self.eval_tokens = eval_tokens
        valid, test = (corpus.valid, corpus.test) if eval_tokens is None else (corpus.valid[:eval_tokens],
                                                                               corpus.test[:eval_tokens])
        self.streams = {"train": corpus.train.to(device), "train_eval": train.to(device),
                        "valid": valid.to(device), "test": test.to(device)}

    def outputs(self, batch: SequenceBatch, params: dict[str, Tensor] | None = None):
        logits, final = self.call_model(params, batch.inputs, batch.state)
        if params is None:
            batch.final_state = detach_state(final)
        return logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1)

    def cases(self, batch: SequenceBatch) -> int:
        return int(batch.targets.numel())

    def _advance(self, batch: SequenceBatch) -> Any:
        with torch.no_grad():
            _, final = self.model(batch.inputs, batch.state)
        return detach_state(final)

    def make_sampler(self, seed: int) -> StreamSampler:
        return StreamSampler(self.streams["train"], self.batch_size, self.bptt, self._advance)

    def shard_sampler(self, sampler: Sampler, ranks: Ranks) -> Sampler:
        """Data-parallel runs: each rank trains its own streams of the union batch and carries their state
        (:meth:`StreamSampler.shard`)."""
        if not isinstance(sampler, StreamSampler):
            return super().shard_sampler(sampler, ranks)
        return sampler.shard(ranks)

    def error_from_ce(self, ce: float) -> float:
        return ce / math.log(2) if self.metric == "bits_per_char" else math.exp(min(ce, 700.0))

    @torch.no_grad()
    def mean_cross_entropy(self, stream: Tensor) -> float:
        """The mean cross-entropy per token of a text read as ``eval_batch_size`` streams in windows of ``bptt``;
        in a data-parallel run each rank reads its share of the streams and the sums are added over the ranks."""
        grid = batchify(stream, self.eval_batch_size)[my_share(self.eval_batch_size)]
        total, count, state = 0.0, 0, None
        for start in range(0, grid.shape[1] - 1 if grid.shape[0] else 0, self.bptt):
            length = min(self.bptt, grid.shape[1] - 1 - start)
            logits, state = self.model(grid[:, start : start + length], state)
            targets = grid[:, start + 1 : start + 1 + length]
            total += float(self.loss.per_case(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)).sum())
            count += targets.numel()
        total, count = totals([total, count])
        return total / count

    def evaluate(self, batch_size: int) -> dict[str, float]:
        was_training = self.model.training
        self.model.eval()
        result = {}
        for split, column in (("train_eval", "train"), ("valid", "valid"), ("test", "test")):
            ce = self.mean_cross_entropy(self.streams[split])
            result[f"{column}_error"], result[f"{column}_loss"] = self.error_from_ce(ce), ce
        self.model.train(was_training)
        return result

    def describe_data(self) -> dict[str, object]:
        description = self.corpus.describe()
        if self.eval_tokens is not None:
            description["evaluation"] = f"valid/test perplexity on their first {self.eval_tokens} tokens only"
        return description

    @property
    def data_label(self) -> str:
        return self.corpus.label
