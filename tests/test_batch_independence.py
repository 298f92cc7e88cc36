"""Every public per-sequence function computes sequence i inside a batch exactly as it computes it alone.

Sizes where layout bugs show: B 4 sequences of T 5 frames, VDSM rnn_layers 3 (B != L, T != B), DRNet LSTM 2
layers. A state reshaped across the batch axis (e.g. a (B, L·H) vector read as (L, B, H) row-major), a
transpose of the wrong axes or a reduction over the batch would make row i depend on the other rows. Each
comparison: |inside - alone| <= 1e-6 · max(1, |alone|) (float32 rounding of the differently shaped XLA:CPU
programs; 0 or ~1e-7 in practice); the ELBO's KL terms on 1e-5 of the batch's largest |term| (see the test).

What each test compares, per sequence i of the batch against the batch [i] alone:
  VDSM (stage 1 and stage 2 models): `encode` (identity, z_loc, z_scale, dynamics), `decode`, `reconstruct`
    (stage 2: the original's test_sequence chain), `swap`, `generate_with_keys` (one key per sequence) and the
    per-sequence terms of the negative ELBO (`objectives.elbo_terms_per_sequence`, scored at the same latents).
  DRNet with eval-mode BatchNorm (running averages): `content` (code and skips), `pose`, `decode`, `analogy`,
    `predict` (several chunks), `one_step_predictions`.
Couplings the originals have on purpose are checked as they define them instead:
  - train-mode BatchNorm (DRNet's stage-1 networks, and stage 2 in the original, `batch_statistics=True` here):
    a sequence's output depends on the rest of its batch only through the batch statistics, so the result is
    equivariant under a permutation of the batch, and changes when another member changes;
  - the scene discriminator's batch: rows [:half] pair h_p1[i] with h_p2[perm[i]] for a permutation of
    range(half) (target 1), rows [half:] keep their own clip's pose (target 0), as `train_scene_discriminator`
    in edenton/drnet-py.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config_file

from drnet_jax import DRNet
from drnet_jax import losses as drnet_losses
from drnet_jax.models import DRNetModules
from vdsm_jax import objectives
from vdsm_jax.api import VDSM, prior_draws
from vdsm_jax.models import STAGE1_KEYS, VDSMModules

B, T = 4, 5
VDSM_RNN_LAYERS = 3
ANNEAL = {"temp_id": 3.0, "anneal_id": 0.7, "anneal_t": 2.5, "anneal_dynamics": 0.4}


def _assert_rows_independent(name: str, inside, alone_rows, scale=None) -> None:
    """inside (B, ...) against the B results computed alone (each (1, ...)): |difference| <= 1e-6 · max(1, scale),
    scale = |alone| elementwise unless given."""
    inside = np.asarray(inside, np.float64)
    alone = np.concatenate([np.asarray(a, np.float64) for a in alone_rows], axis=0)
    assert inside.shape == alone.shape, (name, inside.shape, alone.shape)
    assert np.ptp(alone, axis=0).max() > 1e-3, f"{name}: the sequences' results do not differ; the test is vacuous"
    excess = np.abs(inside - alone) - 1e-6 * np.maximum(1.0, np.abs(alone) if scale is None else scale)
    assert excess.max() <= 0, (
        f"{name}: row differs from the sequence computed alone by {np.abs(inside - alone).max():.3g}"
    )


def _videos(seed: int, batch: int = B, frames: int = T) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low = rng.uniform(size=(batch * frames, 8, 8, 3))
    smooth = np.asarray(jax.image.resize(low, (batch * frames, 64, 64, 3), "linear"))
    return (
        np.clip(smooth + 0.05 * rng.normal(size=smooth.shape), 0, 1)
        .astype(np.float32)
        .reshape(batch, frames, 64, 64, 3)
    )


# ---------------------------------------------------------------------------------------------------------------------
# VDSM
# ---------------------------------------------------------------------------------------------------------------------


def _vdsm_config(stage: int, **overrides):
    config = load_config_file("configs/vdsm/tiny.py", f"stage{stage}")
    config.rnn_layers = VDSM_RNN_LAYERS
    config.update(overrides)
    return config


def _random_like(abstract, seed: int, gain=lambda path: 1.0) -> dict:
    """Seeded host-side values for a tree of parameter shapes (no init program to compile, which on XLA:CPU takes
    ~20 s for these networks): arrays of rank >= 2 ~ N(0, gain / fan_in) with fan_in the product of all but the
    last axis, vectors ~ 0.1 · N(0, 1)."""
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        shape = tuple(leaf.shape)
        if len(shape) < 2:
            return (0.1 * rng.normal(size=shape)).astype(np.float32)
        std = np.sqrt(gain(jax.tree_util.keystr(path)) / np.prod(shape[:-1]))
        return (std * rng.normal(size=shape)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, abstract)


@functools.lru_cache(maxsize=1)
def _lively_vdsm_params() -> dict:
    """Random stage-2 parameters (the stage-1 networks among them) whose every part varies at order 1: biases and
    learned initial states non-zero, the decoder's experts on a per-expert fan-in (Cin · taps) so pixels are not
    all ~0.5, the identity-activation encoder's convs at gain 2 so the codes do not shrink towards 0."""
    modules = VDSMModules.from_config(_vdsm_config(2))
    abstract = jax.eval_shape(lambda key: modules.init(key, 2), jax.random.key(0))
    # torch's default init has variance 1 / (3 fan_in); the encoder's convs are doubled (variance x4).
    params = _random_like(abstract, seed=3, gain=lambda path: 4 / 3 if path.startswith("['enc']['conv") else 1 / 3)
    rng = np.random.default_rng(4)
    for layer in range(1, 6):  # each expert on its own fan-in, Cin · input taps per output pixel (k4 s1 p0 on
        shape = params["dec"][f"EW{layer}"].shape  # 1x1, then k4 s2 p1), as a single generator would be
        taps = 1 if layer == 1 else 4
        params["dec"][f"EW{layer}"] = (np.sqrt(2.0 / (shape[3] * taps)) * rng.normal(size=shape)).astype(np.float32)
    return params


def _params_of_stage(stage: int) -> dict:
    params = _lively_vdsm_params()
    return params if stage == 2 else {k: params[k] for k in STAGE1_KEYS}


@pytest.fixture(scope="module", params=[1, 2], ids=["stage1", "stage2"])
def vdsm_model(request) -> VDSM:
    config = _vdsm_config(request.param)
    return VDSM(VDSMModules.from_config(config), _params_of_stage(request.param), config)


def test_vdsm_api_is_per_sequence(vdsm_model):
    model = vdsm_model
    videos = _videos(0)
    alone = lambda fn, *arrays: [fn(*(a[i : i + 1] for a in arrays)) for i in range(B)]

    codes = model.encode(videos)
    assert ("dynamics" in codes) == (model.stage == 2)
    alone_codes = alone(model.encode, videos)
    for key, value in codes.items():
        _assert_rows_independent(f"encode/{key}", value, [c[key] for c in alone_codes])

    rng = np.random.default_rng(1)
    z = rng.normal(size=(B, T, model.modules.z_dim)).astype(np.float32)
    identity = rng.dirichlet(np.ones(model.modules.n_e_w), size=B).astype(np.float32)
    _assert_rows_independent("decode", model.decode(z, identity), alone(model.decode, z, identity))
    _assert_rows_independent("reconstruct", model.reconstruct(videos), alone(model.reconstruct, videos))
    identity_from = videos[[2, 0, 3, 1]]
    _assert_rows_independent("swap", model.swap(identity_from, videos), alone(model.swap, identity_from, videos))

    keys = jax.random.split(jax.random.key(7), B)
    samples = model.generate_with_keys(keys, T)
    np.testing.assert_array_equal(model.generate(jax.random.key(7), B, T), samples)
    alone_samples = [model.generate_with_keys(keys[i : i + 1], T) for i in range(B)]
    if model.stage == 1:
        _assert_rows_independent("generate_with_keys", samples, alone_samples)
        return
    # Stage 2 samples pass through T-1 steps of the untrained (kaiming-normal) prior transition, whose chain grows
    # to |z| ~ 10: its rounding (1 ulp ~ 1e-6 there) is checked on z's own scale, and reaches the frames through
    # the decoder as ~1.3e-6, so the frames are compared at 2e-6.
    draws = jax.vmap(lambda key: prior_draws(model.modules, key, T))(keys)
    chain = lambda rows: model.modules.prior_chain(model.params, draws["dz"][rows], draws["noise"][rows])
    _assert_rows_independent("prior_chain", chain(slice(None)), [chain(slice(i, i + 1)) for i in range(B)])
    _assert_rows_independent("generate_with_keys", samples, alone_samples, scale=2.0)


_elbo_terms_per_sequence = jax.jit(objectives.elbo_terms_per_sequence, static_argnums=(0, 1))


def test_vdsm_elbo_terms_are_per_sequence(vdsm_model):
    model = vdsm_model
    videos = jnp.asarray(_videos(1))
    anneal = {k: jnp.float32(v) for k, v in ANNEAL.items()}
    terms, latents = _elbo_terms_per_sequence(
        model.modules, model.stage, model.params, videos, anneal, jax.random.key(2)
    )
    expected_sites = {1: {"ID", "z"}, 2: {"ID", "dz", "z_0", "z"}}[model.stage]
    assert set(latents) == expected_sites and all(v.shape[0] == B for v in latents.values())
    alone = [
        _elbo_terms_per_sequence(
            model.modules,
            model.stage,
            model.params,
            videos[i : i + 1],
            anneal,
            None,
            {k: v[i : i + 1] for k, v in latents.items()},
        )[0]
        for i in range(B)
    ]
    for name, value in terms.items():
        assert value.shape == (B,), (name, value.shape)
        # A KL term is a difference of log-densities summed over frames: its rounding is that of its summands,
        # whose sensitivity to the codes' last bit is 1/scale, so it is compared on the batch's scale of the term.
        scale = 10 * np.abs(np.asarray(value)).max()
        _assert_rows_independent(f"elbo/{name}", value, [a[name] for a in alone], scale)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _batch_terms_and_guide_draws(modules, stage, params, videos, anneal, rng):
    """`elbo_terms(rng)` and the training guide's draws for that rng (batch-major)."""
    import numpyro

    guide = objectives.MODEL_AND_GUIDE[stage][1]
    trace = numpyro.handlers.trace(numpyro.handlers.seed(guide, jax.random.split(rng)[1])).get_trace(
        modules, params, videos, anneal
    )
    draws = {
        name: jnp.moveaxis(site["value"], objectives.sequence_axis(site), 0)
        for name, site in trace.items()
        if site["type"] == "sample"
    }
    return objectives.elbo_terms(modules, stage, params, videos, anneal, rng), draws


@pytest.mark.parametrize("stage", [1, 2])
def test_per_sequence_terms_add_up_to_the_batch_elbo(stage):
    """Summed over sequences, the per-sequence terms at the training guide's own draws are `elbo_terms` (dropout 0,
    so the training guide and the evaluation guide define the same densities)."""
    modules = VDSMModules.from_config(_vdsm_config(stage, rnn_dropout=0.0))
    params = _params_of_stage(stage)
    videos = jnp.asarray(_videos(2, batch=3))
    anneal = {k: jnp.float32(v) for k, v in ANNEAL.items()}
    batch_terms, draws = _batch_terms_and_guide_draws(modules, stage, params, videos, anneal, jax.random.key(4))
    terms, _ = _elbo_terms_per_sequence(modules, stage, params, videos, anneal, None, draws)
    assert sorted(terms) == sorted(batch_terms)
    for name, value in terms.items():
        np.testing.assert_allclose(float(value.sum()), float(batch_terms[name]), rtol=2e-6, atol=1e-4, err_msg=name)


def test_elbo_terms_per_sequence_needs_exactly_one_source():
    modules, params = VDSMModules.from_config(_vdsm_config(2)), _params_of_stage(2)
    videos = jax.ShapeDtypeStruct((B, T, 64, 64, 3), jnp.float32)
    score = lambda **kw: jax.eval_shape(
        lambda v: objectives.elbo_terms_per_sequence(modules, 2, params, v, ANNEAL, **kw), videos
    )
    with pytest.raises(ValueError, match="exactly one of rng"):
        score()
    with pytest.raises(ValueError, match=r"latents must hold the sites \['ID', 'dz', 'z', 'z_0'\]; got \['ID'\]"):
        score(latents={"ID": jnp.zeros((B, 3))})


def test_generate_keys_are_checked(vdsm_model):
    with pytest.raises(ValueError, match="keys must be N >= 1 PRNG keys"):
        vdsm_model.generate_with_keys(jax.random.key(0), T)
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        vdsm_model.generate(jax.random.key(0), 0, T)


# ---------------------------------------------------------------------------------------------------------------------
# DRNet
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def drnet_parts():
    """Tiny stage-2 DRNet variables (dcgan_unet content, dcgan pose, LSTM 8x2) with non-trivial running averages."""
    config = load_config_file("configs/drnet/tiny.py", "stage2")
    modules = DRNetModules.from_config(config)
    abstract_params, abstract_stats = jax.eval_shape(modules.init_stage1, jax.random.key(0))
    abstract_params = {**abstract_params, "lstm": jax.eval_shape(modules.init_lstm, jax.random.key(1))}
    params = _random_like(abstract_params, seed=4, gain=lambda path: 1 / 3)
    params = jax.tree_util.tree_map_with_path(  # BatchNorm scales near 1, as the originals' N(1, 0.02)
        lambda path, x: x + 1.0 if jax.tree_util.keystr(path).endswith("['bn']['scale']") else x, params
    )

    @jax.jit
    def running_averages(params, batch_stats, frames):  # a few train-mode passes: averages of real activations
        for _ in range(3):
            (h_c, skips), batch_stats = modules.encode_content(params, batch_stats, frames, train=True)
            h_p, batch_stats = modules.encode_pose(params, batch_stats, frames, train=True)
            _, batch_stats = modules.decode(params, batch_stats, h_c, skips, h_p, train=True)
        return batch_stats

    initial = jax.tree_util.tree_map_with_path(
        lambda path, x: (
            np.ones(x.shape, np.float32)
            if jax.tree_util.keystr(path).endswith("['var']")
            else np.zeros(x.shape, np.float32)
        ),
        abstract_stats,
    )
    batch_stats = jax.device_get(running_averages(params, initial, jnp.asarray(_videos(3, batch=8, frames=1)[:, 0])))
    return modules, params, batch_stats, config


def test_drnet_api_with_running_averages_is_per_sequence(drnet_parts):
    modules, params, batch_stats, config = drnet_parts
    model = DRNet(modules, params, batch_stats, config)
    videos = _videos(4)
    frames = videos[:, 0]
    alone = lambda fn, *arrays: [fn(*(a[i : i + 1] for a in arrays)) for i in range(B)]

    code = model.content(frames)
    alone_codes = alone(model.content, frames)
    _assert_rows_independent("content", code["content"], [c["content"] for c in alone_codes])
    for k, skip in enumerate(code["skips"]):
        _assert_rows_independent(f"content/skip{k}", skip, [c["skips"][k] for c in alone_codes])
    _assert_rows_independent("pose", model.pose(frames), alone(model.pose, frames))

    poses = model.pose(videos[:, 3])
    decode_alone = [
        model.decode(
            {"content": code["content"][i : i + 1], "skips": tuple(s[i : i + 1] for s in code["skips"])},
            poses[i : i + 1],
        )
        for i in range(B)
    ]
    _assert_rows_independent("decode", model.decode(code, poses), decode_alone)
    pose_videos = videos[[1, 3, 0, 2]]
    _assert_rows_independent("analogy", model.analogy(frames, pose_videos), alone(model.analogy, frames, pose_videos))
    predict = lambda v: model.predict(v, 7, chunk_size=3)
    _assert_rows_independent("predict", predict(videos), alone(predict, videos))
    one_step = lambda v: model.one_step_predictions(v, 2)
    _assert_rows_independent("one_step_predictions", one_step(videos), alone(one_step, videos))


def test_drnet_train_mode_batchnorm_couples_only_through_batch_statistics(drnet_parts):
    """The original's stage-2 code keeps EC, EP and D in train mode: each sequence is normalised with its batch's
    statistics. That coupling is symmetric in the batch (a permuted batch gives the permuted results) and real
    (another member changes sequence 0's result)."""
    modules, params, batch_stats, config = drnet_parts
    model = DRNet(modules, params, batch_stats, config, batch_statistics=True)
    videos = _videos(5)
    perm = np.array([2, 0, 3, 1])
    checks = {
        "content": lambda v: model.content(v[:, 0])["content"],
        "pose": lambda v: model.pose(v[:, 0]),
        "analogy": lambda v: model.analogy(v[:, 0], v[::-1]),
        "predict": lambda v: model.predict(v[:, :2], 3),
    }
    other = videos.copy()
    other[1:] = _videos(6)[1:]
    for name, fn in checks.items():
        result = fn(videos)
        np.testing.assert_allclose(fn(videos[perm]), result[perm], rtol=0, atol=2e-5, err_msg=name)
        assert np.abs(fn(other)[0] - result[0]).max() > 1e-4, f"{name}: train-mode BatchNorm did not couple the batch"


def test_scene_discriminator_batch_pairs_as_the_original(drnet_parts):
    """Rows [:half] of the discriminator's batch pair h_p1[i] with h_p2[perm[i]] (mostly another clip, target 1),
    rows [half:] pair each clip with itself (target 0); EP in train mode on x_c1 and on x_c2."""
    modules, params, batch_stats, _ = drnet_parts
    videos = jnp.asarray(_videos(7, batch=6, frames=4))
    key = jax.random.key(9)
    h_p1, mixed, targets, _ = drnet_losses.discriminator_inputs(modules, params, batch_stats, videos, key)
    ep1, _ = modules.encode_pose(params, batch_stats, videos[:, drnet_losses.FRAME_C1], train=True)
    ep2, _ = modules.encode_pose(params, batch_stats, videos[:, drnet_losses.FRAME_C2], train=True)
    half = 3
    perm = np.asarray(drnet_losses.discriminator_pairs(ep2, key)[2])
    np.testing.assert_allclose(h_p1, ep1, atol=1e-6)
    np.testing.assert_allclose(mixed[:half], np.asarray(ep2)[perm], atol=1e-6)
    np.testing.assert_allclose(mixed[half:], ep2[half:], atol=1e-6)
    np.testing.assert_array_equal(np.asarray(targets)[:, 0], [1, 1, 1, 0, 0, 0])
