"""HF pieces against their definitions: PCG, the termination rule, CG-backtracking, the LM rule, Armijo;
and HF as a whole against SGD on a small CURVES problem."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from secondorder.optim.cg import backtracking_schedule, pcg, progress_stop
from secondorder.optim.linesearch import armijo_backtracking
from tests.conftest import read_run


def spd_system(n: int = 30, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))[0]
    A = Q @ torch.diag(torch.logspace(-2, 2, n, dtype=torch.float64)) @ Q.T
    return A, torch.randn(n, generator=g, dtype=torch.float64)


def test_cg_solves_an_spd_system_and_tracks_the_quadratic() -> None:
    A, b = spd_system()
    result = pcg(lambda v: A @ v, b, torch.zeros_like(b), max_iters=200, tolerance=1e-14, mode="window")
    torch.testing.assert_close(result.x, torch.linalg.solve(A, b), rtol=1e-6, atol=1e-8)
    for i, x in result.stored:  # the free q(x_i) = ½(r_i − b)ᵀx_i equals ½xᵀAx − bᵀx
        assert result.q_values[i] == pytest.approx(float(0.5 * x @ A @ x - b @ x), rel=1e-9, abs=1e-12)
    assert all(q1 <= q0 + 1e-12 for q0, q1 in zip(result.q_values, result.q_values[1:], strict=False))


def test_preconditioning_and_warm_start_give_the_same_solution_faster() -> None:
    g = torch.Generator().manual_seed(1)
    d = torch.logspace(-3, 3, 40, dtype=torch.float64)
    A = torch.diag(d) + 1e-3 * torch.ones(40, 40, dtype=torch.float64)
    b = torch.randn(40, generator=g, dtype=torch.float64)
    plain = pcg(lambda v: A @ v, b, torch.zeros_like(b), max_iters=400, tolerance=1e-12, mode="window")
    pre = pcg(lambda v: A @ v, b, torch.zeros_like(b), precondition=lambda r: r / d, max_iters=400,
              tolerance=1e-12, mode="window")
    solution = torch.linalg.solve(A, b)
    torch.testing.assert_close(pre.x, solution, rtol=1e-6, atol=1e-9)
    assert pre.iterations < plain.iterations
    cold = pcg(lambda v: A @ v, b, torch.zeros_like(b), max_iters=6)
    warm = pcg(lambda v: A @ v, b, 0.95 * solution, max_iters=6)  # x₀ = ζ δ (thesis §4.8)
    assert (warm.x - solution).norm() < 0.2 * (cold.x - solution).norm()
    assert warm.products == warm.iterations + 1  # one extra product for r₀ = A x₀ − b


def test_cg_stops_on_negative_curvature_and_non_finite_products() -> None:
    A = torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))
    b = torch.tensor([1.0, 1.0], dtype=torch.float64)
    assert pcg(lambda v: A @ v, b, torch.zeros_like(b)).reason == "negative_curvature"
    result = pcg(lambda v: v * float("nan"), b, torch.zeros_like(b))
    assert result.reason == "nonfinite" and torch.equal(result.x, torch.zeros_like(b))


def test_progress_rule_on_a_constructed_sequence() -> None:
    """k = max(10, ⌈0.1 i⌉); stop when (q_i − q_{i−k}) / q_i < k·tol (code) or < tol (thesis)."""
    q = [0.0] + [-(1 - 0.5**i) for i in range(1, 60)]  # converging: relative progress shrinks like 2^-i
    stops = [i for i in range(1, 60) if progress_stop(i, q, 5e-4, "per_step")]
    # at i, the window is 10: progress (q_i − q_{i−10})/q_i ≈ 2^{−(i−10)}; below 5e-3 first at i = 18
    assert stops[0] == 18
    assert next(i for i in range(1, 60) if progress_stop(i, q, 1e-4, "window")) == 24  # 2^{−14} < 1e-4
    assert not progress_stop(10, q, 1.0, "per_step")  # never before i > k
    positive = [0.0] + [1.0] * 30
    assert not any(progress_stop(i, positive, 1.0, "per_step") for i in range(30))  # q ≥ 0: no stop
    assert progress_stop(200, [-1.0] * 201, 5e-4, "per_step")  # no progress at all → stop (k = 20)


def test_backtracking_schedule_matches_martens_code() -> None:
    assert backtracking_schedule(250)[:15] == [5, 7, 9, 11, 15, 19, 25, 32, 41, 54, 69, 90, 117, 152, 197]
    assert backtracking_schedule(250)[-1] == 197


def test_armijo_line_search() -> None:
    h0, slope = 1.0, -1.0
    def quadratic(rate: float) -> float:
        return 1.0 - rate + 2.0 * rate**2  # minimised at 0.25
    result = armijo_backtracking(quadratic, h0, slope, c=1e-2, shrink=0.8)
    assert result.rate == pytest.approx(0.8**4)  # first α with 1 − α + 2α² ≤ 1 − 0.01 α
    assert armijo_backtracking(quadratic, h0, slope=+1.0).rate == 0.0  # not a descent direction
    assert armijo_backtracking(lambda a: math.inf, h0, slope, max_steps=5).rate == 0.0
    assert armijo_backtracking(quadratic, h0, slope, h_initial=0.0).evaluations == 0


@pytest.fixture
def hf_run(train, tmp_path: Path):
    def run(*overrides: str) -> tuple:
        run_dir = tmp_path / "_".join(o.replace("=", "-").replace(".", "") for o in overrides)[:80]
        code, err = train("optimizer=hf", "model.encoder_dims=[784,40,6]", "dataset.n_train=512",
                          "dataset.n_test=128", "trainer.eval_every=1", *overrides, run_dir=run_dir)
        assert code == 0, err
        return read_run(run_dir)
    return run


def test_hf_gets_below_the_plateau_that_full_batch_sgd_reaches(hf_run, train, tmp_path: Path) -> None:
    """Per iteration, HF beats full-batch gradient descent at its best learning rate of a grid: on CURVES the
    first-order method stalls at the 'mean image' plateau (≈ 26 here) while HF keeps descending."""
    metrics, summary = hf_run("trainer.max_steps=20", "trainer.eval_every=5")
    assert summary["status"] == "completed"
    hf_error = metrics.train_error.dropna().iloc[-1]
    sgd_errors = []
    for lr in (0.1, 0.3, 1.0):
        code, err = train("optimizer=sgd", f"optimizer.lr={lr}", "model.encoder_dims=[784,40,6]",
                          "dataset.n_train=512", "dataset.n_test=128", "dataset.batch_size=512",
                          "trainer.max_steps=20", "trainer.eval_every=20", run_dir=tmp_path / f"sgd{lr}")
        assert code == 0, err
        sgd_errors.append(read_run(tmp_path / f"sgd{lr}")[0].train_error.dropna().iloc[-1])
    assert hf_error < 0.95 * min(sgd_errors)
    assert (metrics.cg_iters.dropna() >= 1).all() and metrics.curvature_products.iloc[-1] > 20
    assert metrics["lambda"].dropna().iloc[-1] < 45.0  # good ρ: λ fell from the initial 45


def test_lm_rule_raises_lambda_on_bad_ratio(hf_run) -> None:
    """With ρ forced below ¼ (the GGN grossly overestimates progress when scaled), λ grows by 3/2 per step."""
    metrics, _ = hf_run("trainer.max_steps=3", "optimizer.rho_low=2.0", "optimizer.rho_high=3.0")
    lambdas = metrics["lambda"].dropna().tolist()
    assert lambdas == pytest.approx([45.0 * 1.5, 45.0 * 1.5**2, 45.0 * 1.5**3])


@pytest.mark.parametrize("extra", [
    ("optimizer.curvature=hessian", "optimizer.preconditioner=none"),
    ("optimizer.preconditioner=ggn_diagonal",),
    ("optimizer.curvature_mode=jvp", "optimizer.backtracking=false", "optimizer.line_search=false"),
    ("optimizer.cg_init_from=backtracked", "optimizer.curvature_chunks=1", "objective.l2=1e-3"),
])
def test_hf_variants_run(hf_run, extra: tuple[str, ...]) -> None:
    metrics, summary = hf_run("trainer.max_steps=2", *extra)
    assert summary["status"] == "completed" and metrics.train_error.notna().all()


def test_hf_backtracking_picks_the_best_stored_iterate(hf_run) -> None:
    metrics, _ = hf_run("trainer.max_steps=3", "optimizer.max_cg_iters=60", "optimizer.cg_tolerance=1e-12")
    chosen, run = metrics.cg_chosen_iter.dropna(), metrics.cg_iters.dropna()
    assert (chosen <= run).all() and (chosen >= 5).all()


def test_hf_on_an_rnn_with_structural_damping(train, tmp_path: Path) -> None:
    code, err = train("optimizer=hf", "dataset=pathological", "dataset.task=addition", "dataset.T=12",
                      "dataset.n_test=100", "optimizer.gradient_batch=200", "optimizer.curvature_chunks=2",
                      "optimizer.structural_damping=0.0333", "optimizer.initial_lambda=0.1",
                      "model.hidden_dim=8", "model.activation=sigmoid", "trainer.max_steps=2",
                      "trainer.device=cpu", "trainer.progress=false", run_dir=tmp_path / "rnn", tiny=False)
    assert code == 0, err
    metrics, _ = read_run(tmp_path / "rnn")
    assert metrics.cg_iters.dropna().min() >= 1


def test_closed_form_rnn_products_give_the_linearised_products_trajectory(train, tmp_path: Path) -> None:
    """curvature_mode=auto (BPTT products on the simple RNN) follows the linearize run (float64: CG's stopping
    tests sit on rounding-level differences of the products after ~200 steps, so only the loss, λ and ρ are
    compared; in float32 the runs part within a few iterations for the same reason)."""
    runs = {}
    for mode in ("auto", "linearize"):
        code, err = train("experiment=hf_rnn", "dataset=addition", "dataset.T=12", "dataset.n_test=100",
                          "optimizer.gradient_batch=200", "optimizer.curvature_chunks=2", "model.hidden_dim=8",
                          f"optimizer.curvature_mode={mode}", "trainer.max_steps=3", "trainer.dtype=float64",
                          "trainer.device=cpu",
                          "trainer.progress=false", run_dir=tmp_path / mode, tiny=False)
        assert code == 0, err
        runs[mode] = read_run(tmp_path / mode)[0]
    for column in ("loss", "lambda", "rho"):
        fast, oracle = runs["auto"][column].dropna(), runs["linearize"][column].dropna()
        assert len(fast) == len(oracle) == 3
        assert fast.to_numpy() == pytest.approx(oracle.to_numpy(), rel=1e-4), column


def test_bptt_products_on_a_feed_forward_net_are_refused(train, tmp_path: Path) -> None:
    code, err = train("optimizer=hf", "optimizer.curvature_mode=bptt", "trainer.max_steps=1",
                      run_dir=tmp_path / "mlp")
    assert code != 0 and "curvature_mode=bptt needs" in err


def test_rnn_ninety_percent_rule_stops_when_the_objective_reduction_falls_back() -> None:
    """Thesis §4.13: stop CG once the reduction of the objective falls below 90 % of the best so far; checked
    only at the stored iterates. Here h(x) = ‖x − 1‖² along CG iterates that overshoot after the 3rd check."""
    from secondorder.optim.cg import ObjectiveReductionStop

    values = iter([8.0, 5.0, 4.0, 4.5, 6.0])  # h at the successive checkpoints; h(θ) = 10
    stop = ObjectiveReductionStop(lambda x: next(values), 10.0, {5, 7, 9, 11, 15})
    decisions = [stop(i, [], torch.zeros(1)) for i in (5, 6, 7, 9, 11)]
    # reductions 2, 5, 6 (best), then 5.5 ≥ 0.9·6 = 5.4 → continue; the next check would be 4 < 5.4
    assert decisions == [False, False, False, False, False]
    assert stop(15, [], torch.zeros(1)) is True
    assert [r for _, r in stop.reductions] == [2.0, 5.0, 6.0, 5.5, 4.0]


def test_hf_on_an_rnn_task_with_the_rnn_settings(train, tmp_path) -> None:
    """experiment=hf_rnn composes the thesis's RNN settings and runs (structural damping, 90 % rule, target)."""
    code, err = train("experiment=hf_rnn", "dataset=addition", "dataset.T=10", "dataset.n_test=200",
                      "optimizer.gradient_batch=200", "optimizer.max_cg_iters=30", "trainer.max_steps=2",
                      "trainer.device=cpu", "trainer.progress=false", run_dir=tmp_path / "r", tiny=False)
    assert code == 0, err
    from tests.conftest import read_run

    metrics, summary = read_run(tmp_path / "r")
    assert summary["budget"]["target_test_error"] == 0.0099 and summary["dataset"] == "addition"
    assert metrics.cg_iters.dropna().le(30).all() and metrics["lambda"].dropna().iloc[0] > 0


@pytest.mark.parametrize("sync_every", [2, 3, 7, 300])
def test_cg_running_ahead_between_synchronisations_returns_the_same_result(sync_every: int) -> None:
    """pcg(sync_every=s) replays the one-at-a-time decisions: same iterates, q values, stored iterates and
    stopping reason for every way CG ends (progress rule, max_iters, negative curvature, convergence, a
    custom stop); only the count of products computed ahead may be larger."""
    A, b = spd_system(40)
    d = torch.diagonal(A).clone()
    indefinite = torch.diag(torch.tensor([3.0, 2.0, 1.0, -0.5], dtype=torch.float64))
    cases = [
        (lambda v: A @ v, b, dict(max_iters=250, store_at=backtracking_schedule(250))),   # progress rule
        (lambda v: A @ v, b, dict(max_iters=9, precondition=lambda r: r / d)),             # max_iters
        (lambda v: indefinite @ v, torch.ones(4, dtype=torch.float64), {}),                # negative curvature
        (lambda v: 2.0 * v, torch.ones(5, dtype=torch.float64), {}),                       # converged (r = 0)
        (lambda v: A @ v, b, dict(stop=lambda i, q, x: i == 13)),                         # custom stop rule
    ]
    for operator, rhs, options in cases:
        reference = pcg(operator, rhs, torch.zeros_like(rhs), **options)
        ahead = pcg(operator, rhs, torch.zeros_like(rhs), sync_every=sync_every, **options)
        assert (ahead.reason, ahead.iterations, ahead.q_values) == (reference.reason, reference.iterations,
                                                                     reference.q_values)
        assert torch.equal(ahead.x, reference.x)
        assert [i for i, _ in ahead.stored] == [i for i, _ in reference.stored]
        assert all(torch.equal(u, v) for (_, u), (_, v) in zip(ahead.stored, reference.stored, strict=True))
        assert reference.products <= ahead.products <= reference.products + sync_every - 1
    assert {pcg(op, rhs, torch.zeros_like(rhs), **o).reason for op, rhs, o in cases} == {
        "progress", "max_iters", "negative_curvature", "converged"}


def test_hf_uses_a_complete_finite_set_for_the_curvature_too() -> None:
    """Thesis §4.13: the 5-bit memorisation problem has only 32 distinct sequences, so all are used for both the
    gradient and the curvature — no 1-in-10 curvature part of them; fresh batches still get split."""
    from types import SimpleNamespace

    from secondorder.data.pathological import make_task
    from secondorder.optim.hf import HessianFree
    from secondorder.problems.sequence_task import SequenceTaskProblem

    task = make_task("memorization_5bit", 8)
    whole = task.whole_set()
    stub = SimpleNamespace(cfg=SimpleNamespace(curvature_chunks=10, chunk_seed=0), partition=None,
                           problem=SimpleNamespace(subset=SequenceTaskProblem.subset))
    stub.problem.subset = lambda batch, index: SequenceTaskProblem.subset(None, batch, index)
    assert HessianFree._curvature_batch(stub, whole, 3, len(whole)) is whole
    fresh = task.generate(100, torch.Generator().manual_seed(0))
    assert len(HessianFree._curvature_batch(stub, fresh, 3, len(fresh))) == 10


def test_hf_on_5bit_memorisation_trains_on_the_32_sequences(train, tmp_path: Path) -> None:
    code, err = train("optimizer=hf", "dataset=pathological", "dataset.task=memorization_5bit", "dataset.T=6",
                      "dataset.n_test=64", "optimizer.gradient_batch=10000", "optimizer.curvature_chunks=10",
                      "model.hidden_dim=8", "trainer.max_steps=2", "trainer.device=cpu", "trainer.progress=false",
                      run_dir=tmp_path / "mem", tiny=False)
    assert code == 0, err
    metrics, _ = read_run(tmp_path / "mem")
    assert metrics.examples_seen.dropna().max() == 2 * 32  # the whole set at each of the two iterations


def test_cg_from_a_start_that_overflows_offers_the_zero_step() -> None:
    """Issue 17's HF-RNN evidence: a warm start whose quadratic overflows ended CG with nothing stored, and the
    backtracking that follows crashed (IndexError) — three xor runs died so."""
    A, b = spd_system(10)
    result = pcg(lambda v: A @ v, b, torch.full((10,), 1e200, dtype=torch.float64), max_iters=20)
    assert result.reason == "nonfinite" and len(result.stored) == 1 and result.stored[0][0] == 0
    assert torch.equal(result.stored[0][1], torch.zeros(10, dtype=torch.float64))


def test_hf_restarts_cg_from_zero_when_its_warm_start_overflows() -> None:
    """A previous CG run's huge iterate as warm start made every later CG run break down at its first step (one
    5-bit memorisation run sat 38 iterations so): HF now starts that CG run again from zero and keeps no warm start
    from a run that overflowed."""
    from secondorder.optim.hf import HessianFree, HFConfig
    from tests.oracles import rnn_problem

    problem, _ = rnn_problem("addition", "tanh", T=10)
    hf = HessianFree(problem, HFConfig(gradient_batch=8, curvature_chunks=1, preconditioner="none",
                                       initial_lambda=1.0, max_cg_iters=20))
    sampler = problem.make_sampler(seed=0)
    hf.previous = torch.full((hf.space.numel,), 1e200, dtype=torch.float64)
    result = hf.step(0, sampler)
    assert result.stats["cg_iters"] > 0 and result.stats["cg_stop"] != 3  # solved from zero, not from the start
    assert hf.previous is not None and float(hf.previous.abs().max()) < 1e10
