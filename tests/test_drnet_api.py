"""The Python API of a trained DRNet (the session's tiny two-stage run): shapes, consistency, errors, and
long generation in constant device memory."""

import jax
import numpy as np
import pytest
from conftest import load_config_file

from drnet_jax import DRNet, api

SKIP_SHAPES = ((32, 32, 64), (16, 16, 128), (8, 8, 256), (4, 4, 512))  # dcgan_unet at 64 px


@pytest.fixture(scope="module")
def videos():
    return np.asarray(jax.random.uniform(jax.random.key(0), (3, 4, 64, 64, 3)))


@pytest.fixture(scope="module")
def model(trained_drnet_run):
    return DRNet.from_checkpoint(trained_drnet_run / "stage2")


def test_content_pose_decode(model, videos):
    frames = videos[:, 0]
    code = model.content(frames)
    assert code["content"].shape == (3, 8) and code["content"].dtype == np.float32
    assert tuple(s.shape[1:] for s in code["skips"]) == SKIP_SHAPES
    poses = model.pose(videos[:, 1])
    assert poses.shape == (3, 3) and np.abs(poses).max() < 1  # tanh
    decoded = model.decode(code, poses)
    assert decoded.shape == frames.shape and decoded.min() >= 0 and decoded.max() <= 1
    np.testing.assert_array_equal(model.decode((code["content"], code["skips"]), poses), decoded)
    # Running averages: each example's code is independent of the rest of its batch.
    np.testing.assert_allclose(model.pose(videos[:1, 1]), poses[:1], rtol=1e-5, atol=1e-6)


def test_analogy_is_content_of_one_frame_with_the_poses_of_a_video(model, videos):
    frames = videos[::-1, 0]
    analogies = model.analogy(frames, videos)
    assert analogies.shape == videos.shape
    code = model.content(frames)
    for t in range(videos.shape[1]):
        np.testing.assert_allclose(analogies[:, t], model.decode(code, model.pose(videos[:, t])), atol=1e-5)


def test_predict_any_horizon_in_chunks(model, videos):
    past = videos[:, :2]
    future = model.predict(past, 7)
    assert future.shape == (3, 7, 64, 64, 3) and future.min() >= 0 and future.max() <= 1
    np.testing.assert_allclose(model.predict(past, 7, chunk_size=3), future, atol=1e-5)
    np.testing.assert_allclose(model.predict(past, 4, chunk_size=2), future[:, :4], atol=1e-5)
    chunks = list(model.predict_chunks(past, 7, chunk_size=3))
    assert [c.shape[1] for c in chunks] == [3, 3, 1]
    one_step = model.one_step_predictions(videos, n_past=2)
    assert one_step.shape == (3, 3, 64, 64, 3)


def test_batch_statistics_mode(trained_drnet_run, videos):
    model = DRNet.from_checkpoint(trained_drnet_run / "stage2", batch_statistics=True)
    poses = model.pose(videos[:, 0])
    assert not np.allclose(model.pose(videos[:2, 0]), poses[:2], atol=1e-4)  # depends on the batch
    with pytest.raises(ValueError, match=r"B >= 2 \(batch_statistics=True"):
        model.pose(videos[:1, 0])
    assert model.predict(videos[:, :2], 3).shape == (3, 3, 64, 64, 3)


def test_stage1_model_and_bad_inputs(trained_drnet_run, model, videos, tmp_path):
    first = DRNet.from_checkpoint(trained_drnet_run / "stage1", step=4)
    assert first.stage == 1 and first.pose(videos[:, 0]).shape == (3, 3)
    with pytest.raises(ValueError, match="stage-1 DRNet"):
        first.predict(videos, 2)
    with pytest.raises(ValueError, match=r"frames must have shape \(B, 64, 64, 3\)"):
        model.content(videos[:, 0, :32])
    with pytest.raises(ValueError, match=r"videos must have shape \(B, T, 64, 64, 3\)"):
        model.predict(videos[:, 0], 3)
    with pytest.raises(ValueError, match=r"frames: float values span .*\(frames \+ 1\) / 2"):
        model.content(np.asarray(videos[:, 0]) * 2 - 1)
    pixels = np.round(np.asarray(videos[:, 0]) * 255).astype(np.uint8)
    np.testing.assert_allclose(model.pose(pixels), model.pose(pixels.astype(np.float32) / 255), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"pose must be \(B, 3\)"):
        model.decode(model.content(videos[:, 0]), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="decodes with skips of shapes"):
        model.decode(model.content(videos[:, 0])["content"], np.zeros((3, 3)))
    with pytest.raises(ValueError, match="same B"):
        model.analogy(videos[:2, 0], videos)
    with pytest.raises(ValueError, match="n_future must be an int >= 1"):
        model.predict(videos, 0)
    with pytest.raises(FileNotFoundError, match="no DRNet run or checkpoints"):
        DRNet.from_checkpoint(tmp_path / "nothing")
    config = load_config_file("configs/drnet/tiny.py", "both")
    config.content_dim = 7
    with pytest.raises(ValueError, match=r"does not match the model:[\s\S]*content_encoder"):
        DRNet.from_checkpoint(trained_drnet_run / "stage2", config=config)


def _live_device_bytes() -> tuple[int, int]:
    arrays = jax.live_arrays()
    return len(arrays), sum(a.nbytes for a in arrays)


def test_long_generation_keeps_device_memory_flat(trained_drnet_run, videos):
    config = load_config_file("configs/drnet/tiny.py", "both")
    config.conv_impl = "fast"  # the CPU kernels: hundreds of decoded frames
    model = DRNet.from_checkpoint(trained_drnet_run / "stage2", config=config)
    past = videos[:1, :2]

    def run(horizon):
        samples, frames = [], 0
        for chunk in model.predict_chunks(past, horizon, chunk_size=50):
            frames += chunk.shape[1]
            samples.append(_live_device_bytes())
        assert frames == horizon
        return samples

    short = run(100)
    programs = api._rollout._cache_size()
    long = run(500)
    assert api._rollout._cache_size() == programs  # one compiled chunk program serves every horizon
    assert max(n for n, _ in long) <= max(n for n, _ in short)
    assert max(b for _, b in long) <= max(b for _, b in short)
    assert long[-1] == long[0]  # nothing accumulates on the device from chunk to chunk
    stats = jax.devices()[0].memory_stats()  # None on CPU; on GPU the peak must not grow with the horizon either
    if stats and "peak_bytes_in_use" in stats:
        peak = stats["peak_bytes_in_use"]
        run(500)
        assert jax.devices()[0].memory_stats()["peak_bytes_in_use"] == peak
