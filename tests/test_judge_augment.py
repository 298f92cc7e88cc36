"""The judge's shape augmentation maps each clip about its frames' centres of mass and keeps positions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vdeval.judge_augment import augment_clips, random_affines, warp_about_centroid


def _bar(centre_row: int, centre_col: int) -> np.ndarray:
    frame = np.zeros((32, 32, 1), np.float32)
    frame[centre_row - 1 : centre_row + 2, centre_col - 6 : centre_col + 7] = 1.0  # horizontal bar, 3 x 13
    return frame


def _centre(frame: np.ndarray) -> np.ndarray:
    mass = frame.sum(-1)
    rows, cols = np.indices(mass.shape)
    return np.array([(mass * rows).sum(), (mass * cols).sum()]) / mass.sum()


def test_a_quarter_turn_about_the_centre_of_mass_makes_the_bar_vertical_in_place():
    frame = _bar(10, 20)
    quarter = jnp.array([[0.0, -1.0], [1.0, 0.0]])
    turned = np.asarray(warp_about_centroid(jnp.asarray(frame), quarter))
    rows, cols = np.nonzero(turned[..., 0] > 0.5)
    assert set(cols) == {19, 20, 21} and rows.min() == 4 and rows.max() == 16  # 13 tall, 3 wide, same centre
    np.testing.assert_allclose(_centre(turned), [10, 20], atol=1e-4)


def test_identity_map_and_zero_strength_change_nothing():
    frame = _bar(12, 15)
    np.testing.assert_allclose(warp_about_centroid(jnp.asarray(frame), jnp.eye(2)), frame, atol=1e-6)
    videos = jnp.asarray(np.random.default_rng(0).random((2, 3, 16, 16, 3), np.float32))
    assert augment_clips(jax.random.key(0), videos, 0.0) is videos


def test_every_frame_of_a_clip_gets_the_same_map_and_keeps_its_position():
    clip = np.stack([_bar(10, 10), _bar(16, 14), _bar(22, 18)])  # the bar moving down-right
    videos = jnp.asarray(np.stack([clip, clip[::-1]]))
    out = np.asarray(augment_clips(jax.random.key(3), videos, 0.3))
    assert out.shape == videos.shape
    for b in range(2):
        for t in range(3):
            np.testing.assert_allclose(_centre(out[b, t]), _centre(np.asarray(videos[b, t])), atol=0.3)
    # one map per clip: frames of clip 0 are translates of each other (bar at (10, 10) vs (16, 14))
    np.testing.assert_allclose(out[0, 0, 4:17, 4:17], out[0, 1, 10:23, 8:21], atol=1e-4)
    linear = np.asarray(random_affines(jax.random.key(0), 1000, 0.2))
    assert np.all(np.abs(np.linalg.det(linear)) > 0.4) and np.abs(linear - np.eye(2)).max() > 0.15


def test_each_colour_channel_turns_about_its_own_centre_so_two_digits_stay_where_they_are():
    frame = np.concatenate([_bar(8, 9), _bar(22, 20), np.zeros((32, 32, 1), np.float32)], -1)
    quarter = jnp.array([[0.0, -1.0], [1.0, 0.0]])
    turned = np.asarray(warp_about_centroid(jnp.asarray(frame), quarter))
    for channel, centre in ((0, [8, 9]), (1, [22, 20])):
        np.testing.assert_allclose(_centre(turned[..., channel : channel + 1]), centre, atol=1e-4)
        rows, cols = np.nonzero(turned[..., channel] > 0.5)
        assert rows.max() - rows.min() == 12 and cols.max() - cols.min() == 2  # vertical now
    assert not turned[..., 2].any()
