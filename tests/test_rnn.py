"""The LSTM computes torch's equations (gate order i, f, g, o; two biases)."""

import jax
import jax.numpy as jnp
import numpy as np

from vdcore.rnn import LSTM, lstm_cell


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _reference_layer(p, xs, h, c, reverse=False):
    """Direct NumPy transcription of torch.nn.LSTM's documented equations (batch-major xs)."""
    w_ih, w_hh = np.asarray(p["kernel_ih"]).T, np.asarray(p["kernel_hh"]).T  # torch layout (4H, in)
    b = np.asarray(p["bias_ih"]) + np.asarray(p["bias_hh"])
    steps = range(xs.shape[1] - 1, -1, -1) if reverse else range(xs.shape[1])
    out = np.zeros((xs.shape[0], xs.shape[1], h.shape[-1]))
    for t in steps:
        gates = xs[:, t] @ w_ih.T + h @ w_hh.T + b
        i, f, g, o = np.split(gates, 4, axis=-1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        out[:, t] = h
    return out, h, c


def test_bidirectional_multilayer_matches_reference():
    batch, steps, features, hidden, layers = 3, 5, 4, 6, 2
    model = LSTM(hidden, layers, bidirectional=True)
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(batch, steps, features)).astype(np.float32)
    h0 = rng.normal(size=(2 * layers, batch, hidden)).astype(np.float32)
    c0 = rng.normal(size=(2 * layers, batch, hidden)).astype(np.float32)
    params = model.init(jax.random.key(1), xs, (h0, c0))
    outputs, (hn, cn) = model.apply(params, xs, (h0, c0))

    layer_input, ref_h, ref_c = xs.astype(np.float64), [], []
    for layer in range(layers):
        outs = []
        for direction, suffix in enumerate(["", "_reverse"]):
            p = params["params"][f"l{layer}{suffix}"]
            k = 2 * layer + direction
            out, h, c = _reference_layer(p, layer_input, h0[k], c0[k], reverse=bool(direction))
            outs.append(out)
            ref_h.append(h)
            ref_c.append(c)
        layer_input = np.concatenate(outs, axis=-1)
    np.testing.assert_allclose(outputs, layer_input, atol=1e-5)
    np.testing.assert_allclose(hn, np.stack(ref_h), atol=1e-5)
    np.testing.assert_allclose(cn, np.stack(ref_c), atol=1e-5)
    assert params["params"]["l1"]["kernel_ih"].shape == (2 * hidden, 4 * hidden)


def test_cell_step_equals_layer_step_and_dropout_only_when_training():
    model = LSTM(5, 2, dropout=0.5)
    xs = jnp.ones((2, 3, 4))
    init = (jnp.zeros((2, 2, 5)), jnp.zeros((2, 2, 5)))
    params = model.init(jax.random.key(0), xs, init)
    out, _ = model.apply(params, xs, init)
    p0 = params["params"]["l0"]
    h, c = lstm_cell(p0, xs[:, 0], (init[0][0], init[1][0]))
    p1 = params["params"]["l1"]
    h1, _ = lstm_cell(p1, h, (init[0][1], init[1][1]))
    np.testing.assert_allclose(out[:, 0], h1, atol=1e-6)
    again, _ = model.apply(params, xs, init)
    np.testing.assert_array_equal(out, again)
    dropped, _ = model.apply(params, xs, init, deterministic=False, rngs={"dropout": jax.random.key(3)})
    assert not np.allclose(dropped, out)
