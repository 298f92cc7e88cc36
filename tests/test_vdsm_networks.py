"""VDSM network shapes for the README configs, the batched MoE decoder, and conv implementations agreeing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config_file
from tests_helpers import tiny_modules

from vdcore.conv import conv_transpose2d
from vdsm_jax.config_defaults import stage_config
from vdsm_jax.models import VDSMModules
from vdsm_jax.networks import ImageEncoder

README_CONFIGS = [
    ("configs/vdsm/mug_fed.py", dict(z_dim=30, n_e_w=15, dynamics_dim=50, rnn_dim=512, rnn_layers=3, seq_len=20)),
    ("configs/vdsm/sprites.py", dict(z_dim=30, n_e_w=40, dynamics_dim=50, rnn_dim=512, rnn_layers=3, seq_len=16)),
    # the 2-hour CPU config keeps the architecture of the README one (sizes of batches and schedules only)
    ("configs/vdsm/sprites_fast.py", dict(z_dim=30, n_e_w=40, dynamics_dim=50, rnn_dim=512, rnn_layers=3, seq_len=16)),
    ("configs/vdsm/moving_mnist.py", {}),
    ("configs/vdsm/pendulum.py", {}),
    ("configs/vdsm/quickstart.py", {}),
]


@pytest.mark.parametrize("path,expected", README_CONFIGS)
def test_network_shapes_for_every_config(path, expected):
    config = stage_config(load_config_file(path, "stage1"), 2)
    for key, value in expected.items():
        if key != "seq_len":
            assert config[key] == value, (path, key)
    if "seq_len" in expected:
        assert stage_config(load_config_file(path, "stage1"), 1).seq_len == expected["seq_len"]
    modules = VDSMModules.from_config(config)
    b, t = 2, config.seq_len
    z, e, d, h, n_layers = config.z_dim, config.n_e_w, config.dynamics_dim, config.rnn_dim, config.rnn_layers
    params = jax.eval_shape(lambda: modules.init(jax.random.key(0), 2, config.image_size))
    videos = jax.ShapeDtypeStruct((b, t, 64, 64, config.nc), jnp.float32)
    z_loc, z_scale, id_loc, id_scale = jax.eval_shape(modules.encode_frames, params, videos)
    assert z_loc.shape == z_scale.shape == (b, t, z) and id_loc.shape == id_scale.shape == (b, e)
    dz_loc, dz_scale = jax.eval_shape(modules.dynamics_posterior, params, z_loc)
    assert dz_loc.shape == dz_scale.shape == (b, d)
    assert jax.eval_shape(lambda p, dz: modules.dynamics_rnn(p, dz, t), params, dz_loc).shape == (b, t, h)
    chain = jax.eval_shape(lambda p, dz: modules.latent_chain_from_dynamics(p, dz, t), params, dz_loc)
    assert chain.shape == (b, t, z)
    logits = jax.eval_shape(modules.decode_logits, params, z_loc, id_loc)
    assert logits.shape == (b, t, 64, 64, config.nc)
    assert params["dec"]["EW1"].shape == (e, 4, 4, z + e, 512)
    assert params["dec"]["EW5"].shape == (e, 4, 4, 64, config.nc)
    assert params["seq_enc"]["seq2seq_enc"][f"l{n_layers - 1}_reverse"]["kernel_hh"].shape == (h, 4 * h)
    assert params["seq_enc"]["cats"]["kernel"].shape == (2 * n_layers * h, 2 * d)
    assert params["seq_dec"]["dz_to_dec_h"]["kernel"].shape == (d, n_layers * h)
    assert params["transitions"]["lin_z_to_loc"]["kernel"].shape == (z, z)


def test_batched_moe_decoder_equals_explicit_per_sequence_blend():
    modules = tiny_modules()
    params = modules.init(jax.random.key(0), 1)
    params["dec"] = jax.tree.map(lambda w: 30.0 * w + 0.001, params["dec"])
    z = jax.random.normal(jax.random.key(1), (3, 2, modules.z_dim))
    weights = jax.nn.softmax(jax.random.normal(jax.random.key(2), (3, modules.n_e_w)), axis=-1)
    batched = modules.decode_logits(params, z, weights)

    dec = params["dec"]
    for b in range(3):
        x = jnp.concatenate([z[b], jnp.broadcast_to(weights[b], (2, modules.n_e_w))], -1)[:, None, None, :]
        for layer in range(5):
            kernel = sum(weights[b, k] * dec[f"EW{layer + 1}"][k] for k in range(modules.n_e_w))
            bias = sum(weights[b, k] * dec[f"EB{layer + 1}"][k] for k in range(modules.n_e_w))
            stride, padding = (1, 0) if layer == 0 else (2, 1)
            x = conv_transpose2d(x, kernel, bias, stride=stride, padding=padding, impl="xla")
            if layer < 4:
                x = jax.nn.leaky_relu(x, 0.01)
        scale = float(jnp.max(jnp.abs(x)))
        assert scale > 0.1  # the experts are scaled up so the output is far from zero
        np.testing.assert_allclose(batched[b], x, rtol=0, atol=1e-5 * scale)


def test_fast_and_xla_convolutions_agree_on_encoder_and_decoder():
    fast, xla = tiny_modules(conv_impl="fast"), tiny_modules(conv_impl="xla")
    params = fast.init(jax.random.key(0), 1)
    videos = jax.random.uniform(jax.random.key(3), (2, 2, 64, 64, 3))
    encoded = [jax.jit(m.encode_frames)(params, videos) for m in (fast, xla)]  # compiled: op by op is slower
    for a, b in zip(*encoded, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    z = jax.random.normal(jax.random.key(4), (2, 2, fast.z_dim))
    weights = jax.nn.softmax(jax.random.normal(jax.random.key(5), (2, fast.n_e_w)), axis=-1)
    decoded = [jax.jit(m.decode_logits)(params, z, weights) for m in (fast, xla)]
    np.testing.assert_allclose(*decoded, atol=1e-5)


def test_encoder_activation_quirk_is_switchable():
    modules = tiny_modules()
    params = modules.init(jax.random.key(0), 1)
    videos = jax.random.uniform(jax.random.key(3), (1, 1, 64, 64, 3))
    identity_act = modules.encoder.apply({"params": params["enc"]}, videos[0])
    leaky = ImageEncoder(modules.z_dim, modules.n_e_w, act_slope=0.2).apply({"params": params["enc"]}, videos[0])
    assert not np.allclose(identity_act[0], leaky[0])
    # slope 1.0 makes the conv stack linear: the z_loc head is affine in the input.
    f = lambda x: modules.encoder.apply({"params": params["enc"]}, x)[0]
    zero = f(jnp.zeros_like(videos[0]))
    np.testing.assert_allclose(f(2 * videos[0]) - zero, 2 * (f(videos[0]) - zero), rtol=1e-4, atol=1e-4)
