"""Generated sequence tasks (RNN pathological problems, DNC copy): fresh training sequences, fixed test set.

The loss of a sequence is summed over its scored (masked) time steps and averaged over sequences. The
error is the fraction of sequences the task's success criterion marks wrong (thesis §4.13: a run has solved
a problem when fewer than 1 % of the test sequences are wrong); it is measured on the fixed test set and on
a fixed "train" sample of the same size drawn from an independent stream.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from secondorder.data.sequences import GeneratedSequences, SequenceBatch
from secondorder.distributed import my_share, totals
from secondorder.losses import MatchingLoss, SigmoidBCE, SquaredError
from secondorder.problems.base import ObjectiveConfig, Problem
from secondorder.problems.samplers import TaskSampler

TRAIN_EVAL_SEED_OFFSET = 7_919


class SequenceTaskProblem(Problem):
    def __init__(self, model: nn.Module, loss: MatchingLoss, data: GeneratedSequences,
                 objective: ObjectiveConfig, device: torch.device, dtype: torch.dtype, seed: int) -> None:
        super().__init__(model, loss, objective)
        self.data = data
        self.device, self.dtype = device, dtype
        self.test = data.test.to(device, dtype)
        n_test = int(data.test.inputs.shape[0])
        generator = torch.Generator().manual_seed(seed + TRAIN_EVAL_SEED_OFFSET)
        self.train_eval = data.task.generate(n_test, generator).to(device, dtype)
        self._bce, self._squared = SigmoidBCE(), SquaredError()

    def outputs(self, batch: SequenceBatch, params: dict[str, Tensor] | None = None):
        z, _ = self.call_model(params, batch.inputs)
        return z[batch.mask], batch.targets[batch.mask]

    def cases(self, batch: SequenceBatch) -> int:
        return int(batch.inputs.shape[0])

    def case_slices(self, batch: SequenceBatch) -> tuple[Tensor, ...]:
        return batch.inputs, batch.targets, batch.mask

    def case_outputs(self, params: dict[str, Tensor], inputs: Tensor, targets: Tensor, mask: Tensor):
        z, _ = self.call_model(params, inputs[None])
        return z[0], targets, mask.to(z.dtype)

    def subset(self, batch: SequenceBatch, index: Tensor) -> SequenceBatch:
        index = index.to(batch.inputs.device)
        return SequenceBatch(batch.inputs[index], batch.targets[index], batch.mask[index])

    def structural_outputs(self, batch: SequenceBatch, params: dict[str, Tensor]):
        """Hidden units at every step: logistic units' pre-activations under cross-entropy (the thesis's
        §4.6.4, footnote 5), otherwise the activities under squared error."""
        _, _, hidden = self.call_model(params, batch.inputs, None, True)
        pre, post = hidden
        if self.model.cfg.activation == "sigmoid":
            return pre.reshape(-1, pre.shape[-1]), self._bce
        return post.reshape(-1, post.shape[-1]), self._squared

    def make_sampler(self, seed: int) -> TaskSampler:
        return TaskSampler(self.data.task.generate, seed, self.device, self.dtype,
                           nominal_size=int(self.data.test.inputs.shape[0]), whole=self.data.task.whole_set())

    @torch.no_grad()
    def _evaluate_batch(self, batch: SequenceBatch, chunk: int) -> dict[str, float]:
        wrong, loss_sum = 0, 0.0
        n = int(batch.inputs.shape[0])
        share = my_share(n)  # this rank's strided share of the sequences in a data-parallel run
        inputs, targets, mask = batch.inputs[share], batch.targets[share], batch.mask[share]
        for start in range(0, int(inputs.shape[0]), chunk):
            part = SequenceBatch(inputs[start : start + chunk], targets[start : start + chunk],
                                 mask[start : start + chunk])
            outputs, _ = self.model(part.inputs)
            wrong += int((~self.data.task.correct(outputs, part)).sum())
            loss_sum += float(self.loss.per_case(outputs[part.mask], part.targets[part.mask]).sum())
        wrong, loss_sum = totals([wrong, loss_sum])
        return {"error": wrong / n, "loss": loss_sum / n}

    def evaluate(self, batch_size: int) -> dict[str, float]:
        train = self._evaluate_batch(self.train_eval, batch_size)
        test = self._evaluate_batch(self.test, batch_size)
        return {"train_error": train["error"], "test_error": test["error"],
                "train_loss": train["loss"], "test_loss": test["loss"]}

    def describe_data(self) -> dict[str, object]:
        return self.data.describe()

    @property
    def data_label(self) -> str:
        return self.data.label
