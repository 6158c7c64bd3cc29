"""Checkpoints hold tensors and plain values only, and resume identically — for every optimiser — and the K-FAC
inverse back-ends share one shape whose dense form is the damped Kronecker(-tridiagonal) inverse (float64
oracles built from the factors)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from secondorder.checkpoint import CHECKPOINT_NAME, load_checkpoint
from secondorder.errors import ConfigError
from secondorder.kfac.factors import KroneckerFactors
from secondorder.kfac.inverses import BlockDiagonalInverse, BlockTridiagonalInverse, CholeskyBlockDiagonal
from secondorder.optim import OPTIMIZERS
from secondorder.optim.base import StepCosts

# ------------------------------------------------------------------------------------------------ resume
_COMMON = ("trainer.device=cpu", "trainer.dtype=float64", "trainer.progress=false", "trainer.log_every=1",
           "trainer.eval_every=2", "seed=3")
_CURVES = ("dataset=curves", "dataset.n_train=256", "dataset.n_test=128", "model.encoder_dims=[784,24,6]",
           "trainer.eval_batch_size=100", "dataset.batch_size=32")
_CLASSIFIER = ("dataset=mnist_5k_class", "model.dims=[784,20,10]")
_LM = ("dataset=ptb_char", "dataset.bptt=12", "dataset.batch_size=6", "optimizer.batch_size=6",
       "dataset.eval_train_tokens=600", "dataset.eval_tokens=600", "model.hidden_dim=12", "model.embedding_dim=8")
_KFAC = ("optimizer.batch_size=64", "optimizer.gamma_period=3", "objective.l2=1e-5")
_ACP = ("optimizer.batch_size=32", "optimizer.stats_batch_size=32", "optimizer.stats_period=3")

# name → (overrides, N steps, resume after N1): N1 falls between inverse refreshes / γ trials where there are
# any, so the resumed run uses inverses, γ-use counters and per-γ decompositions restored from the checkpoint;
# N1 is a multiple of eval_every (a run evaluates when its budget ends, so another N1 adds an evaluation row).
RESUME_RUNS: dict[str, tuple[tuple[str, ...], int, int]] = {
    "sgd": ((*_CURVES, "pretrain=rbm", "pretrain.epochs=1", "trainer.polyak_decay=0.9", "trainer.polyak_start=2"),
            4, 2),
    "momentum": (_CURVES, 4, 2),
    "nesterov": (_CURVES, 4, 2),
    "adam": ((*_CURVES, "trainer.polyak_decay=0.9", "trainer.polyak_start=1"), 4, 2),
    "hf": ((*_CURVES, "optimizer.max_cg_iters=10"), 4, 2),
    "kfac": ((*_CURVES, *_KFAC, "optimizer.inverse_period=3"), 8, 4),
    "kfac_tridiag": ((*_CURVES, *_KFAC, "optimizer.inverse_period=3"), 8, 4),
    "kfra": ((*_CURVES, *_KFAC), 4, 2),
    "kflr": ((*_CLASSIFIER, *_KFAC), 4, 2),
    "kfac_rnn": ((*_LM, "optimizer.inverse_period=3"), 6, 4),
    "centered_sgd": ((*_CURVES, "optimizer.batch_size=32"), 4, 2),
    "acp": ((*_CURVES, *_ACP), 4, 2),
    "acp_fixed_alpha": ((*_CURVES, *_ACP), 4, 2),
    "nnn": ((*_CURVES, *_ACP), 4, 2),
    "ncg": ((*_CURVES, "optimizer.batch_size=64", "optimizer.line_searches=2"), 4, 2),
}


def test_every_optimiser_has_a_resume_case() -> None:
    assert set(RESUME_RUNS) == set(OPTIMIZERS)


def _metrics(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv").drop(columns=["wall_time_s"])


@pytest.mark.parametrize("name", sorted(RESUME_RUNS))
def test_checkpoint_loads_weights_only_and_resumes_identically(name: str, train, tmp_path: Path) -> None:
    overrides, steps, first = RESUME_RUNS[name]
    args = (f"optimizer={name}", *_COMMON, *overrides)
    code, err = train(*args, f"trainer.max_steps={steps}", run_dir=tmp_path / "straight", tiny=False)
    assert code == 0, err
    code, err = train(*args, f"trainer.max_steps={first}", run_dir=tmp_path / "split", tiny=False)
    assert code == 0, err
    state = torch.load(tmp_path / "split" / CHECKPOINT_NAME, weights_only=True)  # no pickled objects
    assert state["iteration"] == first
    code, err = train(*args, f"trainer.max_steps={steps}", "trainer.resume=true", run_dir=tmp_path / "split",
                      tiny=False)
    assert code == 0, err
    straight, resumed = _metrics(tmp_path / "straight"), _metrics(tmp_path / "split")
    assert len(straight) == steps + 1
    pd.testing.assert_frame_equal(straight, resumed)
    a = torch.load(tmp_path / "straight" / CHECKPOINT_NAME, weights_only=True)
    b = torch.load(tmp_path / "split" / CHECKPOINT_NAME, weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_a_checkpoint_from_before_the_weights_only_format_is_refused(tmp_path: Path) -> None:
    torch.save({"iteration": 3, "costs": StepCosts()}, tmp_path / CHECKPOINT_NAME)  # a pickled dataclass
    with pytest.raises(ConfigError, match=r"predates the weights-only checkpoint format.*restart"):
        load_checkpoint(tmp_path)
    torch.save({"iteration": 3}, tmp_path / CHECKPOINT_NAME)  # plain, but without the format marker
    with pytest.raises(ConfigError, match="predates"):
        load_checkpoint(tmp_path)
    assert load_checkpoint(tmp_path / "missing") is None


# ------------------------------------------------------------------------------------------------ inverses
DIMS_A, DIMS_G = [4, 4, 3], [3, 2, 2]  # Ā_{i−1,i−1} is (d_{i−1}+1)², G_{i,i} is d_i²


def random_factors(seed: int = 0) -> dict[str, list[torch.Tensor]]:
    """Factors (with cross factors) estimated from random correlated activities and gradients, so the joint
    moments are positive semi-definite as real statistics are."""
    g = torch.Generator().manual_seed(seed)
    n = 40
    shared = torch.randn(n, 6, generator=g, dtype=torch.float64)
    inputs = [shared @ torch.randn(6, d, generator=g, dtype=torch.float64) + 0.3 * torch.randn(n, d, generator=g,
              dtype=torch.float64) for d in DIMS_A]
    grads = [shared @ torch.randn(6, d, generator=g, dtype=torch.float64) + 0.3 * torch.randn(n, d, generator=g,
             dtype=torch.float64) for d in DIMS_G]
    return KroneckerFactors.estimates(inputs, [grads], cross=True)


def _pi(A: torch.Tensor, G: torch.Tensor) -> float:
    return math.sqrt((float(torch.trace(A)) / A.shape[0]) / (float(torch.trace(G)) / G.shape[0]))


def damped_kronecker_blocks(f: dict[str, list[torch.Tensor]], gamma: float) -> list[torch.Tensor]:
    """(G + γ/π I) ⊗ (Ā + πγ I) per layer: the damped diagonal blocks of F̃ (row-major vec)."""
    out = []
    for A, G in zip(f["A"], f["G"], strict=True):
        pi = _pi(A, G)
        out.append(torch.kron(G + gamma / pi * torch.eye(G.shape[0], dtype=G.dtype),
                              A + pi * gamma * torch.eye(A.shape[0], dtype=A.dtype)))
    return out


def block_diagonal_oracle(f: dict[str, list[torch.Tensor]], gamma: float) -> torch.Tensor:
    return torch.linalg.inv(torch.block_diag(*damped_kronecker_blocks(f, gamma)))


def block_tridiagonal_oracle(f: dict[str, list[torch.Tensor]], gamma: float) -> torch.Tensor:
    """F̂⁻¹ from F̂ built densely: F̂ = F̃ (damped diagonal blocks, undamped cross blocks G_{i,i+1} ⊗ Ā_{i−1,i}) on
    the tridiagonal band, and off it the chain (Markov) completion F̂_{i,j} = F̂_{i,i+1} F̂_{i+1,i+1}⁻¹ F̂_{i+1,j},
    the unique completion whose inverse is block-tridiagonal (Martens & Grosse 2015, §4.3)."""
    diagonal = damped_kronecker_blocks(f, gamma)
    cross = [torch.kron(gc, ac) for gc, ac in zip(f["G_cross"], f["A_cross"], strict=True)]
    n = len(diagonal)
    blocks: dict[tuple[int, int], torch.Tensor] = {(i, i): diagonal[i] for i in range(n)}
    for i in range(n - 1):
        blocks[i, i + 1] = cross[i]
    for span in range(2, n):
        for i in range(n - span):
            j = i + span
            blocks[i, j] = cross[i] @ torch.linalg.solve(diagonal[i + 1], blocks[i + 1, j])
    rows = [torch.cat([blocks[i, j] if i <= j else blocks[j, i].T for j in range(n)], dim=1) for i in range(n)]
    return torch.linalg.inv(torch.cat(rows, dim=0))


BACKENDS = {
    "eigen": (BlockDiagonalInverse, block_diagonal_oracle),
    "cholesky": (CholeskyBlockDiagonal, block_diagonal_oracle),
    "tridiagonal": (BlockTridiagonalInverse, block_tridiagonal_oracle),
}


def random_blocks(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(dg, da, generator=g, dtype=torch.float64) for da, dg in zip(DIMS_A, DIMS_G, strict=True)]


def _vec(blocks: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([b.reshape(-1) for b in blocks])


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("gamma", [0.05, 0.7])
def test_dense_form_is_the_damped_inverse_and_apply_agrees_with_it(backend: str, gamma: float) -> None:
    make, oracle = BACKENDS[backend]
    f = random_factors()
    inverse = make()
    inverse.refresh(f)
    dense = inverse.to_dense(gamma)
    expected = oracle(f, gamma)
    torch.testing.assert_close(dense, expected, rtol=1e-8, atol=1e-10)
    for seed in range(3):  # the eigen back-end switches to explicit inverses from the second use of a γ
        V = random_blocks(seed)
        torch.testing.assert_close(_vec(inverse.apply(V, gamma)), dense @ _vec(V), rtol=1e-9, atol=1e-12)


def test_the_tridiagonal_oracle_is_not_the_block_diagonal_one() -> None:
    """The cross factors matter: F̂⁻¹ is block-tridiagonal with non-zero off-diagonal blocks, and not F̌⁻¹."""
    f = random_factors()
    tri = block_tridiagonal_oracle(f, 0.1)
    sizes = [da * dg for da, dg in zip(DIMS_A, DIMS_G, strict=True)]
    assert float(tri[: sizes[0], sizes[0] + sizes[1] :].abs().max()) < 1e-9  # block (1, 3) of F̂⁻¹ vanishes
    assert float(tri[: sizes[0], sizes[0] : sizes[0] + sizes[1]].abs().max()) > 1e-3
    assert float((tri - block_diagonal_oracle(f, 0.1)).abs().max()) > 1e-3


def test_inversion_counts() -> None:
    """Eigen: 2ℓ per refresh, none per application; Cholesky: 2ℓ per application; tridiagonal: 2ℓ + 2(ℓ−1) for
    the first application of each damping after a refresh."""
    f, V, ell = random_factors(), random_blocks(0), len(DIMS_A)
    eigen, cholesky, tri = BlockDiagonalInverse(), CholeskyBlockDiagonal(), BlockTridiagonalInverse()
    for inverse in (eigen, cholesky, tri):
        inverse.refresh(f)
        for gamma in (0.1, 0.2, 0.1):
            inverse.apply(V, gamma)
    assert (eigen.inversions, cholesky.inversions, tri.inversions) == (2 * ell, 3 * 2 * ell, 2 * (4 * ell - 2))
    tri.refresh(f)
    tri.apply(V, 0.1)
    assert tri.inversions == 3 * (4 * ell - 2)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_state_dict_round_trip_gives_the_same_apply(backend: str) -> None:
    make, _ = BACKENDS[backend]
    f = random_factors()
    inverse = make()
    inverse.refresh(f)
    inverse.apply(random_blocks(0), 0.3)
    buffer = io.BytesIO()
    torch.save(inverse.state_dict(), buffer)
    buffer.seek(0)
    restored = make()
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.inversions == inverse.inversions
    for gamma in (0.3, 0.3, 0.9):  # a used γ (eigen: explicit path next; tridiagonal: kept decompositions), a new γ
        V = random_blocks(1)
        for a, b in zip(inverse.apply(V, gamma), restored.apply(V, gamma), strict=True):
            assert torch.equal(a, b)
    assert restored.inversions == inverse.inversions
