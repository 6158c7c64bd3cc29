"""K-FAC for RNNs on the hand-written LSTM and the RNN: captured sequences rebuild the gradient, the factors are
the exact Fisher block where the Kronecker factorisation is exact, and the optimiser trains and resumes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from secondorder.composition import compose_run
from secondorder.curvature.params import detached_params
from secondorder.kfac.sequence_layers import SequenceLayers
from secondorder.losses import SoftmaxCE
from secondorder.models.lstm import LSTMConfig, LSTMLanguageModel
from secondorder.models.memory_lstm import MemoryLSTM, MemoryLSTMConfig
from secondorder.models.rnn import RecurrentNet, RNNConfig
from secondorder.optim.base import StepCosts
from secondorder.optim.kfac_rnn import KFACRNN
from secondorder.problems import build_problem
from tests.conftest import read_run

pytestmark = pytest.mark.usefixtures("float64")  # float64 oracles (tests/conftest.py)


def lstm(vocab: int = 7) -> LSTMLanguageModel:
    torch.manual_seed(0)
    model = LSTMLanguageModel(vocab, LSTMConfig(embedding_dim=3, hidden_dim=4, layers=2))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model


def run_and_capture(model, inputs, loss_fn):
    layers = SequenceLayers(model)
    with layers.capture():
        out, _ = model(inputs)
    loss = loss_fn(out)
    grads = torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
    output_grads = torch.autograd.grad(loss, layers.outputs())
    named = dict(zip([n for n, _ in model.named_parameters()], grads, strict=True))
    return layers, layers.sequences(list(output_grads)), named


@pytest.mark.parametrize("kind", ["lstm", "rnn", "memory"])
def test_captured_sequences_rebuild_the_shared_weight_gradient(kind: str) -> None:
    """𝒟W = Σ_t g_t a_tᵀ (K-FAC-RNN §3.1) for every block: gates called per step, maps called once on (B, T, d), the
    embedding (one-hot inputs), with and without a bias."""
    g = torch.Generator().manual_seed(1)
    if kind == "lstm":
        model, inputs = lstm(), torch.randint(0, 7, (3, 5), generator=g)
        targets = torch.randint(0, 7, (3, 5), generator=g)
        loss_fn = lambda out: SoftmaxCE().per_case(out.reshape(-1, 7), targets.reshape(-1)).sum()  # noqa: E731
    elif kind == "rnn":
        torch.manual_seed(0)
        model, inputs = RecurrentNet(2, 3, RNNConfig(hidden_dim=4)), torch.randn(3, 6, 2, generator=g)
        loss_fn = lambda out: out.pow(2).sum()  # noqa: E731
    else:  # the memory-augmented LSTM: controller gates, interface and read-out, all called once per step
        torch.manual_seed(0)
        model = MemoryLSTM(2, 3, MemoryLSTMConfig(hidden_dim=4, memory_slots=3, word_size=2))
        inputs = torch.randn(3, 6, 2, generator=g)
        loss_fn = lambda out: out.pow(2).sum()  # noqa: E731
    layers, sequences, grads = run_and_capture(model, inputs, loss_fn)
    expected = {"lstm": {"embedding", "readout", "layers.0.gates.0"}, "rnn": {"input", "recurrent", "output"},
                "memory": {"gates.3", "interface", "readout"}}[kind]
    assert {b.name for b in layers.blocks} >= expected
    for block, (a, g_seq) in zip(layers.blocks, sequences, strict=True):
        if block.is_embedding:
            a = torch.nn.functional.one_hot(a, block.module.num_embeddings).to(g_seq.dtype)
        else:
            a = layers.homogeneous(block, a)
        rebuilt = torch.einsum("bto,bti->oi", g_seq, a)
        torch.testing.assert_close(rebuilt, block.gradient_matrix(grads), msg=block.name)


def test_one_step_factors_are_the_exact_fisher_block_of_the_lstm() -> None:
    """T = 1, one input repeated: ∇W = g aᵀ, so the Fisher block is E_y[g gᵀ] ⊗ a aᵀ exactly; A₀ must be a aᵀ and
    the sampled-target G₀ must match E_y[g gᵀ] (enumerated over the 7 tokens) to Monte-Carlo accuracy."""
    model = lstm()
    n = 20000
    token = torch.full((n, 1), 3)
    layers = SequenceLayers(model)
    with layers.capture():
        logits, _ = model(token)
    z = logits.reshape(n, 7)
    sampled = SoftmaxCE().sample_targets(z, torch.Generator().manual_seed(2))
    output_grads = torch.autograd.grad(SoftmaxCE().per_case(z, sampled).sum(), layers.outputs())
    A, G, m, T = layers.statistics(list(output_grads))
    assert (m, T) == (n, 1)
    names = [b.name for b in layers.blocks]
    i = names.index("layers.1.gates.2")  # the second layer's candidate gate
    block = layers.blocks[i]
    p = torch.softmax(z[0].detach(), 0)
    params = dict(model.named_parameters())
    exact = 0
    for y in range(7):
        loss = SoftmaxCE().per_case(model(token[:1])[0].reshape(1, 7), torch.tensor([y])).sum()
        gw, gb = torch.autograd.grad(loss, [params[f"{block.name}.weight"], params[f"{block.name}.bias"]])
        vec = torch.cat([gw, gb[:, None]], 1).reshape(-1)
        exact = exact + p[y] * torch.outer(vec, vec)
    approx = torch.kron(G[i].c0, A[i].c0)
    assert float((approx - exact).norm() / exact.norm()) < 0.05
    a_sequences = layers.sequences(list(output_grads))[i][0]
    a = layers.homogeneous(block, a_sequences)[0, 0]
    torch.testing.assert_close(A[i].c0, torch.outer(a, a))  # exact, no sampling
    embedding = A[names.index("embedding")]
    assert embedding.diagonal and embedding.c0.tolist() == [0, 0, 0, 1, 0, 0, 0]
    assert A[i].c1 is not None and float(A[i].c1.abs().max()) == 0  # T = 1: no lag-1 pairs


def tiny_lm(*extra: str) -> tuple[str, ...]:
    return ("dataset=ptb_char", "dataset.bptt=12", "dataset.batch_size=6", "optimizer.batch_size=6",
            "dataset.eval_train_tokens=600", "dataset.eval_tokens=600", "model.hidden_dim=12",
            "model.embedding_dim=8", "trainer.device=cpu", "trainer.progress=false", *extra)


@pytest.mark.parametrize("approx", ["indep", "option1", "option2"])
def test_kfac_rnn_trains_a_character_lstm(train, tmp_path: Path, approx: str) -> None:
    torch.set_default_dtype(torch.float32)
    code, err = train("optimizer=kfac_rnn", f"optimizer.approximation={approx}", *tiny_lm(
        "trainer.max_steps=12", "trainer.eval_every=12", "trainer.log_every=1", "optimizer.lr_decay=0.5",
        "optimizer.lr_decay_every=4", "optimizer.lr_decay_from=8"), run_dir=tmp_path / "r", tiny=False)
    assert code == 0, err
    metrics, _ = read_run(tmp_path / "r")
    evaluated = metrics.dropna(subset=["train_error"])
    assert evaluated.train_error.iloc[-1] < evaluated.train_error.iloc[0]  # bits per character fall
    logged = metrics.dropna(subset=["clip"])
    assert len(logged) == 12 and ((logged["clip"] > 0) & (logged["clip"] <= 1)).all()
    assert (logged.psi_max.dropna() < 1).all() if approx != "indep" else logged.psi_max.isna().all()
    assert logged.lr.tolist() == [0.1] * 8 + [0.05] * 4  # the word model's step decay: ×0.5 from update 8


def test_kfac_rnn_resumes_exactly_and_runs_on_an_rnn_task(train, tmp_path: Path) -> None:
    torch.set_default_dtype(torch.float32)
    common = tiny_lm("optimizer=kfac_rnn", "optimizer.inverse_period=4", "trainer.max_steps=10",
                     "trainer.eval_every=5", "trainer.log_every=1")
    assert train(*common, run_dir=tmp_path / "straight", tiny=False)[0] == 0
    assert train(*common[:-3], "trainer.max_steps=6", "trainer.eval_every=5", "trainer.log_every=1",
                 run_dir=tmp_path / "split", tiny=False)[0] == 0
    code, err = train(*common, "trainer.resume=true", run_dir=tmp_path / "split", tiny=False)
    assert code == 0, err
    straight, resumed = read_run(tmp_path / "straight")[0], read_run(tmp_path / "split")[0]
    columns = ["iteration", "loss", "clip"]  # (the split run also evaluated where it stopped, at 6)
    pd.testing.assert_frame_equal(straight[columns], resumed[columns])
    assert straight.train_error.iloc[-1] == resumed.train_error.iloc[-1]
    for dataset in ("addition", "dnc_copy"):  # the RNN (maps on (B, T, d) once) and the memory-augmented LSTM
        code, err = train("optimizer=kfac_rnn", f"dataset={dataset}", "dataset.T=10" if dataset == "addition" else
                          "dataset.T=22", "dataset.n_test=100", "optimizer.batch_size=50", "trainer.max_steps=3",
                          "trainer.device=cpu", "trainer.progress=false", run_dir=tmp_path / dataset, tiny=False)
        assert code == 0, err


def test_lm_ratio_is_the_exact_fisher_model_of_the_step(data_dir: Path) -> None:
    """optimizer.lambda_period: ρ = (h(θ+δ) − h(θ)) / M(δ), M(δ) = ∇hᵀδ + ½δᵀFδ + ½l₂‖δ‖². Oracle: M from autograd
    derivatives in t alone — ∇hᵀδ = d/dt h(θ+tδ), δᵀFδ = d²/dt² of the loss of the *linearised* outputs z + t·Jδ
    (Jδ by double backward, not forward mode), l₂‖δ‖² = d²/dt² of the prior."""
    run = compose_run([*tiny_lm("optimizer=kfac_rnn", "optimizer.lambda_period=1", "objective.l2=1e-3"),
                       f"data_dir={data_dir}"])
    problem = build_problem(run, torch.device("cpu"), torch.float64)
    optimizer = KFACRNN(problem, run.optimizer)
    batch = problem.make_sampler(seed=0).next(6)
    h, grad, _ = optimizer.gradient_and_statistics(batch)
    optimizer.velocity = {n: g / run.optimizer.lr * 0.3 for n, g in grad.items()}  # δ = −η u = −0.3 ∇h
    rho = optimizer.reduction_ratio(batch, float(h), grad, StepCosts())

    params = detached_params(problem.model)
    delta = {n: -0.3 * g for n, g in grad.items()}
    z, y = problem.outputs(batch, params)
    u = torch.zeros_like(z, requires_grad=True)
    p = {n: t.clone().requires_grad_(True) for n, t in params.items()}
    vjp = torch.autograd.grad(problem.outputs(batch, p)[0], list(p.values()), u, create_graph=True)  # Jᵀu
    jdelta = torch.autograd.grad(sum((a * delta[n]).sum() for a, n in zip(vjp, p, strict=True)), u)[0]
    t0 = torch.zeros((), dtype=torch.float64)

    def moved(t):
        return {n: params[n] + t * delta[n] for n in params}

    slope = torch.func.grad(lambda t: problem.objective_at(batch, moved(t)))(t0)
    fisher = torch.func.hessian(lambda t: problem.loss.per_case(z.detach() + t * jdelta, y).sum())(t0)
    prior = torch.func.hessian(lambda t: problem.l2_penalty_at(moved(t)))(t0)
    change = slope + 0.5 * (fisher / problem.cases(batch) + prior)
    with torch.no_grad():
        h1 = problem.objective_at(batch, moved(1.0))
    assert float(change) < 0 and float(h1) < float(h)  # a descent step: ρ is finite
    assert rho == pytest.approx(float((h1 - h) / change), rel=1e-9)
    assert 0 < rho < 2


def test_kfac_rnn_adapts_lambda_by_lm_and_resumes_exactly(train, tmp_path: Path) -> None:
    """LM on (every 2 iterations; thresholds set so that ρ < rho_low always): λ ← λ/ω at k = 2, 4, 6 and the
    inverses use it from their next refresh on; a resumed run repeats the straight one exactly."""
    torch.set_default_dtype(torch.float32)
    common = tiny_lm("optimizer=kfac_rnn", "optimizer.lambda_period=2", "optimizer.rho_low=10",
                     "optimizer.rho_high=20", "optimizer.inverse_period=2", "trainer.eval_every=3",
                     "trainer.log_every=1")
    assert train(*common, "trainer.max_steps=6", run_dir=tmp_path / "straight", tiny=False)[0] == 0
    assert train(*common, "trainer.max_steps=3", run_dir=tmp_path / "split", tiny=False)[0] == 0
    code, err = train(*common, "trainer.max_steps=6", "trainer.resume=true", run_dir=tmp_path / "split",
                      tiny=False)
    assert code == 0, err
    straight, resumed = read_run(tmp_path / "straight")[0], read_run(tmp_path / "split")[0]
    rows = straight.set_index("iteration")
    omega = 0.95**5
    assert rows.loc[1:6, "lambda"].tolist() == [0.01, 0.01 / omega, 0.01 / omega, 0.01 / omega / omega,
                                                0.01 / omega / omega, 0.01 / omega / omega / omega]
    assert rows.loc[[1, 3, 5], "rho"].isna().all() and rows.loc[[2, 4, 6], "rho"].notna().all()
    columns = ["iteration", "loss", "clip", "lambda", "rho"]
    pd.testing.assert_frame_equal(straight[columns], resumed[columns])
    fixed = tiny_lm("optimizer=kfac_rnn", "optimizer.inverse_period=2", "trainer.max_steps=6",
                    "trainer.eval_every=3", "trainer.log_every=1")
    assert train(*fixed, run_dir=tmp_path / "fixed", tiny=False)[0] == 0
    plain = read_run(tmp_path / "fixed")[0].set_index("iteration")
    assert "lambda" not in plain.columns  # LM off: the paper's fixed λ, the columns of before
    # the same until the refresh at k = 3, the first with the raised λ (the loss is logged before each step)
    assert plain.loc[1:3, "loss"].tolist() == rows.loc[1:3, "loss"].tolist()
    assert plain.loc[4, "loss"] != rows.loc[4, "loss"]
