"""VDSM training: exact resume, non-finite handling, stage hand-over, outputs, multi-device equality."""

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
from tests_helpers import poison_train_batches, read_event_scalars

from vdcore.checkpoint import Checkpointer
from vdcore.train_state import NonFiniteTrainingError
from vdsm_jax import train as vdsm_train
from vdsm_jax.config_defaults import stage_config
from vdsm_jax.models import VDSMModules
from vdsm_jax.schedules import make_schedules
from vdsm_jax.state import init_state, load_stage1_params, make_optimizer, with_learning_rate


def _losses(workdir) -> dict[int, float]:
    """Loss per logged step; a step logged twice (before and after a resume) keeps its last value."""
    losses = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            losses[row["step"]] = row["loss"]
    return losses


def _tiny(data_dir, stage="stage1", **overrides):
    config = load_config_file("configs/vdsm/tiny.py", stage)
    config.data_dir = data_dir
    config.model_test_interval = 0
    config.update(overrides)
    return config


def test_resume_reproduces_the_next_losses_exactly(tmp_path, tiny_moving_mnist):
    config = _tiny(tiny_moving_mnist)
    full = vdsm_train.train_and_evaluate(config, str(tmp_path / "full"))
    assert full["final_step"] == 6 and full["checkpoints"] == [2, 4, 6]

    interrupted = tmp_path / "interrupted"
    vdsm_train.train_and_evaluate(config, str(interrupted), stop_after_steps=3)  # dies after step 3, last save at 2
    assert Checkpointer(interrupted / "checkpoints").all_steps() == [2]
    resumed = vdsm_train.train_and_evaluate(config, str(interrupted))
    assert resumed["start_step"] == 2 and resumed["final_step"] == 6

    expected, got = _losses(tmp_path / "full"), _losses(interrupted)
    assert sorted(got) == list(range(1, 7))
    for step in range(3, 7):
        assert got[step] == expected[step], (step, got[step], expected[step])


def test_the_lr_drops_at_the_given_epochs_and_lr_resume_keeps_the_drop():
    config = load_config_file("configs/vdsm/tiny.py", "stage1")
    config.update({"lr_VDSMEncDec": 0.1, "bs_per_epoch": 2, "epochs": 4, "lr_drop_epochs": (1, 3)})
    tx = make_optimizer(config)
    params = {"x": jnp.zeros(())}
    opt_state = tx.init(params)
    moves = []
    for _ in range(8):  # Adam under a constant gradient moves every step by the learning rate
        updates, opt_state = tx.update({"x": jnp.ones(())}, opt_state, params)
        moves.append(-float(updates["x"]))
        if len(moves) == 5:
            opt_state = with_learning_rate(opt_state, 0.05)
    np.testing.assert_allclose(moves, [0.1, 0.1, 0.03, 0.03, 0.03, 0.015, 0.0045, 0.0045], rtol=1e-4)


def test_stage2_loads_stage1_whatever_lr_drops_either_stage_has(tmp_path, tiny_moving_mnist, trained_vdsm_run):
    """The stage-1 template follows the stage-1 run's own drops (its optimiser state's layout), not stage 2's."""
    from vdsm_jax.api import VDSM

    with_drops = tmp_path / "stage1_with_drops"
    vdsm_train.train_and_evaluate(_tiny(tiny_moving_mnist, lr_drop_epochs=(2,)), str(with_drops))
    for stage1_run, stage2_drops in ((with_drops, ()), (trained_vdsm_run / "stage1", (1, 3))):
        config = _tiny(tiny_moving_mnist, "stage2", stage1_workdir=str(stage1_run), lr_drop_epochs=stage2_drops)
        loaded = load_stage1_params(config, VDSMModules.from_config(config))
        expected = VDSM.from_checkpoint(stage1_run).params
        jax.tree.map(np.testing.assert_array_equal, loaded, expected)


def _step_fn(config):
    config = stage_config(config, 1)
    modules = VDSMModules.from_config(config)
    tx = make_optimizer(config)
    state = init_state(config, modules, jax.random.key(0))
    return jax.jit(vdsm_train.make_train_step(modules, 1, tx, make_schedules(config))), state


def test_a_nonfinite_batch_is_skipped_and_training_continues(tiny_moving_mnist):
    step, state = _step_fn(_tiny(tiny_moving_mnist))
    good = jax.random.uniform(jax.random.key(1), (2, 3, 64, 64, 3))
    bad = good.at[0, 0, 0, 0, 0].set(jnp.nan)
    skipped, metrics = step(state, bad)
    assert not bool(metrics["finite"]) and not np.isfinite(float(metrics["loss"]))
    jax.tree.map(np.testing.assert_array_equal, skipped.params, state.params)
    assert int(skipped.nonfinite_total) == 1 and int(skipped.step) == 1
    after, metrics = step(skipped, good)
    assert bool(metrics["finite"]) and int(after.nonfinite_consecutive) == 0
    changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), after.params, state.params)
    assert any(jax.tree.leaves(changed))


def test_consecutive_nonfinite_steps_stop_the_run_and_keep_the_checkpoint(tmp_path, tiny_moving_mnist, monkeypatch):
    poison_train_batches(monkeypatch, vdsm_train, clean=2)
    config = _tiny(tiny_moving_mnist, max_consecutive_nonfinite=2)
    with pytest.raises(NonFiniteTrainingError, match=r"2 consecutive non-finite updates.*step 2\) is intact"):
        vdsm_train.train_and_evaluate(config, str(tmp_path / "run"))
    assert Checkpointer(tmp_path / "run" / "checkpoints").all_steps() == [2]
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert rows[-1]["skipped_steps"] == 2


def test_cli_run_writes_checkpoints_pictures_metrics_and_codes(trained_vdsm_run):
    for stage in ("stage1", "stage2"):
        workdir = trained_vdsm_run / stage
        summary = json.loads((workdir / "summary.json").read_text())
        assert summary["final_step"] == 6 and summary["skipped_steps"] == 0
        assert np.isfinite(summary["final_metrics"]["loss"])
        outputs = workdir / "outputs"
        for name in ("recon", "id_swap", "swap", "samples"):
            assert iio.imread(outputs / f"{name}_e0006.png").ndim == 3
        swap_gif = iio.imread(outputs / "swap_e0006.gif")
        assert swap_gif.shape[0] == 3  # seq_len frames
        codes = np.load(outputs / "codes_e0006.npz")
        assert codes["code_identity"].shape == (2, 3)
        np.testing.assert_allclose(codes["code_identity"].sum(-1), 1.0, rtol=1e-5)
        assert codes["swaps"].shape == (4, 3, 64, 64, 3) and "label_digits" in codes
        if stage == "stage2":
            assert codes["code_dynamics"].shape == (2, 5)
        rows = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
        assert {
            "loss",
            "temp_id",
            "anneal_id",
            "anneal_t",
            "anneal_dynamics",
            "nll/x",
            "kl/ID",
            "skipped_steps",
            "steps_per_second",
        } <= set(rows[-1])
        (event_file,) = os.listdir(workdir / "tensorboard")
        tags = {tag for _, tag, _ in read_event_scalars(workdir / "tensorboard" / event_file)}
        assert {"loss", "anneal_t", "kl/z"} <= tags
        assert iio.imread(workdir / "loss_curves.png").ndim == 3


def test_stage2_keeps_image_networks_frozen_and_trains_id_layers(trained_vdsm_run):
    stage1 = Checkpointer(trained_vdsm_run / "stage1" / "checkpoints", create=False)
    stage2 = Checkpointer(trained_vdsm_run / "stage2" / "checkpoints", create=False)
    from vdsm_jax.api import VDSM

    first = VDSM.from_checkpoint(trained_vdsm_run / "stage1")
    second = VDSM.from_checkpoint(trained_vdsm_run / "stage2")
    assert stage1.latest_step() == stage2.latest_step() == 6
    for key in ("enc", "dec"):
        jax.tree.map(np.testing.assert_array_equal, second.params[key], first.params[key])
    moved = jax.tree.map(lambda a, b: not np.array_equal(a, b), second.params["id_layers"], first.params["id_layers"])
    assert all(jax.tree.leaves(moved))


def test_loss_on_four_devices_equals_one_device():
    script = textwrap.dedent(
        """
        import os, re, sys
        os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
        import jax, jax.numpy as jnp, numpy as np
        sys.path.insert(0, "tests")
        from conftest import load_config_file
        from vdcore.sharding import data_mesh, replicated_sharding, shard_batch
        from vdsm_jax import train as vdsm_train
        from vdsm_jax.config_defaults import stage_config
        from vdsm_jax.models import VDSMModules
        from vdsm_jax.schedules import make_schedules
        from vdsm_jax.state import init_state, load_stage1_params, make_optimizer, with_learning_rate
        assert jax.device_count() == 4
        # Stage 1 also with XLA's convolutions (the GPU/TPU formulation): on several devices its decoder switches
        # to the matmul formulation, whose batch the partitioner can split.
        for stage, impl in ((1, "auto"), (2, "auto"), (1, "xla")):
            config = stage_config(load_config_file("configs/vdsm/tiny.py", "both"), stage)
            config.bs, config.rnn_dropout, config.conv_impl = 4, 0.0, impl
            modules = VDSMModules.from_config(config)
            stage1 = modules.init(jax.random.key(5), 1) if stage == 2 else None
            state = init_state(config, modules, jax.random.key(0), stage1)
            step = jax.jit(vdsm_train.make_train_step(modules, stage, make_optimizer(config), make_schedules(config)))
            videos = np.asarray(jax.random.uniform(jax.random.key(1), (4, 3, 64, 64, 3)))
            one_state, one = step(jax.device_put(state, jax.devices()[0]), jax.device_put(videos, jax.devices()[0]))
            mesh = data_mesh()
            sharded = shard_batch({"video": videos}, mesh)["video"]
            assert len(sharded.sharding.device_set) == 4
            replicated = jax.device_put(state, replicated_sharding(mesh))
            if (stage, impl) == (1, "auto"):
                # Data parallelism: the devices exchange only the gradient sums, never frames or activations
                # (the encoder's CPU frame groups are strided: with 4 frames a device, 4 groups none of which
                # straddles two devices).
                four_frames = shard_batch({"video": np.concatenate([videos, videos[:, :1]], axis=1)}, mesh)["video"]
                hlo = step.lower(replicated, four_frames).compile().as_text()
                moved = re.findall(r"(all-to-all|collective-permute|all-gather)[(]", hlo)
                assert not moved, sorted(set(moved))
            four_state, four = step(replicated, sharded)
            np.testing.assert_allclose(float(four["loss"]), float(one["loss"]), rtol=1e-5)
            jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                         four_state.params, one_state.params)
            print("stage", stage, float(one["loss"]), float(four["loss"]))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("stage") == 3
