"""Feed-forward problems on a fixed training set: autoencoders and classifiers (one output per case)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from secondorder.data.splits import DataSplits
from secondorder.distributed import my_share, totals
from secondorder.errors import ConfigError
from secondorder.losses import MatchingLoss
from secondorder.problems.base import ObjectiveConfig, Problem
from secondorder.problems.samplers import EpochSampler


class SupervisedProblem(Problem):
    """Batches are (inputs, targets) pairs; the error is the dataset's metric on the full train and test sets."""

    def __init__(self, model: nn.Module, loss: MatchingLoss, data: DataSplits,
                 metric: Callable[[Tensor, Tensor], Tensor], objective: ObjectiveConfig) -> None:
        super().__init__(model, loss, objective)
        self.data = data
        self.metric = metric

    def outputs(self, batch: tuple[Tensor, Tensor], params: dict[str, Tensor] | None = None):
        inputs, targets = batch
        return self.call_model(params, inputs), targets

    def cases(self, batch: tuple[Tensor, Tensor]) -> int:
        return int(batch[0].shape[0])

    def case_slices(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, ...]:
        return batch

    def case_outputs(self, params: dict[str, Tensor], x: Tensor, y: Tensor):
        z = self.call_model(params, x[None])
        return z, y[None], torch.ones(1, dtype=z.dtype, device=z.device)

    def subset(self, batch: tuple[Tensor, Tensor], index: Tensor) -> tuple[Tensor, Tensor]:
        index = index.to(batch[0].device)
        return batch[0][index], batch[1][index]

    def make_sampler(self, seed: int) -> EpochSampler:
        return EpochSampler(self.data.train_inputs, self.data.train_targets, seed)

    @torch.no_grad()
    def _evaluate_split(self, inputs: Tensor, targets: Tensor, batch_size: int) -> dict[str, float]:
        """Error and loss means over a split; in a data-parallel run each rank sums its strided share and the sums
        are added over the ranks."""
        n = inputs.shape[0]
        share = my_share(n)
        inputs, targets = inputs[share], targets[share]
        error_sum = torch.zeros((), dtype=torch.float64, device=inputs.device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=inputs.device)
        for start in range(0, inputs.shape[0], batch_size):
            x, y = inputs[start : start + batch_size], targets[start : start + batch_size]
            z = self.model(x)
            error_sum += self.metric(self.loss.predict(z), y).sum(dtype=torch.float64)
            loss_sum += self.loss.per_case(z, y).sum(dtype=torch.float64)
        errors, losses = totals([float(error_sum), float(loss_sum)])
        return {"error": errors / n, "loss": losses / n}

    def evaluate(self, batch_size: int) -> dict[str, float]:
        was_training = self.model.training
        self.model.eval()
        train = self._evaluate_split(self.data.train_inputs, self.data.train_targets, batch_size)
        test = self._evaluate_split(self.data.test_inputs, self.data.test_targets, batch_size)
        self.model.train(was_training)
        return {"train_error": train["error"], "test_error": test["error"],
                "train_loss": train["loss"], "test_loss": test["loss"]}

    def describe_data(self) -> dict[str, object]:
        return self.data.describe()

    @property
    def data_label(self) -> str:
        return self.data.label

    def check_compatible(self) -> None:
        probe = self.data.train_inputs[:2]
        was_training = self.model.training
        self.model.eval()  # a probe must not move batch-norm running statistics
        with torch.no_grad():
            try:
                out = self.model(probe)
            except (RuntimeError, TypeError) as exc:
                raise ConfigError(
                    f"model does not accept {self.data.name} inputs of shape {tuple(probe.shape[1:])}: "
                    f"{str(exc).splitlines()[0]}; pick a matching model=..."
                ) from None
            finally:
                self.model.train(was_training)
        classes = self.data.num_classes
        if classes is not None and out.shape[1:] != (classes,):
            raise ConfigError(
                f"model outputs shape {tuple(out.shape[1:])} but {self.data.name} has {classes} classes; "
                "pick a matching model=..."
            )
        targets = self.data.train_targets[:2]
        if targets.is_floating_point() and out.shape != self.loss.output_shape(targets.shape):
            raise ConfigError(
                f"model outputs shape {tuple(out.shape[1:])} but {self.data.name} targets have shape "
                f"{tuple(targets.shape[1:])}; pick a matching model=..."
            )
