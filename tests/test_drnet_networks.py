"""DRNet networks: shapes of every variant, torch-exact BatchNorm, normalisation, conv impls agreeing, init."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from drnet_jax.networks import (
    BN_EPSILON,
    CONTENT_MODELS,
    POSE_MODELS,
    BatchNorm,
    ContentEncoder,
    Decoder,
    PoseEncoder,
    PoseLSTM,
    SceneDiscriminator,
    expected_skip_shapes,
)

B, NC, CONTENT_DIM, POSE_DIM = 2, 3, 16, 5


def _key(seed: int) -> jax.Array:
    """An 'rbg' key: threefry's init programs take ~10 s to compile on this CPU, rbg's well under 1 s."""
    return jax.random.key(seed, impl="rbg")


def _frames(seed: int, batch: int = B, size: int = 64, nc: int = NC) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).uniform(size=(batch, size, size, nc)), jnp.float32)


def _normal(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _struct(*shape: int) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def _init(module, *args, **kwargs):
    """Real parameters without running the forward pass: under jit XLA drops the unused computation."""
    return jax.jit(lambda: module.init(_key(0), *args, **kwargs))()


def _leaves(tree, name: str) -> list[np.ndarray]:
    """Every leaf called `name` in a nested dict."""
    found = []
    for key, value in tree.items():
        if isinstance(value, dict):
            found += _leaves(value, name)
        elif key == name:
            found.append(np.asarray(value))
    return found


# ----------------------------------------------------------------------------------------------------------------------
# Shapes (abstract evaluation only).
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("model", POSE_MODELS)
def test_pose_encoder_shapes(model, size):
    net = PoseEncoder(model, POSE_DIM, size)
    x = _struct(B, size, size, NC)
    variables = jax.eval_shape(lambda x: net.init(_key(0), x, train=True), x)
    out, updates = jax.eval_shape(lambda v, x: net.apply(v, x, train=True, mutable=["batch_stats"]), variables, x)
    assert out.shape == (B, POSE_DIM)
    assert jax.tree.structure(updates["batch_stats"]) == jax.tree.structure(variables["batch_stats"])
    params = variables["params"]
    if model == "dcgan":
        n = 4 if size == 64 else 5
        assert set(params) == {f"c{k}" for k in range(1, n + 2)}
        assert params["c1"]["conv"]["kernel"].shape == (4, 4, NC, 64)
        assert params[f"c{n + 1}"]["conv"]["kernel"].shape == (4, 4, 512, POSE_DIM)
    else:
        head = 3 if size == 64 else 5
        assert params["conv1"]["kernel"].shape == (5, 5, NC, 64)
        assert params["conv_out"]["kernel"].shape == (head, head, 512, POSE_DIM)
        assert params["layer2"]["b0"]["downsample_conv"]["kernel"].shape == (1, 1, 64, 128)
        assert "downsample_conv" not in params["layer1"]["b0"] and "downsample_conv" not in params["layer2"]["b1"]
        assert params["layer4"]["b1"]["conv2"]["kernel"].shape == (3, 3, 512, 512)


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("model", CONTENT_MODELS)
def test_content_encoder_and_decoder_shapes(model, size):
    n = 4 if size == 64 else 5
    enc = ContentEncoder(model, CONTENT_DIM, size)
    dec = Decoder(model, CONTENT_DIM, POSE_DIM, NC, size)
    x, h_p = _struct(B, size, size, NC), _struct(B, POSE_DIM)
    enc_vars = jax.eval_shape(lambda x: enc.init(_key(0), x, train=True), x)
    (h_c, skips), _ = jax.eval_shape(lambda v, x: enc.apply(v, x, train=True, mutable=["batch_stats"]), enc_vars, x)
    assert h_c.shape == (B, CONTENT_DIM)
    if model == "dcgan":
        assert skips == ()
    elif model == "dcgan_unet":
        widths = (64, 128, 256, 512) + ((512,) if size == 128 else ())
        assert [s.shape for s in skips] == [(B, size >> k, size >> k, c) for k, c in enumerate(widths, 1)]
    else:
        widths = (64, 128, 256, 512) + ((512,) if size == 128 else ())
        assert [s.shape for s in skips] == [(B, size >> k, size >> k, c) for k, c in enumerate(widths)]
    assert tuple(s.shape[1:] for s in skips) == expected_skip_shapes(model, size)
    assert len(skips) in (0, n)

    dec_vars = jax.eval_shape(lambda *a: dec.init(_key(1), *a, train=True), h_c, skips, h_p)
    frames, _ = jax.eval_shape(
        lambda v, *a: dec.apply(v, *a, train=True, mutable=["batch_stats"]), dec_vars, h_c, skips, h_p
    )
    assert frames.shape == (B, size, size, NC)
    assert jax.eval_shape(lambda v, *a: dec.apply(v, *a, train=False), dec_vars, h_c, skips, h_p).shape == frames.shape
    params = dec_vars["params"]
    assert params["upc1"]["conv"]["kernel"].shape == (4, 4, CONTENT_DIM + POSE_DIM, 512)
    if model == "dcgan":
        assert params["upc2"]["conv"]["kernel"].shape == (4, 4, 512, 512 if size == 128 else 256)
        assert params[f"upc{n + 1}"]["kernel"].shape == (4, 4, 64, NC)
    elif model == "dcgan_unet":
        assert params["upc2"]["conv"]["kernel"].shape == (4, 4, 1024, 512 if size == 128 else 256)
        assert params[f"upc{n + 1}"]["kernel"].shape == (4, 4, 128, NC)
    else:
        assert params["upc2"]["l0"]["conv"]["kernel"].shape == (3, 3, 1024, 512)
        assert params[f"upc{n + 1}"]["l0"]["conv"]["kernel"].shape == (3, 3, 128, 64)
        assert params[f"upc{n + 1}"]["l1"]["kernel"].shape == (3, 3, 64, NC)


def test_discriminator_and_lstm_shapes():
    disc = SceneDiscriminator(POSE_DIM)
    h = _struct(B, POSE_DIM)
    variables = jax.eval_shape(lambda a, b: disc.init(_key(0), a, b), h, h)
    assert variables["params"]["fc1"]["kernel"].shape == (2 * POSE_DIM, 100)
    assert variables["params"]["fc3"]["kernel"].shape == (100, 1)
    assert jax.eval_shape(disc.apply, variables, h, h).shape == (B, 1)

    lstm = PoseLSTM(CONTENT_DIM, POSE_DIM, rnn_size=8, rnn_layers=3)
    state = lstm.initial_state(B)
    assert len(state) == 3 and all(h.shape == c.shape == (B, 8) for h, c in state)
    inputs = _struct(B, CONTENT_DIM + POSE_DIM)
    variables = jax.eval_shape(lambda x, s: lstm.init(_key(0), x, s), inputs, state)
    params = variables["params"]
    assert set(params) == {"embed", "lstm_l0", "lstm_l1", "lstm_l2", "output"}
    assert params["lstm_l2"]["kernel_ih"].shape == params["lstm_l2"]["kernel_hh"].shape == (8, 32)
    pred, new_state = jax.eval_shape(lstm.apply, variables, inputs, state)
    assert pred.shape == (B, POSE_DIM)
    assert jax.tree.map(lambda a: a.shape, new_state) == jax.tree.map(lambda a: a.shape, state)


def test_bad_arguments_raise_clear_errors():
    x = _struct(B, 64, 64, NC)
    with pytest.raises(ValueError, match="model must be one of"):
        jax.eval_shape(lambda x: PoseEncoder("vgg", POSE_DIM).init(_key(0), x, train=True), x)
    with pytest.raises(ValueError, match="image_size must be one of"):
        jax.eval_shape(lambda x: ContentEncoder("dcgan", CONTENT_DIM, 96).init(_key(0), x, train=True), x)
    with pytest.raises(ValueError, match=r"expected frames \(B, 128, 128, nc\)"):
        jax.eval_shape(lambda x: PoseEncoder("dcgan", POSE_DIM, 128).init(_key(0), x, train=True), x)
    h_c, h_p = _struct(B, CONTENT_DIM), _struct(B, POSE_DIM)
    unet_skips = tuple(_struct(B, *s) for s in expected_skip_shapes("dcgan_unet", 64))
    for model, skips in (("dcgan", unet_skips), ("dcgan_unet", ()), ("vgg_unet", unet_skips)):
        dec = Decoder(model, CONTENT_DIM, POSE_DIM)
        with pytest.raises(ValueError, match="skips must have shapes"):
            jax.eval_shape(lambda *a, dec=dec: dec.init(_key(0), *a, train=True), h_c, skips, h_p)
    with pytest.raises(ValueError, match="h_p must be"):
        dec = Decoder("dcgan", CONTENT_DIM, POSE_DIM)
        jax.eval_shape(lambda a, b: dec.init(_key(0), a, (), b, train=True), h_c, _struct(B, 7))
    lstm = PoseLSTM(CONTENT_DIM, POSE_DIM, rnn_size=4, rnn_layers=2)
    with pytest.raises(ValueError, match="inputs must be"):
        jax.eval_shape(lambda x: lstm.init(_key(0), x, lstm.initial_state(B)), _struct(B, POSE_DIM))


# ----------------------------------------------------------------------------------------------------------------------
# BatchNorm: torch's training / eval semantics.
# ----------------------------------------------------------------------------------------------------------------------


def test_batchnorm_matches_torch_rule_over_two_steps():
    x1 = _normal(1, 4, 3, 3, 5) * 2.0 + 0.5
    x2 = _normal(2, 4, 3, 3, 5) - 1.0
    bn = BatchNorm()
    variables = bn.init(_key(0), x1, train=True)
    assert np.all(np.asarray(variables["batch_stats"]["mean"]) == 0)  # initialising does not update
    assert np.all(np.asarray(variables["batch_stats"]["var"]) == 1)
    scale = np.asarray(variables["params"]["scale"], np.float64)
    bias = np.asarray(variables["params"]["bias"], np.float64) + 0.3
    variables = {"params": {"scale": variables["params"]["scale"], "bias": jnp.asarray(bias, jnp.float32)}}
    variables["batch_stats"] = {"mean": jnp.zeros(5), "var": jnp.ones(5)}

    run_mean, run_var = np.zeros(5), np.ones(5)
    for x in (x1, x2):
        y, updates = bn.apply(variables, x, train=True, mutable=["batch_stats"])
        xd = x.astype(np.float64).reshape(-1, 5)
        n = xd.shape[0]
        mean, biased = xd.mean(0), xd.var(0)
        expected = (x - mean) / np.sqrt(biased + BN_EPSILON) * scale + bias
        np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-5)
        # torch: running = (1 - 0.1) * running + 0.1 * batch stat, the variance UNBIASED (n / (n - 1)).
        flax_rule = 0.9 * run_var + 0.1 * biased  # what flax's nn.BatchNorm would store
        run_mean = 0.9 * run_mean + 0.1 * mean
        run_var = 0.9 * run_var + 0.1 * biased * n / (n - 1)
        np.testing.assert_allclose(np.asarray(updates["batch_stats"]["mean"]), run_mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(updates["batch_stats"]["var"]), run_var, rtol=1e-5, atol=1e-6)
        assert np.abs(np.asarray(updates["batch_stats"]["var"]) - flax_rule).min() > 1e-3
        variables = {"params": variables["params"], **updates}

    y_eval = bn.apply(variables, x1, train=False)  # eval: running statistics, nothing mutable needed
    expected = (x1 - run_mean) / np.sqrt(run_var + BN_EPSILON) * scale + bias
    np.testing.assert_allclose(np.asarray(y_eval), expected, rtol=1e-5, atol=1e-5)

    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn.apply(variables, x1[:1, :1, :1], train=True, mutable=["batch_stats"])


def test_batchnorm_inside_encoder_updates_running_stats_like_torch():
    net = PoseEncoder("dcgan", POSE_DIM, 64, conv_impl="xla")
    x = _frames(3, batch=3)
    variables = _init(net, x, train=True)

    @jax.jit
    def step(v, x):
        return net.apply(v, x, train=True, mutable=["batch_stats", "intermediates"], capture_intermediates=True)

    _, state = step(variables, x)
    conv_out = np.asarray(state["intermediates"]["c1"]["conv"]["__call__"][0], np.float64).reshape(-1, 64)
    bn_out = np.asarray(state["intermediates"]["c1"]["bn"]["__call__"][0], np.float64).reshape(-1, 64)
    params = variables["params"]["c1"]["bn"]
    scale, bias = np.asarray(params["scale"], np.float64), np.asarray(params["bias"], np.float64)
    mean = conv_out.mean(0)
    np.testing.assert_allclose(
        bn_out, (conv_out - mean) / np.sqrt(conv_out.var(0) + BN_EPSILON) * scale + bias, rtol=1e-4, atol=1e-4
    )
    stats = state["batch_stats"]["c1"]["bn"]
    np.testing.assert_allclose(np.asarray(stats["mean"]), 0.1 * mean, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(np.asarray(stats["var"]), 0.9 + 0.1 * conv_out.var(0, ddof=1), rtol=1e-5, atol=1e-7)


def test_eval_mode_is_per_example_and_train_mode_is_not():
    net = PoseEncoder("dcgan", POSE_DIM, 64, conv_impl="xla")
    x = _frames(4, batch=5)
    variables = _init(net, x[:3], train=True)
    _, updates = jax.jit(lambda v, x: net.apply(v, x, train=True, mutable=["batch_stats"]))(variables, x)
    variables = {"params": variables["params"], **updates}  # non-trivial running statistics
    run = jax.jit(net.apply, static_argnames="train")
    batch_a, batch_b = x[jnp.array([0, 1, 2])], x[jnp.array([0, 3, 4])]
    np.testing.assert_allclose(
        run(variables, batch_a, train=False)[0], run(variables, batch_b, train=False)[0], atol=1e-6
    )

    def train_out(batch):
        return net.apply(variables, batch, train=True, mutable=["batch_stats"])[0]

    assert float(jnp.abs(train_out(batch_a)[0] - train_out(batch_b)[0]).max()) > 1e-3


# ----------------------------------------------------------------------------------------------------------------------
# Outputs, implementations, initialisation.
# ----------------------------------------------------------------------------------------------------------------------


def test_normalize_gives_unit_vectors():
    x = _frames(5, batch=3)
    pose = PoseEncoder("dcgan", POSE_DIM, 64, normalize=True, conv_impl="xla")
    content = ContentEncoder("dcgan", CONTENT_DIM, 64, normalize=True, conv_impl="xla")
    h_p = jax.jit(lambda v, x: pose.apply(v, x, train=False))(_init(pose, x, train=False), x)
    h_c, skips = jax.jit(lambda v, x: content.apply(v, x, train=False))(_init(content, x, train=False), x)
    assert skips == ()
    lstm = PoseLSTM(CONTENT_DIM, POSE_DIM, rnn_size=8, rnn_layers=2, normalize=True)
    inputs = jnp.concatenate([h_p, h_c], axis=-1)
    pred, _ = lstm.apply(lstm.init(_key(1), inputs, lstm.initial_state(3)), inputs, lstm.initial_state(3))
    for v in (h_p, h_c, pred):
        np.testing.assert_allclose(np.linalg.norm(np.asarray(v), axis=-1), 1.0, rtol=1e-5)


def test_fast_and_xla_agree_on_encoder_decoder_forward():
    x = _frames(6)
    pose = {impl: PoseEncoder("dcgan", POSE_DIM, 64, conv_impl=impl) for impl in ("fast", "xla")}
    content = {impl: ContentEncoder("dcgan_unet", CONTENT_DIM, 64, conv_impl=impl) for impl in ("fast", "xla")}
    dec = {impl: Decoder("dcgan_unet", CONTENT_DIM, POSE_DIM, NC, 64, conv_impl=impl) for impl in ("fast", "xla")}
    h_c, skips = _struct(B, CONTENT_DIM), tuple(_struct(B, *s) for s in expected_skip_shapes("dcgan_unet", 64))
    variables = (
        _init(pose["xla"], x, train=True),
        _init(content["xla"], x, train=True),
        jax.jit(lambda *a: dec["xla"].init(_key(2), *a, train=True))(
            *jax.tree.map(lambda s: jnp.zeros(s.shape), (h_c, skips, _struct(B, POSE_DIM)))
        ),
    )
    outputs = {}
    for impl in ("fast", "xla"):

        @jax.jit
        def forward(variables, x, impl=impl):
            vp, vc, vd = variables
            h_p, _ = pose[impl].apply(vp, x, train=True, mutable=["batch_stats"])
            (h_c, skips), _ = content[impl].apply(vc, x, train=True, mutable=["batch_stats"])
            frames, _ = dec[impl].apply(vd, h_c, skips, h_p, train=True, mutable=["batch_stats"])
            return h_p, h_c, frames

        outputs[impl] = forward(variables, x)
    assert outputs["xla"][2].shape == (B, 64, 64, NC)
    assert float(outputs["xla"][2].min()) > 0.0 and float(outputs["xla"][2].max()) < 1.0
    for fast, ref in zip(outputs["fast"], outputs["xla"], strict=True):
        np.testing.assert_allclose(np.asarray(fast), np.asarray(ref), atol=1e-5)


def test_init_statistics_follow_the_originals():
    x = _struct(1, 64, 64, NC)
    variables = jax.jit(lambda: ContentEncoder("vgg_unet", CONTENT_DIM, 64).init(_key(0), x, train=True))()
    scales = np.concatenate(_leaves(variables["params"], "scale"))
    assert scales.size > 2500
    assert abs(scales.mean() - 1.0) < 2e-3 and abs(scales.std() - 0.02) < 2e-3
    kernels = np.concatenate([k.ravel() for k in _leaves(variables["params"], "kernel")])
    assert abs(kernels.mean()) < 1e-4 and abs(kernels.std() - 0.02) < 5e-4
    assert all(np.all(b == 0) for b in _leaves(variables["params"], "bias"))
    assert all(np.all(m == 0) for m in _leaves(variables["batch_stats"], "mean"))
    assert all(np.all(v == 1) for v in _leaves(variables["batch_stats"], "var"))
    disc = jax.jit(lambda: SceneDiscriminator(POSE_DIM).init(_key(1), jnp.zeros((1, 5)), jnp.zeros((1, 5))))()
    fc2 = np.asarray(disc["params"]["fc2"]["kernel"])
    assert abs(fc2.std() - 0.02) < 2e-3 and np.all(np.asarray(disc["params"]["fc2"]["bias"]) == 0)


def test_discriminator_probabilities_are_sigmoid_of_logits():
    disc = SceneDiscriminator(POSE_DIM, sd_nf=16)
    a, b = _normal(7, 6, POSE_DIM), _normal(8, 6, POSE_DIM)
    variables = disc.init(_key(0), a, b)
    variables = jax.tree.map(lambda w: w * 30.0, variables)  # make the logits non-trivial
    probs, logits = disc.apply(variables, a, b), disc.apply(variables, a, b, return_logits=True)
    assert probs.shape == logits.shape == (6, 1)
    np.testing.assert_allclose(probs, jax.nn.sigmoid(logits), rtol=1e-6)
    assert float(jnp.abs(logits).max()) > 0.1


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def test_lstm_step_matches_the_torch_equations_and_scans():
    lstm = PoseLSTM(CONTENT_DIM, POSE_DIM, rnn_size=6, rnn_layers=2)
    inputs = _normal(8, 3, CONTENT_DIM + POSE_DIM)
    state = lstm.initial_state(3)
    assert all(np.all(np.asarray(t) == 0) for pair in state for t in pair)
    variables = lstm.init(_key(0), inputs, state)
    p = jax.tree.map(lambda w: np.asarray(w, np.float64), variables["params"])
    kih = p["lstm_l0"]["kernel_ih"]
    assert np.abs(kih).max() <= 1 / np.sqrt(6) and kih.std() > 0.1  # torch's U(+-1/sqrt(H)), not N(0, 0.02)

    state = tuple((jnp.full((3, 6), 0.1 * k), jnp.full((3, 6), -0.2 * k)) for k in range(2))
    pred, new_state = lstm.apply(variables, inputs, state)
    h_in = inputs @ p["embed"]["kernel"] + p["embed"]["bias"]
    for k in range(2):
        cell = p[f"lstm_l{k}"]
        h, c = (np.asarray(t, np.float64) for t in state[k])
        gates = h_in @ cell["kernel_ih"] + cell["bias_ih"] + h @ cell["kernel_hh"] + cell["bias_hh"]
        i, f, g, o = np.split(gates, 4, axis=-1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h_in = _sigmoid(o) * np.tanh(c)
        np.testing.assert_allclose(new_state[k][0], h_in, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(new_state[k][1], c, rtol=1e-5, atol=1e-6)
    expected = np.tanh(h_in @ p["output"]["kernel"] + p["output"]["bias"])
    np.testing.assert_allclose(pred, expected, rtol=1e-5, atol=1e-6)

    sequence = jnp.asarray(_normal(9, 4, 3, CONTENT_DIM + POSE_DIM))

    def step(carry, x):
        out, carry = lstm.apply(variables, x, carry)
        return carry, out

    _, preds = jax.lax.scan(step, lstm.initial_state(3), sequence)
    assert preds.shape == (4, 3, POSE_DIM)
    first, _ = lstm.apply(variables, sequence[0], lstm.initial_state(3))
    np.testing.assert_allclose(preds[0], first, rtol=1e-5, atol=1e-6)
