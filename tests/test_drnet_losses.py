"""DRNet objectives: the discriminator batch, every loss term against a direct numpy computation, what is
detached, teacher forcing, and BatchNorm's train/eval behaviour in stage 2."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config_file

from drnet_jax import losses
from drnet_jax.config_defaults import stage_config
from drnet_jax.models import DRNetModules
from drnet_jax.state import init_state
from drnet_jax.train import make_train_step

B, T = 4, 5


@pytest.fixture(scope="module")
def setup():
    config = stage_config(load_config_file("configs/drnet/tiny.py", "both"), 2)
    modules = DRNetModules.from_config(config)
    params, stats = jax.jit(modules.init_stage1)(jax.random.key(0))
    params["lstm"] = jax.jit(modules.init_lstm)(jax.random.key(1))
    # Non-trivial running averages, so train mode (batch statistics) and eval mode differ visibly.
    stats = jax.tree.map(lambda x: x + 0.3 * jax.random.uniform(jax.random.key(2), x.shape), stats)
    videos = jax.random.uniform(jax.random.key(3), (B, T, 64, 64, 3))
    return config, modules, params, stats, videos


def np_bce(probabilities, targets):
    p, t = np.asarray(probabilities, np.float64), np.asarray(targets, np.float64)
    return float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def test_mse_and_bce_match_torch_definitions():
    a, b = np.random.default_rng(0).normal(size=(2, 6, 3))
    assert float(losses.mse(a, b)) == pytest.approx(np.mean((a - b) ** 2), rel=1e-6)
    logits = np.array([[-3.0], [0.2], [1.5], [7.0]])
    targets = np.array([[1.0], [0.0], [1.0], [0.0]])
    assert float(losses.bce_with_logits(logits, targets)) == pytest.approx(np_bce(sigmoid(logits), targets), rel=1e-5)
    assert float(losses.bce_with_logits(logits, 0.5)) == pytest.approx(np_bce(sigmoid(logits), 0.5), rel=1e-5)
    # The maximum-entropy target is minimised at p = 0.5, where it equals log 2.
    assert float(losses.bce_with_logits(np.zeros((5, 1)), 0.5)) == pytest.approx(np.log(2), rel=1e-6)


@pytest.mark.parametrize("batch", [8, 7])
def test_discriminator_batch_permutes_the_first_half_only(batch):
    half = batch // 2
    h_p2 = jnp.arange(batch, dtype=jnp.float32)[:, None] * jnp.ones((1, 3))
    seen = set()
    for seed in range(20):
        mixed, targets, perm = losses.discriminator_pairs(h_p2, jax.random.key(seed))
        mixed, targets, perm = np.asarray(mixed), np.asarray(targets), np.asarray(perm)
        assert sorted(perm.tolist()) == list(range(half))
        np.testing.assert_array_equal(mixed[:half, 0], perm)  # rows [:half] come from rows [:half], permuted
        np.testing.assert_array_equal(mixed[half:], np.asarray(h_p2)[half:])  # rows [half:] untouched
        np.testing.assert_array_equal(targets[:, 0], [1.0] * half + [0.0] * (batch - half))
        seen.add(tuple(perm))
    assert len(seen) > 5  # a fresh permutation per key
    again = losses.discriminator_pairs(h_p2, jax.random.key(3))[2]
    np.testing.assert_array_equal(again, losses.discriminator_pairs(h_p2, jax.random.key(3))[2])


def test_discriminator_accuracy_counts_as_the_original():
    logits = np.array([[2.0], [-1.0], [0.5], [-3.0], [0.0], [4.0]])  # half = 3: targets 1, 1, 1, 0, 0, 0
    probabilities = sigmoid(logits)[:, 0]
    expected = (np.sum(probabilities[:3] > 0.5) + np.sum(probabilities[3:] <= 0.5)) / 6
    assert float(losses.discriminator_accuracy(logits)) == pytest.approx(expected)
    assert expected == pytest.approx(4 / 6)


def _ep_train(modules, params, stats, frames):
    return np.array(modules.encode_pose(params, stats, frames, train=True)[0])


def test_discriminator_loss_against_numpy(setup):
    _, modules, params, stats, videos = setup
    key = jax.random.key(7)
    x = videos[:, :4]
    h_p1, h_p2, targets, new_stats = losses.discriminator_inputs(modules, params, stats, x, key)
    expected_p1 = _ep_train(modules, params, stats, x[:, 0])
    expected_p2 = _ep_train(modules, params, stats, x[:, 1])
    perm = np.asarray(losses.discriminator_pairs(jnp.asarray(expected_p2), key)[2])
    expected_p2[: B // 2] = expected_p2[perm]
    np.testing.assert_allclose(h_p1, expected_p1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_p2, expected_p2, rtol=1e-5, atol=1e-6)
    # The discriminator step runs EP in train mode: EP's running averages move (twice), the others do not.
    assert not np.allclose(new_stats["pose_encoder"]["c1"]["bn"]["mean"], stats["pose_encoder"]["c1"]["bn"]["mean"])
    jax.tree.map(np.testing.assert_array_equal, new_stats["content_encoder"], stats["content_encoder"])

    bce, logits = losses.discriminator_loss(modules, params, h_p1, h_p2, targets)
    fc = params["scene_discriminator"]
    hidden = np.maximum(np.concatenate([expected_p1, expected_p2], 1) @ fc["fc1"]["kernel"] + fc["fc1"]["bias"], 0)
    hidden = np.maximum(hidden @ fc["fc2"]["kernel"] + fc["fc2"]["bias"], 0)
    np_logits = hidden @ fc["fc3"]["kernel"] + fc["fc3"]["bias"]
    np.testing.assert_allclose(logits, np_logits, rtol=1e-4, atol=1e-6)
    assert float(bce) == pytest.approx(np_bce(sigmoid(np_logits), np.asarray(targets)), rel=1e-5)


def test_main_loss_terms_and_detached_targets(setup):
    config, modules, params, stats, videos = setup
    x = videos[:, :4]
    trained = {k: params[k] for k in ("content_encoder", "pose_encoder", "decoder")}
    # A discriminator with O(1) logits, so the adversarial gradient is not negligible (fresh weights are N(0, 0.02)).
    sd_params = {"scene_discriminator": jax.tree.map(lambda w: 25.0 * w, params["scene_discriminator"])}
    weight = 0.37  # large enough that the adversarial term shows in the total
    objective = lambda tr: losses.main_loss(modules, tr, sd_params, stats, x, weight)
    (loss, aux), got = jax.jit(jax.value_and_grad(objective, has_aux=True))(trained)

    (h_c1, skips1), _ = modules.encode_content(params, stats, x[:, 0], train=True)
    (h_c2, _), _ = modules.encode_content(params, stats, x[:, 1], train=True)
    h_p1 = modules.encode_pose(params, stats, x[:, 2], train=True)[0]
    h_p2 = modules.encode_pose(params, stats, x[:, 3], train=True)[0]
    rec = modules.decode(params, stats, h_c1, skips1, h_p1, train=True)[0]
    logits = modules.discriminator_logits(sd_params, h_p1, h_p2)
    assert np.abs(np.asarray(logits)).max() > 0.1
    sim = np.mean((np.asarray(h_c1, np.float64) - np.asarray(h_c2)) ** 2)
    rec_np = np.mean((np.asarray(rec, np.float64) - np.asarray(x[:, 2])) ** 2)
    sd = np_bce(sigmoid(logits), 0.5)
    assert float(aux["sim_loss"]) == pytest.approx(sim, rel=1e-5)
    assert float(aux["rec_loss"]) == pytest.approx(rec_np, rel=1e-5)
    assert float(aux["sd_loss"]) == pytest.approx(sd, rel=1e-5)
    assert float(loss) == pytest.approx(sim + rec_np + weight * sd, rel=1e-5)

    # Gradients equal those of the same loss with h_c2 and h_p2 as constants: both are detached.
    const_c2, const_p2 = jnp.asarray(h_c2), jnp.asarray(h_p2)

    def reference(tr):
        (c1, s1), _ = modules.encode_content(tr, stats, x[:, 0], train=True)
        p1 = modules.encode_pose(tr, stats, x[:, 2], train=True)[0]
        out = modules.decode(tr, stats, c1, s1, p1, train=True)[0]
        adv = losses.bce_with_logits(modules.discriminator_logits(sd_params, p1, const_p2), 0.5)
        return losses.mse(c1, const_c2) + losses.mse(out, x[:, 2]) + weight * adv

    want = jax.jit(jax.grad(reference))(trained)
    # (Conv biases feeding a BatchNorm have a zero gradient up to rounding: compare on the gradients' own scale.)
    scale = max(float(np.abs(g).max()) for g in jax.tree.leaves(want))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-4 * scale), got, want)
    # The adversarial term reaches EP (through h_p1) but the discriminator is not among the trained params.
    assert set(got) == {"content_encoder", "pose_encoder", "decoder"}


def test_lstm_loss_is_teacher_forced_sum_of_per_step_mse(setup):
    config, modules, params, stats, videos = setup
    h_c, poses = losses.lstm_targets(modules, params, stats, videos, config.n_past, train=True)
    (expected_c, _), _ = modules.encode_content(params, stats, videos[:, config.n_past - 1], train=True)
    np.testing.assert_allclose(h_c, expected_c, rtol=1e-5, atol=1e-6)
    total, per_step = losses.lstm_loss(modules, params, h_c, poses)

    state = modules.lstm.initial_state(B)
    expected = []
    for t in range(1, T):  # always the true previous pose, never the model's own prediction
        pred, state = modules.lstm_step(params, state, poses[:, t - 1], h_c)
        expected.append(np.mean((np.asarray(pred, np.float64) - np.asarray(poses[:, t])) ** 2))
    np.testing.assert_allclose(per_step, expected, rtol=1e-5)
    assert float(total) == pytest.approx(sum(expected), rel=1e-5)


def test_stage2_batchnorm_train_mode_uses_per_frame_batch_statistics(setup):
    config, modules, params, stats, videos = setup
    _, train_poses = losses.lstm_targets(modules, params, stats, videos, config.n_past, train=True)
    _, eval_poses = losses.lstm_targets(modules, params, stats, videos, config.n_past, train=False)
    for t in range(T):  # train mode: each frame index normalised as its own batch of B frames
        np.testing.assert_allclose(train_poses[:, t], _ep_train(modules, params, stats, videos[:, t]), atol=2e-5)
    eval_frames = modules.encode_pose(params, stats, videos.reshape(B * T, 64, 64, 3), train=False)[0]
    np.testing.assert_allclose(eval_poses, np.asarray(eval_frames).reshape(B, T, -1), rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(train_poses) - np.asarray(eval_poses)).max() > 1e-3

    # Batch dependence: train mode changes example 0's pose when example 1 changes; eval mode does not.
    other = videos.at[1].set(1.0 - videos[1])
    _, train_other = losses.lstm_targets(modules, params, stats, other, config.n_past, train=True)
    _, eval_other = losses.lstm_targets(modules, params, stats, other, config.n_past, train=False)
    assert np.abs(np.asarray(train_other[0]) - np.asarray(train_poses[0])).max() > 1e-4
    np.testing.assert_allclose(eval_other[0], eval_poses[0], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("bn_train", [True, False])
def test_frozen_bn_train_mode_switch_selects_the_stage2_normalisation(setup, bn_train):
    config, modules, params, stats, videos = setup
    config = stage_config(config, 2)
    config.frozen_bn_train_mode = bn_train
    stage1 = ({k: params[k] for k in ("content_encoder", "pose_encoder", "decoder")}, stats)
    state = init_state(config, modules, jax.random.key(4), stage1)
    new_state, metrics = jax.jit(make_train_step(config, modules))(state, videos)
    h_c, poses = losses.lstm_targets(modules, params, stats, videos, config.n_past, train=bn_train)
    expected, _ = losses.lstm_loss(modules, {"lstm": state.params["lstm"]}, h_c, poses)
    assert float(metrics["loss"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(metrics["mse"]) == pytest.approx(float(expected) / T, rel=1e-5)
    # The frozen networks and their running averages never change in stage 2, whatever the mode.
    jax.tree.map(np.testing.assert_array_equal, new_state.frozen, state.frozen)
