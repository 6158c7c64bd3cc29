"""Tests for the pathological long-term-dependency problems (thesis §4.13) and the DNC copy task.

Expected targets are recomputed here from the generated *inputs*, with formulas written out in the tests, so a
generator that mislays a marker, a position or a target fails.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from secondorder.data.pathological import (
    CONTINUOUS_TOLERANCE,
    DNC_COPY_DEFAULT_T,
    TASKS,
    MemorizationTask,
    SequenceBatch,
    SequenceTask,
    make_task,
)
from secondorder.errors import ConfigError, UserError

# name -> (input_dim, output_dim, loss, T_total as a function of T)
SPEC = {
    "addition": (2, 1, "squared_error", lambda T: T + T // 10),
    "multiplication": (2, 1, "squared_error", lambda T: T + T // 10),
    "xor": (2, 1, "sigmoid_bce", lambda T: T + T // 10),
    "temporal_order_2bit": (6, 4, "softmax_ce", lambda T: T + T // 10),
    "temporal_order_3bit": (6, 8, "softmax_ce", lambda T: T + T // 10),
    "random_permutation": (100, 100, "softmax_ce", lambda T: T),
    "memorization_5bit": (4, 3, "softmax_ce", lambda T: T + 5),
    "memorization_20bit": (7, 6, "softmax_ce", lambda T: T + 10),
    "dnc_copy": (8, 6, "sigmoid_bce", lambda T: T),
}
# a few feasible T per task, including the smallest
T_VALUES = {
    "addition": [10, 37, 100],
    "multiplication": [10, 50],
    "xor": [10, 64],
    "temporal_order_2bit": [10, 23, 100],
    "temporal_order_3bit": [10, 17, 100],
    "random_permutation": [2, 30],
    "memorization_5bit": [5, 30],
    "memorization_20bit": [10, 30],
    "dnc_copy": [6, DNC_COPY_DEFAULT_T, 40],
}
DEFAULT_T = {name: values[-1] for name, values in T_VALUES.items()}


def generate(task: SequenceTask, n: int, seed: int) -> SequenceBatch:
    return task.generate(n, torch.Generator().manual_seed(seed))


def perfect_outputs(task: SequenceTask, batch: SequenceBatch) -> torch.Tensor:
    """Network pre-activations that solve every sequence exactly."""
    if task.loss == "squared_error":
        return batch.targets.clone()
    if task.loss == "softmax_ce":
        return torch.nn.functional.one_hot(batch.targets, task.output_dim).float() * 20.0 - 10.0
    return (batch.targets * 2.0 - 1.0) * 10.0


def first_masked_step(batch: SequenceBatch, row: int) -> int:
    return int(batch.mask[row].nonzero()[0, 0])


# ------------------------------------------------------------------------------------------------------------
# API, shapes, determinism


def test_task_names() -> None:
    assert set(TASKS) == set(SPEC)
    assert len(TASKS) == 9


@pytest.mark.parametrize("name", list(SPEC))
def test_shapes_and_dtypes(name: str) -> None:
    input_dim, output_dim, loss, total = SPEC[name]
    for T in T_VALUES[name]:
        task = make_task(name, T)
        assert (task.name, task.T, task.input_dim, task.output_dim, task.loss) == (name, T, input_dim, output_dim, loss)
        assert task.total_length == total(T)
        batch = generate(task, 7, seed=0)
        assert isinstance(batch, SequenceBatch) and len(batch) == 7
        assert batch.inputs.shape == (7, total(T), input_dim) and batch.inputs.dtype == torch.float32
        assert batch.mask.shape == (7, total(T)) and batch.mask.dtype == torch.bool
        if loss == "softmax_ce":
            assert batch.targets.shape == (7, total(T)) and batch.targets.dtype == torch.int64
            assert int(batch.targets.min()) >= 0 and int(batch.targets.max()) < output_dim
        else:
            assert batch.targets.shape == (7, total(T), output_dim) and batch.targets.dtype == torch.float32
        assert batch.mask.any(dim=1).all()
        assert torch.isfinite(batch.inputs).all()
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.T = 3  # type: ignore[misc]
    empty = generate(task, 0, seed=0)
    assert empty.inputs.shape == (0, task.total_length, input_dim)


@pytest.mark.parametrize("name", list(SPEC))
def test_deterministic_given_generator_and_only_uses_it(name: str) -> None:
    task = make_task(name, DEFAULT_T[name])
    torch.manual_seed(1)
    a = generate(task, 64, seed=123)
    torch.manual_seed(2)  # the global RNG must not matter
    b = generate(task, 64, seed=123)
    c = generate(task, 64, seed=124)
    for field in ("inputs", "targets", "mask"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.inputs, c.inputs)
    g = torch.Generator().manual_seed(5)
    first, second = task.generate(16, g), task.generate(16, g)
    assert not torch.equal(first.inputs, second.inputs)  # the generator state advances


# ------------------------------------------------------------------------------------------------------------
# addition, multiplication, XOR


def parse_marked_pair(batch: SequenceBatch) -> dict[str, torch.Tensor]:
    """Recover lengths, marked positions and marked values from the inputs alone."""
    values, marker = batch.inputs[..., 0], batch.inputs[..., 1]
    n, T_total = marker.shape
    plus = (marker == 1).nonzero()
    minus = (marker == -1).nonzero()
    assert plus.shape[0] == 2 * n and minus.shape[0] == 2 * n  # exactly two of each per sequence
    assert torch.equal(plus[:, 0], torch.arange(n).repeat_interleave(2))
    assert torch.equal(minus[:, 0], torch.arange(n).repeat_interleave(2))
    p = plus[:, 1].view(n, 2)
    ends = minus[:, 1].view(n, 2)
    assert (ends[:, 0] == 0).all()  # start marker
    lengths = ends[:, 1] + 1  # end marker at the last step
    assert set(torch.unique(marker).tolist()) <= {-1.0, 0.0, 1.0}
    rows = torch.arange(n)
    padding = torch.arange(T_total).unsqueeze(0) >= lengths.unsqueeze(1)
    assert (batch.inputs[padding] == 0).all()
    return {"p1": p[:, 0], "p2": p[:, 1], "x1": values[rows, p[:, 0]], "x2": values[rows, p[:, 1]],
            "lengths": lengths, "values": values, "valid": ~padding}


def expected_marked_pair_target(name: str, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    if name == "addition":
        return 0.5 + (x1 + x2) / 4.0  # [HS97] Exp. 4 scaling
    if name == "multiplication":
        return x1 * x2
    return (x1.round() + x2.round()) % 2  # XOR of two bits


@pytest.mark.parametrize("name", ["addition", "multiplication", "xor"])
def test_marked_pair_targets_and_positions(name: str) -> None:
    T = 50
    task = make_task(name, T)
    batch = generate(task, 2000, seed=3)
    parsed = parse_marked_pair(batch)
    rows = torch.arange(len(batch))
    last = parsed["lengths"] - 1

    # the only masked step is the sequence's last step, and the target sits there
    expected_mask = torch.zeros_like(batch.mask)
    expected_mask[rows, last] = True
    assert torch.equal(batch.mask, expected_mask)
    expected = expected_marked_pair_target(name, parsed["x1"], parsed["x2"])
    torch.testing.assert_close(batch.targets[rows, last, 0], expected, rtol=0, atol=1e-6)
    assert (batch.targets[~batch.mask] == 0).all()

    # documented ranges, each end reached over many samples
    for key, (lo, hi) in {"p1": (1, T // 10), "p2": (T // 10 + 1, T // 2 - 1), "lengths": (T, T + T // 10)}.items():
        values = parsed[key]
        assert int(values.min()) == lo and int(values.max()) == hi, key
    assert ((last - parsed["p2"]) >= T / 2).all()  # minimal time lag T/2 ([HS97])

    values = parsed["values"][parsed["valid"]]
    if name == "addition":
        assert values.min() >= -1 and values.max() <= 1 and values.min() < -0.99 and values.max() > 0.99
        assert batch.targets[batch.mask].min() >= 0 and batch.targets[batch.mask].max() <= 1
    elif name == "multiplication":
        assert values.min() >= 0 and values.max() <= 1 and values.max() > 0.99
    else:
        assert set(torch.unique(values).tolist()) == {0.0, 1.0}
        assert set(torch.unique(batch.targets[batch.mask]).tolist()) == {0.0, 1.0}


# ------------------------------------------------------------------------------------------------------------
# temporal order


@pytest.mark.parametrize(
    ("name", "windows"),
    [
        ("temporal_order_2bit", [(10, 20), (50, 60)]),  # [HS97] Exp. 6a at T = 100
        ("temporal_order_3bit", [(10, 20), (33, 43), (66, 76)]),  # [HS97] Exp. 6b
    ],
)
def test_temporal_order_targets_and_positions(name: str, windows: list[tuple[int, int]]) -> None:
    T, k = 100, len(windows)
    task = make_task(name, T)
    batch = generate(task, 2000, seed=4)
    n, T_total, _ = batch.inputs.shape

    # inputs: a one-hot prefix of length L, all-zero padding after it
    row_sums = batch.inputs.sum(dim=-1)
    assert set(torch.unique(row_sums).tolist()) <= {0.0, 1.0}
    lengths = (row_sums == 1).sum(dim=1)
    valid = torch.arange(T_total).unsqueeze(0) < lengths.unsqueeze(1)
    assert torch.equal(row_sums == 1, valid)
    assert int(lengths.min()) == T and int(lengths.max()) == T + T // 10

    symbols = batch.inputs.argmax(dim=-1) + 1  # symbol k is channel k-1
    special = (symbols <= 2) & valid
    assert (special.sum(dim=1) == k).all()
    assert set(torch.unique(symbols[valid & ~special]).tolist()) == {3, 4, 5, 6}
    positions = special.nonzero()[:, 1].view(n, k)
    specials = symbols[special].view(n, k)
    for j, (lo, hi) in enumerate(windows):
        assert int(positions[:, j].min()) == lo and int(positions[:, j].max()) == hi

    # class of the ordered tuple: (1,1)->0, (1,2)->1, (2,1)->2, (2,2)->3 (and likewise for 3 symbols)
    class_of = {combo: c for c, combo in enumerate(itertools.product((1, 2), repeat=k))}
    expected = torch.tensor([class_of[tuple(row)] for row in specials.tolist()])
    rows = torch.arange(n)
    assert torch.equal(batch.targets[rows, lengths - 1], expected)
    assert set(expected.tolist()) == set(range(2**k))
    expected_mask = torch.zeros_like(batch.mask)
    expected_mask[rows, lengths - 1] = True
    assert torch.equal(batch.mask, expected_mask)


# ------------------------------------------------------------------------------------------------------------
# random permutation


def test_random_permutation_targets() -> None:
    T = 30
    task = make_task("random_permutation", T)
    batch = generate(task, 2000, seed=5)
    assert (batch.inputs.sum(dim=-1) == 1).all()
    symbols = batch.inputs.argmax(dim=-1) + 1
    first = symbols[:, 0]
    assert set(torch.unique(first).tolist()) == {1, 2}
    rest = symbols[:, 1:]
    assert int(rest.min()) == 3 and int(rest.max()) == 100
    next_symbol = batch.targets + 1
    assert torch.equal(next_symbol[:, :-1], symbols[:, 1:])  # target = next input symbol
    assert torch.equal(next_symbol[:, -1], first)  # the last symbol equals the first
    assert batch.mask.all()


# ------------------------------------------------------------------------------------------------------------
# noiseless memorization


@pytest.mark.parametrize(("name", "m", "K"), [("memorization_5bit", 5, 2), ("memorization_20bit", 10, 5)])
def test_memorization_targets(name: str, m: int, K: int) -> None:
    T = 20
    task = make_task(name, T)
    batch = generate(task, 2000, seed=6)
    assert (batch.inputs.sum(dim=-1) == 1).all()
    symbols = batch.inputs.argmax(dim=-1)
    data = symbols[:, :m]
    assert int(data.max()) == K - 1 and int(data.min()) == 0
    blank, signal = K, K + 1
    tail = symbols[:, m:]
    is_signal = tail == signal
    assert (is_signal.sum(dim=1) == 1).all()
    assert (is_signal.nonzero()[:, 1] + m == task.total_length - m).all()  # the m-th-last step
    assert (tail[~is_signal] == blank).all()
    assert task.total_length - m == T  # T constant inputs after the data: every time lag is T

    assert (batch.targets[:, :T] == blank).all()
    assert torch.equal(batch.targets[:, T:], data)  # the last m targets are the original symbols
    assert batch.mask.all()


def test_memorization_5bit_has_32_sequences() -> None:
    task = make_task("memorization_5bit", 12)
    assert isinstance(task, MemorizationTask) and task.n_distinct == 32
    batch = generate(task, 2000, seed=7)
    assert len({tuple(row) for row in batch.inputs.argmax(dim=-1)[:, :5].tolist()}) == 32
    everything = task.all_sequences()
    data = everything.inputs.argmax(dim=-1)[:, :5]
    assert len(everything) == 32 and len({tuple(row) for row in data.tolist()}) == 32
    assert torch.equal(everything.targets[:, -5:], data)
    assert task.correct(perfect_outputs(task, everything), everything).all()
    with pytest.raises(ConfigError):
        make_task("memorization_20bit", 12).all_sequences()


# ------------------------------------------------------------------------------------------------------------
# DNC copy


@pytest.mark.parametrize("T", [6, DNC_COPY_DEFAULT_T, 40])
def test_dnc_copy_recall_equals_presented(T: int) -> None:
    W = 6
    task = make_task("dnc_copy", T)
    batch = generate(task, 400, seed=8)
    bits, end_a, end_b = batch.inputs[..., :W], batch.inputs[..., W], batch.inputs[..., W + 1]
    assert set(torch.unique(batch.inputs).tolist()) <= {0.0, 1.0}
    assert (end_a.sum(dim=1) == 1).all() and (end_b.sum(dim=1) == 1).all()
    k = end_a.argmax(dim=1)
    m = T // 2
    assert (end_b.argmax(dim=1) == m).all()
    assert int(k.min()) == 1 and int(k.max()) == m - 2
    recall_steps = torch.arange(T) > m
    assert torch.equal(batch.mask, recall_steps.expand_as(batch.mask))
    assert int(batch.mask[0].sum()) == T // 2 - 1
    assert (batch.inputs[:, recall_steps] == 0).all()
    for row in range(len(batch)):
        kk = int(k[row])
        presented = torch.cat([bits[row, :kk], bits[row, kk + 1 : m]])  # A, then B, skipping the flag
        assert presented.shape == (m - 1, W)
        assert torch.equal(batch.targets[row, recall_steps], presented)
        assert (batch.targets[row, ~recall_steps] == 0).all()
    assert 0.4 < float(batch.targets[batch.mask].mean()) < 0.6


# ------------------------------------------------------------------------------------------------------------
# success criterion


@pytest.mark.parametrize("name", list(SPEC))
def test_correct_on_perfect_outputs(name: str) -> None:
    task = make_task(name, DEFAULT_T[name])
    batch = generate(task, 50, seed=9)
    result = task.correct(perfect_outputs(task, batch), batch)
    assert result.shape == (50,) and result.dtype == torch.bool and result.all()


@pytest.mark.parametrize("name", ["addition", "multiplication"])
def test_correct_continuous_tolerance(name: str) -> None:
    assert CONTINUOUS_TOLERANCE == 0.04
    task = make_task(name, 40)
    batch = generate(task, 10, seed=10)
    t = first_masked_step(batch, 3)
    for delta, ok in [(0.05, False), (-0.05, False), (0.03, True), (-0.03, True), (0.0405, False), (-0.0395, True)]:
        outputs = perfect_outputs(task, batch)
        outputs[3, t, 0] += delta
        result = task.correct(outputs, batch)
        assert bool(result[3]) is ok, delta
        assert result[torch.arange(10) != 3].all()
    outputs = perfect_outputs(task, batch)
    unmasked = int((~batch.mask[3]).nonzero()[0, 0])
    outputs[3, unmasked, 0] += 5.0  # outside the mask: irrelevant
    assert task.correct(outputs, batch).all()
    outputs[3, t, 0] = float("nan")
    assert not task.correct(outputs, batch)[3]


@pytest.mark.parametrize(
    "name", ["temporal_order_2bit", "temporal_order_3bit", "memorization_5bit", "memorization_20bit"]
)
def test_correct_symbolic_wrong_argmax(name: str) -> None:
    task = make_task(name, DEFAULT_T[name])
    batch = generate(task, 10, seed=11)
    t = int(batch.mask[2].nonzero()[-1, 0])  # last masked step
    outputs = perfect_outputs(task, batch)
    wrong_class = (int(batch.targets[2, t]) + 1) % task.output_dim
    outputs[2, t, wrong_class] = 50.0
    result = task.correct(outputs, batch)
    assert not result[2] and result[torch.arange(10) != 2].all()
    outputs = perfect_outputs(task, batch)
    outputs[2, t, int(batch.targets[2, t])] = 9.0  # still the argmax: fine
    assert task.correct(outputs, batch).all()


def test_correct_random_permutation_only_last_step() -> None:
    task = make_task("random_permutation", 20)
    batch = generate(task, 10, seed=12)
    outputs = perfect_outputs(task, batch)
    outputs[4, 0, (int(batch.targets[4, 0]) + 1) % 100] = 50.0  # wrong, but not at the last step
    outputs[5, 10, (int(batch.targets[5, 10]) + 1) % 100] = 50.0
    assert task.correct(outputs, batch).all()
    outputs[6, -1, (int(batch.targets[6, -1]) + 1) % 100] = 50.0  # wrong at the last step
    result = task.correct(outputs, batch)
    assert not result[6] and result[torch.arange(10) != 6].all()


@pytest.mark.parametrize("name", ["xor", "dnc_copy"])
def test_correct_bits(name: str) -> None:
    task = make_task(name, DEFAULT_T[name])
    batch = generate(task, 10, seed=13)
    t = first_masked_step(batch, 1)
    outputs = perfect_outputs(task, batch)
    outputs[1, t, -1] *= -1  # flip one bit's sign at a masked step
    result = task.correct(outputs, batch)
    assert not result[1] and result[torch.arange(10) != 1].all()
    outputs = perfect_outputs(task, batch)
    outputs[1, t, -1] *= 0.01  # same sign, low confidence: still right
    unmasked = int((~batch.mask[1]).nonzero()[0, 0])
    outputs[1, unmasked] *= -1
    assert task.correct(outputs, batch).all()
    # NaN where the target bit is 0: "NaN > 0" is False, so only the finiteness check catches it
    row, step, bit = (batch.mask.unsqueeze(-1) & (batch.targets == 0)).nonzero()[0].tolist()
    outputs = perfect_outputs(task, batch)
    outputs[row, step, bit] = float("nan")
    assert not task.correct(outputs, batch)[row]


def test_correct_rejects_wrong_shape() -> None:
    task = make_task("addition", 20)
    batch = generate(task, 4, seed=0)
    with pytest.raises(ValueError, match="shape"):
        task.correct(torch.zeros(4, task.total_length, 2), batch)


# ------------------------------------------------------------------------------------------------------------
# errors


def test_unknown_task_name() -> None:
    with pytest.raises(ConfigError) as info:
        make_task("adding", 100)
    message = str(info.value)
    assert "\n" not in message and "adding" in message
    assert all(name in message for name in TASKS)
    assert isinstance(info.value, UserError)


@pytest.mark.parametrize(
    ("name", "T"),
    [
        ("addition", 9),
        ("addition", 0),
        ("multiplication", -10),
        ("xor", 5),
        ("temporal_order_2bit", 9),
        ("temporal_order_3bit", 9),
        ("random_permutation", 1),
        ("memorization_5bit", 4),
        ("memorization_20bit", 9),
        ("dnc_copy", 21),
        ("dnc_copy", 23),
        ("dnc_copy", 4),
        ("addition", 10.5),
        ("addition", "100"),
        ("addition", True),
    ],
)
def test_bad_length_parameter(name: str, T: object) -> None:
    with pytest.raises(ConfigError) as info:
        make_task(name, T)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_numpy_integer_length_is_accepted() -> None:
    task = make_task("addition", np.int64(30))
    assert task.T == 30 and type(task.T) is int


def test_generate_validates_arguments() -> None:
    task = make_task("addition", 20)
    with pytest.raises(ValueError):
        task.generate(-1, torch.Generator())



def test_only_5bit_memorisation_has_a_whole_set_and_the_sampler_hands_it_out() -> None:
    """Thesis §4.13: the 32 sequences of 5-bit memorisation are used in full; a batch of at least 32 is that set."""
    from secondorder.problems.samplers import TaskSampler

    task = make_task("memorization_5bit", 8)
    whole = task.whole_set()
    assert whole is not None and whole.complete and len(whole) == 32
    assert make_task("memorization_20bit", 12).whole_set() is None and make_task("addition", 12).whole_set() is None
    sampler = TaskSampler(task.generate, 0, torch.device("cpu"), torch.float32, nominal_size=100, whole=whole)
    big, small = sampler.next(10000), sampler.next(16)
    assert big.complete and len(big) == 32 and torch.equal(big.inputs, whole.inputs.float())
    assert not small.complete and len(small) == 16 and sampler.examples_seen == 48
