"""DRNet training: exact resume of both stages, non-finite handling, the stage hand-over, outputs, and
multi-device equality."""

import json
import os
import subprocess
import sys
import textwrap

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO_ROOT, load_config_file
from tests_helpers import metrics_rows, poison_train_batches, read_event_scalars

from drnet_jax import train as drnet_train
from drnet_jax.config_defaults import stage_config
from drnet_jax.models import DRNetModules
from drnet_jax.state import Stage1State, init_state
from vdcore.checkpoint import Checkpointer
from vdcore.train_state import NonFiniteTrainingError

LOSS_KEYS = {1: ("loss", "rec_loss", "sim_loss", "sd_loss", "disc_bce", "disc_acc"), 2: ("loss", "mse")}


def _tiny(data_dir, stage="stage1", **overrides):
    config = load_config_file("configs/drnet/tiny.py", stage)
    config.data_dir = data_dir
    config.model_test_interval = 0
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def full_stage1(tmp_path_factory, tiny_moving_mnist):
    workdir = tmp_path_factory.mktemp("drnet_full1")
    summary = drnet_train.train_and_evaluate(_tiny(tiny_moving_mnist), str(workdir))
    assert summary["final_step"] == 6 and summary["checkpoints"] == [2, 4, 6]
    return workdir


@pytest.mark.parametrize("stage", [1, 2, "2 cached"])
def test_resume_reproduces_the_next_losses_exactly(stage, tmp_path, tiny_moving_mnist, full_stage1):
    if stage == 1:
        config, full = _tiny(tiny_moving_mnist), full_stage1
    else:
        config = _tiny(tiny_moving_mnist, "stage2", stage1_workdir=str(full_stage1))
        if stage == "2 cached":
            config.update({"pose_codes": "cached", "frozen_bn_train_mode": False})
        stage = 2
        full = tmp_path / "full"
        assert drnet_train.train_and_evaluate(config, str(full))["checkpoints"] == [2, 4, 6]

    interrupted = tmp_path / "interrupted"
    drnet_train.train_and_evaluate(config, str(interrupted), stop_after_steps=3)  # dies after step 3, saved at 2
    assert Checkpointer(interrupted / "checkpoints").all_steps() == [2]
    resumed = drnet_train.train_and_evaluate(config, str(interrupted))
    assert resumed["start_step"] == 2 and resumed["final_step"] == 6

    expected, got = metrics_rows(full), metrics_rows(interrupted)
    assert sorted(got) == list(range(1, 7))
    for step in range(3, 7):
        for key in LOSS_KEYS[stage]:
            assert got[step][key] == expected[step][key], (step, key, got[step][key], expected[step][key])
    per_epoch = ("rec_loss", "sim_loss", "disc_acc") if stage == 1 else ("mse",)
    for step in (2, 4, 6):  # epoch ends: the mean of the epoch's two steps
        for key in per_epoch:
            assert got[step][f"epoch/{key}"] == pytest.approx((got[step - 1][key] + got[step][key]) / 2)


def test_cached_pose_codes_give_the_encoders_windows_loss_and_update(tiny_moving_mnist, full_stage1):
    """pose_codes='cached' sees the same clips and windows as the video batches of the same seed, and its step
    the loss and LSTM update of running the frozen encoders (BatchNorm on running averages) in the step."""
    from drnet_jax import pose_codes
    from drnet_jax.state import load_stage1_variables

    overrides = {"stage1_workdir": str(full_stage1), "frozen_bn_train_mode": False, "batch_size": 6}
    config = stage_config(_tiny(tiny_moving_mnist, "stage2", **overrides), 2)
    modules = DRNetModules.from_config(config)
    stage1 = load_stage1_variables(config)
    state = init_state(config, modules, jax.random.key(0), stage1)
    videos = drnet_train.make_train_batches(config, 1)
    codes = pose_codes.code_batches(config, modules, *stage1, 1)
    encoder_step = jax.jit(drnet_train.make_train_step(config, modules))
    config.pose_codes = "cached"
    cached_step = jax.jit(drnet_train.make_train_step(config, modules))
    starts = set()
    for _ in range(3):
        video_batch, code_batch = next(videos), next(codes)
        np.testing.assert_array_equal(code_batch["index"], video_batch["index"])
        np.testing.assert_array_equal(code_batch["frame_index"], video_batch["frame_index"])
        starts |= set(video_batch["frame_index"][:, 0].tolist())
        assert code_batch["poses"].shape == (6, 5, config.pose_dim) and code_batch["content"].shape == (6, 8)
        by_encoder, encoder_metrics = encoder_step(state, jnp.asarray(video_batch["video"]))
        by_codes, code_metrics = cached_step(state, {k: jnp.asarray(code_batch[k]) for k in pose_codes.CODE_INPUTS})
        np.testing.assert_allclose(code_metrics["loss"], encoder_metrics["loss"], rtol=1e-5)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), by_codes.params, by_encoder.params
        )
        state = by_encoder
    assert starts == {0, 1}  # 6-frame clips, 5-frame windows: both starts drawn, and both read right


def test_pose_codes_of_clips_of_any_length_are_each_clips_own(tiny_moving_mnist):
    """Clips of 6-9 frames in groups of at most 8 frames (a 9-frame clip alone), padded calls: every clip's codes
    equal encoding that clip alone (BatchNorm on running averages)."""
    from data_prep.samplers import SplitSource
    from drnet_jax import pose_codes

    config = stage_config(_tiny(tiny_moving_mnist, "stage2"), 2)
    modules = DRNetModules.from_config(config)
    params, stats = jax.jit(modules.init_stage1)(jax.random.key(3))
    stats = jax.tree.map(lambda v: v + 0.1, stats)  # running averages that differ from the initial ones
    rng = np.random.default_rng(0)
    videos = [rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8) for n in (6, 9, 6, 7, 5)]
    source = SplitSource("moving_mnist", "train", [{"video": v} for v in videos])
    per_frame, per_start = pose_codes.clip_codes(modules, params, stats, source, n_past=2, n_future=3, chunk=8)
    for video, poses, content in zip(videos, per_frame["poses"], per_start["content"], strict=True):
        frames = jnp.asarray(video, jnp.float32) / 255
        expected_poses = modules.encode_pose(params, stats, frames)[0]
        expected_content = modules.encode_content(params, stats, frames[1 : len(video) - 3])[0][0]
        assert poses.shape == (len(video), 3) and content.shape == (len(video) - 4, 8)
        np.testing.assert_allclose(poses, expected_poses, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(content, expected_content, rtol=1e-4, atol=1e-5)


def test_a_cached_run_refuses_a_stage1_run_that_changed(tmp_path, tiny_moving_mnist, full_stage1, monkeypatch):
    """Refused before the code pass over every training clip (minutes at full size), not after it."""
    from drnet_jax import pose_codes

    config = _tiny(tiny_moving_mnist, "stage2", stage1_workdir=str(full_stage1), pose_codes="cached")
    config.frozen_bn_train_mode = False
    drnet_train.train_and_evaluate(config, str(tmp_path / "run"), stop_after_steps=3)
    code_passes = []
    real_code_batches = pose_codes.code_batches
    monkeypatch.setattr(pose_codes, "code_batches", lambda *a, **k: code_passes.append(1) or real_code_batches(*a, **k))
    config.stage1_epoch = 1  # other frozen encoders than the checkpoint's
    with pytest.raises(ValueError, match="frozen encoders differ from those of config.stage1_workdir"):
        drnet_train.train_and_evaluate(config, str(tmp_path / "run"))
    assert code_passes == []
    config.stage1_epoch = -1  # the encoders the run started from: resumes, with the code pass
    drnet_train.train_and_evaluate(config, str(tmp_path / "run"), stop_after_steps=1)
    assert code_passes == [1]


def _stage1_step(data_dir):
    config = stage_config(_tiny(data_dir), 1)
    modules = DRNetModules.from_config(config)
    state = init_state(config, modules, jax.random.key(0))
    return jax.jit(drnet_train.make_train_step(config, modules)), state


def test_a_nonfinite_batch_is_skipped_and_training_continues(tiny_moving_mnist):
    step, state = _stage1_step(tiny_moving_mnist)
    good = jax.random.uniform(jax.random.key(1), (4, 4, 64, 64, 3))
    bad = good.at[0, 2, 0, 0, 0].set(jnp.nan)  # x_p1 of clip 0: the main update's reconstruction target
    skipped, metrics = step(state, bad)
    assert not bool(metrics["main_finite"]) and not bool(metrics["finite"]) and bool(metrics["disc_finite"])
    jax.tree.map(np.testing.assert_array_equal, skipped.main.params, state.main.params)
    # The main update's BatchNorm averages are dropped with it (EP's moved in the finite discriminator update).
    for key in ("content_encoder", "decoder"):
        jax.tree.map(
            np.testing.assert_array_equal,
            skipped.main.frozen["batch_stats"][key],
            state.main.frozen["batch_stats"][key],
        )
    changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), skipped.disc.params, state.disc.params)
    assert all(jax.tree.leaves(changed))
    assert int(skipped.main.nonfinite_total) == 1 and int(skipped.step) == 1
    assert int(skipped.nonfinite_consecutive) == 1
    after, metrics = step(skipped, good)
    assert bool(metrics["finite"]) and int(after.nonfinite_consecutive) == 0 and int(after.nonfinite_total) == 1
    changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), after.main.params, state.main.params)
    assert any(jax.tree.leaves(changed))


def test_consecutive_nonfinite_steps_stop_the_run_and_keep_the_checkpoint(tmp_path, tiny_moving_mnist, monkeypatch):
    poison_train_batches(monkeypatch, drnet_train, clean=2)
    config = _tiny(tiny_moving_mnist, max_consecutive_nonfinite=2)
    with pytest.raises(NonFiniteTrainingError, match=r"2 consecutive non-finite updates.*step 2\) is intact"):
        drnet_train.train_and_evaluate(config, str(tmp_path / "run"))
    assert Checkpointer(tmp_path / "run" / "checkpoints").all_steps() == [2]
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert rows[-1]["skipped_steps"] == 4  # both updates of steps 3 and 4


def test_cli_run_writes_checkpoints_pictures_and_metrics(trained_drnet_run):
    expected_pictures = {1: ("rec", "analogy"), 2: ("gen", "rec", "gen_long")}
    for stage in (1, 2):
        workdir = trained_drnet_run / f"stage{stage}"
        summary = json.loads((workdir / "summary.json").read_text())
        assert summary["final_step"] == 6 and summary["skipped_steps"] == 0
        assert np.isfinite(summary["final_metrics"]["loss"])
        outputs = workdir / "outputs"
        for name in expected_pictures[stage]:
            assert iio.imread(outputs / f"{name}_e0003.png").ndim == 3
        rows = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
        assert set(LOSS_KEYS[stage]) | {"skipped_steps", "steps_per_second"} <= set(rows[-1])
        (event_file,) = os.listdir(workdir / "tensorboard")
        tags = {tag for _, tag, _ in read_event_scalars(workdir / "tensorboard" / event_file)}
        assert set(LOSS_KEYS[stage]) <= tags
        assert iio.imread(workdir / "loss_curves.png").ndim == 3

    analogy = iio.imread(trained_drnet_run / "stage1" / "outputs" / "analogy_e0003.png")
    assert analogy.shape[:2] == (4 * 66 + 2, 7 * 66 + 2)  # (1 + 3 clips) rows × (1 + max_step 6) columns
    codes = np.load(trained_drnet_run / "stage1" / "outputs" / "codes_e0003.npz")
    assert codes["content"].shape == (3, 8) and codes["poses"].shape == (3, 6, 3)
    assert codes["analogies"].shape == (3, 6, 64, 64, 3) and "label_digits" in codes
    long_grid = iio.imread(trained_drnet_run / "stage2" / "outputs" / "gen_long_e0003.png")
    assert long_grid.shape[:2] == (3 * 66 + 2, (2 + 12) * 66 + 2)  # n_past true + gen_horizon generated frames
    gif = iio.imread(trained_drnet_run / "stage2" / "outputs" / "gen_long_e0003.gif")
    assert gif.ndim == 4 and gif.shape[0] > 1  # (identical consecutive frames may be merged by the GIF writer)
    gen = iio.imread(trained_drnet_run / "stage2" / "outputs" / "gen_e0003.png")
    assert gen.shape[:2] == (6 * 66 + 2, 5 * 66 + 2)  # (truth, generated) per clip × (n_past + n_future)


def test_stage2_keeps_the_stage1_networks_frozen_and_trains_the_lstm(trained_drnet_run):
    from drnet_jax import DRNet

    first = DRNet.from_checkpoint(trained_drnet_run / "stage1")
    second = DRNet.from_checkpoint(trained_drnet_run / "stage2")
    assert first.stage == 1 and second.stage == 2
    for key in ("content_encoder", "pose_encoder", "decoder"):
        jax.tree.map(np.testing.assert_array_equal, second.params[key], first.params[key])
        jax.tree.map(np.testing.assert_array_equal, second.batch_stats[key], first.batch_stats[key])
    fresh = jax.eval_shape(DRNetModules.from_config(second.config).init_lstm, jax.random.key(0))
    assert jax.tree.structure(fresh) == jax.tree.structure(second.params["lstm"])
    assert "scene_discriminator" in first.params and "scene_discriminator" not in second.params


def test_stage2_refuses_a_stage1_run_with_other_networks(tmp_path, tiny_moving_mnist, full_stage1):
    config = _tiny(tiny_moving_mnist, "stage2", stage1_workdir=str(full_stage1), pose_dim=4)
    with pytest.raises(ValueError, match=r"trained with pose_dim=3; this config has pose_dim=4"):
        drnet_train.train_and_evaluate(config, str(tmp_path / "run"))


def test_state_layout(tiny_moving_mnist):
    _, state = _stage1_step(tiny_moving_mnist)
    assert isinstance(state, Stage1State)
    assert set(state.main.params) == {"content_encoder", "pose_encoder", "decoder"}
    assert set(state.disc.params) == {"scene_discriminator"}
    assert set(state.main.frozen["batch_stats"]) == {"content_encoder", "pose_encoder", "decoder"}


def test_loss_on_four_devices_equals_one_device():
    script = textwrap.dedent(
        """
        import os, sys
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
        import jax, numpy as np
        sys.path.insert(0, "tests")
        from conftest import load_config_file
        from vdcore.sharding import data_mesh, replicated_sharding, shard_batch
        from drnet_jax import train as drnet_train
        from drnet_jax.config_defaults import stage_config
        from drnet_jax.models import DRNetModules
        from drnet_jax.state import init_state
        assert jax.device_count() == 4
        for stage, frames in ((1, 4), (2, 5)):
            config = stage_config(load_config_file("configs/drnet/tiny.py", "both"), stage)
            # SGD: Adam's first step is lr·sign(g), which turns the rounding noise of exactly-zero gradients (the
            # conv biases before BatchNorm) into ±lr differences; SGD keeps updates proportional to the gradients.
            config.batch_size, config.optimizer = 8, "sgd"
            modules = DRNetModules.from_config(config)
            stage1 = jax.jit(modules.init_stage1)(jax.random.key(5)) if stage == 2 else None
            state = init_state(config, modules, jax.random.key(0), stage1)
            step = jax.jit(drnet_train.make_train_step(config, modules))
            videos = np.asarray(jax.random.uniform(jax.random.key(1), (8, frames, 64, 64, 3)))
            one_state, one = step(jax.device_put(state, jax.devices()[0]), jax.device_put(videos, jax.devices()[0]))
            mesh = data_mesh()
            sharded = shard_batch({"video": videos}, mesh)["video"]
            assert len(sharded.sharding.device_set) == 4
            four_state, four = step(jax.device_put(state, replicated_sharding(mesh)), sharded)
            for key in one:
                np.testing.assert_allclose(float(four[key]), float(one[key]), rtol=2e-5, atol=1e-6, err_msg=key)
            jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), four_state, one_state)
            print("stage", stage, float(one["loss"]), float(four["loss"]))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("stage") == 2


def test_configs_keep_the_original_flags_and_defaults():
    mnist = load_config_file("configs/drnet/moving_mnist.py", "stage1")
    assert (mnist.stage, mnist.dataset, mnist.dataset_config, mnist.image_width, mnist.channels) == (
        1,
        "moving_mnist",
        "drnet",
        64,
        3,
    )
    assert (mnist.content_model, mnist.pose_model, mnist.content_dim, mnist.pose_dim) == (
        "dcgan_unet",
        "dcgan",
        128,
        10,
    )
    assert (mnist.lr, mnist.beta1, mnist.batch_size, mnist.epoch_size, mnist.niter) == (0.002, 0.5, 100, 600, 200)
    assert (mnist.max_step, mnist.sd_weight, mnist.sd_nf, mnist.optimizer) == (20, 1e-4, 100, "adam")
    lstm = stage_config(load_config_file("configs/drnet/moving_mnist.py", "stage2"), 2)
    assert (lstm.lr, lstm.beta1, lstm.n_past, lstm.n_future, lstm.rnn_size, lstm.rnn_layers) == (
        2e-4,
        0.9,
        10,
        10,
        256,
        2,
    )
    assert lstm.frozen_bn_train_mode and load_config_file("configs/drnet/moving_mnist.py", "both").stage == 0

    kth = load_config_file("configs/drnet/kth.py", "128,stage2,content=dcgan_unet,pose=dcgan")
    assert (kth.dataset_config, kth.image_width, kth.channels, kth.stage) == ("kth128", 128, 1, 2)
    assert (kth.content_model, kth.pose_model, kth.frame_selection) == ("dcgan_unet", "dcgan", "random")
    default_kth = load_config_file("configs/drnet/kth.py", "64")
    assert (default_kth.dataset_config, default_kth.content_model, default_kth.pose_model) == (
        "kth64",
        "vgg_unet",
        "resnet",
    )
    with pytest.raises(ValueError, match="unknown argument 'content=unet'"):
        load_config_file("configs/drnet/kth.py", "64,content=unet")

    quick = load_config_file("configs/drnet/quickstart.py")
    assert quick.stage == 0 and quick.dataset_config == "quickstart_ids48" and quick.gen_horizon == 200
    vdsm_quick = load_config_file("configs/vdsm/quickstart.py")  # the two quickstarts share one judge
    for field in (
        "dataset_config",
        "judge_steps",
        "judge_augment_strength",
        "judge_centroid_crop",
        "judge_convs_per_level",
    ):
        vdsm_value = vdsm_quick.evaluation[field] if field.startswith("judge") else vdsm_quick[field]
        assert (quick.evaluation if field.startswith("judge") else quick)[field] == vdsm_value, field
    assert quick.evaluation.judge_seq_len == vdsm_quick.stage2.seq_len
    assert quick.n_past + quick.n_future <= 16 and quick.max_step <= 16  # the quickstart clips have 16 frames
