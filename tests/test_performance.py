"""The fast paths give the same results as the straightforward ones: batched eigendecompositions and Cholesky
factors, traces fetched in one transfer, the phase clock (free when off), one-transfer finiteness checks, the
TF32 switch; K-FAC's batched JVPs against the dense GGN."""

from __future__ import annotations

import math
import time

import pytest
import torch

from secondorder.curvature import ParamSpace, detached_params
from secondorder.curvature.products import curvature_targets
from secondorder.kfac.inverses import (
    batched_cholesky,
    batched_eigh,
    robust_cholesky,
    robust_eigh,
    trace_norm_pi,
    trace_norm_pis,
)
from secondorder.kfac.rescaling import output_jvps, quadratic_terms
from secondorder.optim.base import all_finite
from secondorder.optim.phases import PhaseClock
from secondorder.train import set_tf32
from tests.oracles import dense_ggn, mlp_problem

pytestmark = pytest.mark.usefixtures("float64")


def _spd(n: int, seed: int) -> torch.Tensor:
    x = torch.randn(n + 3, n, generator=torch.Generator().manual_seed(seed))
    return x.T @ x / n


def test_batched_eigh_equals_one_decomposition_per_matrix() -> None:
    matrices = [_spd(5, 0), _spd(3, 1), _spd(5, 2), _spd(3, 3), _spd(7, 4)]
    for (values, vectors), m in zip(batched_eigh(matrices), matrices, strict=True):
        ref_values, _ = robust_eigh(m)
        torch.testing.assert_close(values, ref_values)
        torch.testing.assert_close(vectors @ torch.diag(values) @ vectors.T, m)


def test_batched_eigh_falls_back_per_matrix_when_a_group_fails() -> None:
    bad = torch.full((4, 4), math.nan)
    good = _spd(4, 0)
    (bad_values, bad_vectors), (values, vectors) = batched_eigh([bad, good])
    expected_bad = robust_eigh(bad)  # the never-crash fallback of the single-matrix routine, unchanged
    torch.testing.assert_close(bad_vectors, expected_bad[1])
    torch.testing.assert_close(bad_values, expected_bad[0], equal_nan=True)
    torch.testing.assert_close(vectors @ torch.diag(values) @ vectors.T, good)


def test_trace_norm_pis_equal_the_per_layer_rule() -> None:
    A = [_spd(4, 0), _spd(3, 1), torch.zeros(2, 2)]
    G = [_spd(2, 2), _spd(5, 3), _spd(2, 4)]
    expected = [trace_norm_pi(a, g) for a, g in zip(A, G, strict=True)]
    assert trace_norm_pis(A, G) == pytest.approx(expected, rel=1e-12)
    assert trace_norm_pis([], []) == []


def test_batched_cholesky_factors_equal_the_single_ones_and_recover_from_failures() -> None:
    matrices = [_spd(4, 0), _spd(4, 1), -torch.eye(3), _spd(3, 2)]
    shifts = [0.1, 0.2, 0.0, 0.3]
    factors = batched_cholesky(matrices, shifts)
    for L, m, s in zip(factors, matrices, shifts, strict=True):
        torch.testing.assert_close(L, robust_cholesky(m, s))
    assert torch.isfinite(factors[2]).all()  # −I is not PD: the jitter/eigh fallback still returns a factor


def test_phase_clock_is_free_when_off_and_sums_parts_when_on() -> None:
    clock = PhaseClock(torch.device("cpu"))
    with clock("cg"):
        time.sleep(0.001)
    assert dict(clock.seconds) == {}  # off: nothing recorded
    clock.enabled = True
    for _ in range(2):
        with clock("cg"):
            time.sleep(0.01)
    with clock("update"):
        time.sleep(0.001)
    assert set(clock.seconds) == {"cg", "update"} and clock.seconds["cg"] >= 0.02  # at least the sleeps
    clock.reset()
    assert dict(clock.seconds) == {}


def test_all_finite_checks_every_tensor() -> None:
    assert all_finite([torch.ones(3), torch.zeros(2, 2)]) and all_finite([])
    assert not all_finite([torch.ones(3), torch.tensor([1.0, math.inf])])
    assert not all_finite([torch.tensor([math.nan])])


def test_tf32_switch_sets_both_backends_and_defaults_off() -> None:
    try:
        set_tf32(True)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        set_tf32(False)
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32


def test_kfac_rescaling_terms_from_batched_jvps_match_the_dense_ggn() -> None:
    """K-FAC's (α, μ) system: uᵢᵀFuⱼ from one vmapped JVP pass equals the dense JᵀHJ quadratic form, and the
    batched JVPs equal one ``jvp`` per direction."""

    problem, batch = mlp_problem("sigmoid_bce")
    space = ParamSpace.of(problem.model)
    params = detached_params(problem.model)
    directions = [space.unflatten(torch.randn(space.numel, generator=torch.Generator().manual_seed(s)))
                  for s in range(3)]
    z, jvs = output_jvps(problem, batch, params, directions)
    for u, jv in zip(directions, jvs, strict=True):
        torch.testing.assert_close(jv, torch.func.jvp(lambda p: problem.outputs(batch, p)[0], (params,), (u,))[1])
    y = curvature_targets(problem, batch, params)
    hvs = [problem.loss.output_hessian_vector(z, jv, y) for jv in jvs]
    flats = [space.flatten(u) for u in directions]
    gradient = torch.randn(space.numel, generator=torch.Generator().manual_seed(9))
    gram, dots, rhs = quadratic_terms(flats, jvs, hvs, gradient, problem.cases(batch))
    U = torch.stack(flats)
    torch.testing.assert_close(gram, U @ dense_ggn(problem, batch) @ U.T)
    torch.testing.assert_close(dots, U @ U.T)
    torch.testing.assert_close(rhs, U @ gradient)
