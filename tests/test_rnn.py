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


def test_stacked_states_match_torch_lstm_at_layout_revealing_sizes():
    """torch.nn.LSTM defines the (L·D, B, H) state layout (layer-major, direction fastest): with B 4, L 3, T 5 and
    a different initial state for every (layer, direction, sequence), outputs and final states agree, so no layer,
    direction or sequence reads another's state. Also the feedback stack's (L, B, H) initial states."""
    import torch

    from vdcore.rnn import lstm_feedback_stack

    batch, steps, features, hidden, layers = 4, 5, 3, 6, 3
    rng = np.random.default_rng(2)
    torch.manual_seed(0)
    net = torch.nn.LSTM(features, hidden, layers, bidirectional=True)
    xs = rng.normal(size=(batch, steps, features)).astype(np.float32)
    h0, c0 = (rng.normal(size=(2 * layers, batch, hidden)).astype(np.float32) for _ in range(2))
    params = {}
    for layer in range(layers):
        for suffix in ("", "_reverse"):
            get = lambda name, s=suffix, k=layer: getattr(net, f"{name}_l{k}{s}").detach().numpy()
            params[f"l{layer}{suffix}"] = {
                "kernel_ih": get("weight_ih").T,
                "kernel_hh": get("weight_hh").T,
                "bias_ih": get("bias_ih"),
                "bias_hh": get("bias_hh"),
            }
    outputs, (hn, cn) = LSTM(hidden, layers, bidirectional=True).apply({"params": params}, xs, (h0, c0))
    with torch.no_grad():
        t_out, (t_hn, t_cn) = net(torch.from_numpy(xs).permute(1, 0, 2), (torch.from_numpy(h0), torch.from_numpy(c0)))
    np.testing.assert_allclose(outputs, t_out.permute(1, 0, 2).numpy(), atol=1e-5)
    np.testing.assert_allclose(hn, t_hn.numpy(), atol=1e-5)
    np.testing.assert_allclose(cn, t_cn.numpy(), atol=1e-5)

    decoder = torch.nn.LSTM(hidden, hidden, layers)
    h0, c0 = (rng.normal(size=(layers, batch, hidden)).astype(np.float32) for _ in range(2))
    first = rng.normal(size=(batch, hidden)).astype(np.float32)
    layer_params = [
        {
            "kernel_ih": getattr(decoder, f"weight_ih_l{k}").detach().numpy().T,
            "kernel_hh": getattr(decoder, f"weight_hh_l{k}").detach().numpy().T,
            "bias_ih": getattr(decoder, f"bias_ih_l{k}").detach().numpy(),
            "bias_hh": getattr(decoder, f"bias_hh_l{k}").detach().numpy(),
        }
        for k in range(layers)
    ]
    ours = lstm_feedback_stack(layer_params, (jnp.asarray(h0), jnp.asarray(c0)), jnp.asarray(first), steps)
    with torch.no_grad():
        x, state, theirs = torch.from_numpy(first)[None], (torch.from_numpy(h0), torch.from_numpy(c0)), []
        for _ in range(steps):
            x, state = decoder(x, state)
            theirs.append(x[0])
    np.testing.assert_allclose(ours, torch.stack(theirs, 1).numpy(), atol=1e-5)
