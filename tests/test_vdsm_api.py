"""The Python API of a trained VDSM (the session's tiny two-stage run)."""

import jax
import numpy as np
import pytest

from vdsm_jax import VDSM


@pytest.fixture(scope="module")
def videos():
    return np.asarray(jax.random.uniform(jax.random.key(0), (3, 4, 64, 64, 3)))


@pytest.fixture(scope="module")
def model(trained_vdsm_run):
    return VDSM.from_checkpoint(trained_vdsm_run / "stage2")


def test_encode(model, videos):
    codes = model.encode(videos)
    assert codes["identity"].shape == (3, 3) and codes["dynamics"].shape == (3, 5)
    assert codes["z_loc"].shape == codes["z_scale"].shape == (3, 4, 4)
    np.testing.assert_allclose(codes["identity"].sum(-1), 1.0, rtol=1e-5)
    assert (codes["identity"] > 0).all() and (codes["z_scale"] > 0).all()


def test_decode_reconstruct_swap_generate(model, videos):
    codes = model.encode(videos)
    decoded = model.decode(codes["z_loc"], codes["identity"])
    assert decoded.shape == videos.shape and decoded.min() >= 0 and decoded.max() <= 1
    recon = model.reconstruct(videos)
    assert recon.shape == videos.shape
    swapped = model.swap(videos, videos[::-1])
    assert swapped.shape == videos.shape
    np.testing.assert_allclose(model.swap(videos, videos), recon, atol=1e-5)
    samples = model.generate(jax.random.key(1), 5, 7)
    assert samples.shape == (5, 7, 64, 64, 3)
    assert not np.allclose(samples, model.generate(jax.random.key(2), 5, 7))


def test_stage1_model_and_checkpoint_steps(trained_vdsm_run, videos):
    first = VDSM.from_checkpoint(trained_vdsm_run / "stage1", step=4)
    assert first.stage == 1 and "dynamics" not in first.encode(videos)
    assert first.reconstruct(videos).shape == videos.shape
    assert first.generate(jax.random.key(0), 2, 3).shape == (2, 3, 64, 64, 3)


def test_bad_inputs_are_named(model, videos, tmp_path):
    with pytest.raises(ValueError, match=r"videos must have shape \(B, T, 64, 64, 3\)"):
        model.encode(videos[:, :, :32])
    with pytest.raises(ValueError, match=r"videos is channels-first \(3, 4, 3, 64, 64\).*np.moveaxis"):
        model.encode(np.moveaxis(videos, -1, -3))
    with pytest.raises(ValueError, match=r"identity_from: float values span .*look like 0..255"):
        model.swap(np.asarray(videos) * 255, videos)

    with pytest.raises(ValueError, match="identity must be"):
        model.decode(np.zeros((3, 4, 4)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="same B"):
        model.swap(videos, videos[:2])
    with pytest.raises(FileNotFoundError, match="no VDSM run or checkpoints"):
        VDSM.from_checkpoint(tmp_path / "nothing")


def test_each_model_names_the_other_models_runs(trained_vdsm_run, trained_drnet_run):
    from drnet_jax import DRNet

    with pytest.raises(ValueError, match=r"not a vdsm_jax checkpoint.*drnet_jax.DRNet.from_checkpoint"):
        VDSM.from_checkpoint(trained_drnet_run / "stage1")
    with pytest.raises(ValueError, match=r"not a drnet_jax checkpoint.*vdsm_jax.VDSM.from_checkpoint"):
        DRNet.from_checkpoint(trained_vdsm_run / "stage1")


def test_uint8_videos_are_read_as_0_to_255(model, videos):
    pixels = np.round(np.asarray(videos) * 255).astype(np.uint8)
    as_float = model.encode(pixels.astype(np.float32) / 255)
    as_uint8 = model.encode(pixels)
    for key in as_float:
        np.testing.assert_allclose(as_uint8[key], as_float[key], rtol=1e-5, atol=1e-6)


def test_config_that_does_not_match_the_checkpoint_is_refused(trained_vdsm_run):
    from conftest import load_config_file

    config = load_config_file("configs/vdsm/tiny.py", "both")
    config.z_dim = 7
    with pytest.raises(ValueError, match=r"does not match the model:[\s\S]*EW1"):
        VDSM.from_checkpoint(trained_vdsm_run / "stage2", config=config)
