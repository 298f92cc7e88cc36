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
    with pytest.raises(ValueError, match=r"videos must be float \(B, T, 64, 64, 3\)"):
        model.encode(videos[:, :, :32])
    with pytest.raises(ValueError, match="identity must be"):
        model.decode(np.zeros((3, 4, 4)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="same B"):
        model.swap(videos, videos[:2])
    with pytest.raises(FileNotFoundError, match="no VDSM run or checkpoints"):
        VDSM.from_checkpoint(tmp_path / "nothing")


def test_config_that_does_not_match_the_checkpoint_is_refused(trained_vdsm_run):
    from conftest import load_config_file

    config = load_config_file("configs/vdsm/tiny.py", "both")
    config.z_dim = 7
    with pytest.raises(ValueError, match=r"does not match the model:[\s\S]*EW1"):
        VDSM.from_checkpoint(trained_vdsm_run / "stage2", config=config)
