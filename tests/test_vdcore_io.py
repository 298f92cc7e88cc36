"""Shared output machinery: event files, pictures, atomic writes, metrics, checkpoints."""

import json
import os

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tests_helpers import read_event_scalars

from vdcore import checkpoint, files, images, metrics_log


def test_grids_and_gif(tmp_path):
    videos = np.random.default_rng(0).random((3, 4, 8, 10, 1))
    grid = images.video_grid(videos, pad=1)
    assert grid.shape == (3 * 9 + 1, 4 * 11 + 1, 1) and grid.dtype == np.uint8
    np.testing.assert_array_equal(grid[1:9, 1:11], images.to_uint8(videos[0, 0]))
    np.testing.assert_array_equal(grid[10:18, 12:22], images.to_uint8(videos[1, 1]))
    png = images.save_png(tmp_path / "g.png", grid)
    np.testing.assert_array_equal(iio.imread(png), grid[..., 0])
    gif = images.save_gif(tmp_path / "g.gif", videos, fps=5)
    assert iio.imread(gif).shape[0] == 4
    with pytest.raises(ValueError, match=r"\(N, T, H, W, C\)"):
        images.video_grid(videos[0])


def test_to_uint8_clips_and_rounds():
    np.testing.assert_array_equal(images.to_uint8(np.array([-1.0, 0.0, 0.5, 1.0, 2.0])), [0, 0, 128, 255, 255])


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "x.json"
    files.write_json(target, {"a": 1})

    def broken(tmp):
        open(tmp, "w").write("partial")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        files.atomic_write(target, broken)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_metrics_logger_writes_three_forms(tmp_path):
    logger = metrics_log.MetricsLogger(tmp_path)
    for step in range(5):
        logger.write(step, {"loss": 1.0 / (step + 1), "acc": step / 4})
    assert logger.plot(["loss", "acc"]) == str(tmp_path / "loss_curves.png")
    logger.close()
    rows = metrics_log.read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(5)) and rows[1]["loss"] == 0.5
    assert iio.imread(tmp_path / "loss_curves.png").ndim == 3
    (event_file,) = os.listdir(tmp_path / "tensorboard")
    scalars = read_event_scalars(tmp_path / "tensorboard" / event_file)
    assert len(scalars) == 10 and (1, "loss", 0.5) in scalars and (4, "acc", 1.0) in scalars


def _state(scale):
    return {"params": {"w": jnp.full((3, 2), scale)}, "step": jnp.array(int(scale), jnp.int32)}


def test_checkpoint_round_trip_keep_last_and_latest(tmp_path):
    ckpt = checkpoint.Checkpointer(tmp_path / "ckpt", max_to_keep=2)
    for step in (1, 2, 3):
        ckpt.save(step, _state(float(step)), {"config": {"lr": 0.1}, "step": step})
    assert ckpt.all_steps() == [2, 3] and ckpt.latest_step() == 3
    state, meta = ckpt.restore(_state(0.0))
    np.testing.assert_array_equal(state["params"]["w"], np.full((3, 2), 3.0))
    assert meta == {"config": {"lr": 0.1}, "step": 3}
    state2, _ = ckpt.restore(_state(0.0), step=2)
    assert int(state2["step"]) == 2
    assert ckpt.restore_meta()["step"] == 3


def test_checkpoints_at_the_keep_period_outlive_the_newest_n(tmp_path):
    ckpt = checkpoint.Checkpointer(tmp_path / "ckpt", max_to_keep=2, keep_period=3)
    for step in range(1, 9):
        ckpt.save(step, _state(float(step)), {"step": step})
    assert ckpt.all_steps() == [3, 6, 7, 8]


def test_checkpoint_errors(tmp_path):
    ckpt = checkpoint.Checkpointer(tmp_path / "ckpt")
    with pytest.raises(checkpoint.CheckpointNotFoundError, match="no checkpoint in"):
        ckpt.restore(_state(0.0))
    ckpt.save(1, _state(1.0), {})
    with pytest.raises(checkpoint.CheckpointNotFoundError, match="step 5"):
        ckpt.restore(_state(0.0), step=5)
    wrong = {"params": {"w": jnp.zeros((4, 2))}, "step": jnp.array(0, jnp.int32)}
    with pytest.raises(ValueError, match=r"params/w: saved \(3, 2\), expected \(4, 2\)"):
        ckpt.restore(wrong)
    with pytest.raises(checkpoint.CheckpointNotFoundError):
        checkpoint.Checkpointer(tmp_path / "absent", create=False)


def test_checkpoint_keeps_rng_key_data(tmp_path):
    key = jax.random.key(42)
    ckpt = checkpoint.Checkpointer(tmp_path)
    ckpt.save(0, {"rng": jax.random.key_data(key)}, {})
    restored, _ = ckpt.restore({"rng": jax.random.key_data(jax.random.key(0))})
    np.testing.assert_array_equal(
        jax.random.normal(jax.random.wrap_key_data(restored["rng"]), (3,)), jax.random.normal(key, (3,))
    )


def test_checkpoint_reports_missing_and_extra_keys(tmp_path):
    ckpt = checkpoint.Checkpointer(tmp_path)
    ckpt.save(1, {"a": jnp.zeros(2), "b": jnp.zeros(3)}, {})
    with pytest.raises(ValueError) as info:
        ckpt.restore({"a": jnp.zeros(2), "c": jnp.zeros(1)})
    assert "missing in checkpoint: c (1,)" in str(info.value)
    assert "unexpected in checkpoint: b (3,)" in str(info.value)
