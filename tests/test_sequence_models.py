"""The LSTM language model (per-gate nn.Linear) and the pathological-task RNN."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from secondorder.models.lstm import GATES, LSTMConfig, LSTMLanguageModel, copy_into_cudnn, initialise_uniform_
from secondorder.models.rnn import RecurrentNet, RNNConfig, sparse_rnn_init_


def small_lm(cell: str = "linear") -> LSTMLanguageModel:
    cfg = LSTMConfig(embedding_dim=5, hidden_dim=7, layers=2, cell=cell, init_scale=0.3)
    model = LSTMLanguageModel(11, cfg).double()
    initialise_uniform_(model, cfg.init_scale, torch.Generator().manual_seed(0))
    return model


def test_each_gate_is_its_own_linear_map_on_input_and_hidden() -> None:
    model = small_lm()
    for k, layer in enumerate(model.layers):
        assert len(layer.gates) == len(GATES) == 4
        assert all(isinstance(g, nn.Linear) for g in layer.gates)
        assert layer.gates[0].in_features == (5 if k == 0 else 7) + 7 and layer.gates[0].out_features == 7


def test_linear_cell_computes_the_same_function_as_cudnn_lstm() -> None:
    """Our hand-written cell equals torch's nn.LSTM (gate order i, f, g, o) given the same weights."""
    ours, theirs = small_lm("linear"), small_lm("cudnn")
    copy_into_cudnn(ours, theirs)
    tokens = torch.randint(0, 11, (3, 9), generator=torch.Generator().manual_seed(1))
    logits_a, state_a = ours(tokens)
    logits_b, state_b = theirs(tokens)
    torch.testing.assert_close(logits_a, logits_b)
    # carrying the state into the next window agrees too
    more = torch.randint(0, 11, (3, 4), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(ours(more, state_a)[0], theirs(more, state_b)[0])


def test_lstm_lm_is_differentiable_by_torch_func_jvp() -> None:
    """torch.func.jvp must work (it does not through cuDNN); check against finite differences."""
    model = small_lm()
    params = {k: v.detach() for k, v in model.named_parameters()}
    tangent = {k: torch.randn_like(v) for k, v in params.items()}
    tokens = torch.randint(0, 11, (2, 6), generator=torch.Generator().manual_seed(3))

    def f(p):
        return torch.func.functional_call(model, p, (tokens,))[0]

    _, jv = torch.func.jvp(f, (params,), (tangent,))
    eps = 1e-6
    plus = f({k: params[k] + eps * tangent[k] for k in params})
    minus = f({k: params[k] - eps * tangent[k] for k in params})
    torch.testing.assert_close(jv, (plus - minus) / (2 * eps), rtol=1e-6, atol=1e-8)


def test_uniform_init_range_and_zero_biases() -> None:
    model = small_lm()
    for name, p in model.named_parameters():
        if "bias" in name:
            assert torch.all(p == 0)
        else:
            assert 0.2 < float(p.detach().abs().max()) <= 0.3


def test_rnn_sparse_init_follows_the_thesis() -> None:
    """§4.13: 15 incoming connections per unit; W_in non-zeros N(0,1); W_rec, W_out non-zeros, biases N(0,1/15)."""
    model = RecurrentNet(input_dim=100, output_dim=100, cfg=RNNConfig(hidden_dim=400))
    sparse_rnn_init_(model, torch.Generator().manual_seed(0))
    for layer in (model.input, model.recurrent, model.output):
        assert torch.all((layer.weight != 0).sum(dim=1) == 15)
    assert float(model.input.weight[model.input.weight != 0].std()) == pytest.approx(1.0, rel=0.05)
    for layer in (model.recurrent, model.output):
        assert float(layer.weight[layer.weight != 0].std()) == pytest.approx(15 ** -0.5, rel=0.05)
        assert float(layer.bias.std()) == pytest.approx(15 ** -0.5, rel=0.15) and torch.all(layer.bias != 0)
    narrow = RecurrentNet(input_dim=2, output_dim=1, cfg=RNNConfig())
    sparse_rnn_init_(narrow, torch.Generator().manual_seed(0))
    assert torch.all((narrow.input.weight != 0).sum(dim=1) == 2)  # fewer inputs than 15: all connected


def test_rnn_recurrence() -> None:
    """h_t = tanh(W_in x_t + W_rec h_{t−1} + b), z_t = W_out h_t + b_out, h_0 = 0 — written out by hand."""
    model = RecurrentNet(3, 2, RNNConfig(hidden_dim=4)).double()
    sparse_rnn_init_(model, torch.Generator().manual_seed(1))
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    h = torch.zeros(2, 4, dtype=torch.float64)
    expected = []
    for t in range(5):
        h = torch.tanh(x[:, t] @ model.input.weight.T + h @ model.recurrent.weight.T + model.recurrent.bias)
        expected.append(h @ model.output.weight.T + model.output.bias)
    outputs, final = model(x)
    torch.testing.assert_close(outputs, torch.stack(expected, dim=1))
    torch.testing.assert_close(final, h)


def test_layer_normalised_lstm_baseline(train, tmp_path) -> None:
    """model.layer_norm=true (Ba et al. 2016; the K-FAC-RNN paper's baselines, §4.1): normalised gates and cell,
    gains start at 1; trains with Adam; K-FAC for RNNs and cuDNN refuse it with a one-line error."""
    import torch

    from secondorder.models.lstm import LSTMConfig, LSTMLanguageModel, initialise_uniform_

    model = LSTMLanguageModel(11, LSTMConfig(embedding_dim=4, hidden_dim=6, layers=1, layer_norm=True))
    initialise_uniform_(model, 0.1, torch.Generator().manual_seed(0))
    assert len(model.layers[0].norms) == 5 and bool((model.layers[0].norms[0].weight == 1).all())
    logits, _ = model(torch.randint(0, 11, (2, 3)))
    assert logits.shape == (2, 3, 11) and bool(torch.isfinite(logits).all())
    common = ("dataset=ptb_char", "dataset.bptt=8", "dataset.batch_size=4", "dataset.eval_train_tokens=200",
              "dataset.eval_tokens=200", "model.hidden_dim=8", "model.embedding_dim=4", "model.layer_norm=true",
              "trainer.max_steps=2", "trainer.device=cpu", "trainer.progress=false")
    code, err = train("optimizer=adam", *common, run_dir=tmp_path / "adam", tiny=False)
    assert code == 0, err
    code, err = train("optimizer=kfac_rnn", *common, run_dir=tmp_path / "kfac", tiny=False)
    assert code == 2 and "nn.Linear or nn.Embedding" in err and err.count("\n") == 1
    code, err = train("optimizer=adam", *common, "model.cell=cudnn", run_dir=tmp_path / "cudnn", tiny=False)
    assert code == 2 and "model.layer_norm" in err
