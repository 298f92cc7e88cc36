"""The API pixel rule (vdcore.pixels): uint8 divided by 255, floats in [0, 1], channels last; the rest refused by
name with what was expected."""

import numpy as np
import pytest

from vdcore.pixels import unit_pixels

FRAME = (8, 8, 3)


def _check(values):
    return unit_pixels(values, "videos", FRAME, ("B", "T"))


def test_uint8_is_divided_by_255_and_unit_floats_pass_unchanged():
    pixels = np.arange(2 * 3 * 8 * 8 * 3, dtype=np.int64).reshape(2, 3, 8, 8, 3) % 256
    np.testing.assert_allclose(_check(pixels.astype(np.uint8)), pixels / 255.0, rtol=1e-6)
    floats = np.random.default_rng(0).random((2, 3, *FRAME))
    np.testing.assert_allclose(_check(floats), floats, rtol=1e-6)
    assert _check(floats).dtype == np.float32


@pytest.mark.parametrize(
    "values, message",
    [
        (np.zeros((2, 3, *FRAME), np.int64), r"videos: dtype int64 is not a pixel format; expected uint8 0..255"),
        (np.zeros((2, 3, *FRAME), bool), r"videos: dtype bool is not a pixel format"),
        (np.zeros((2, 3, 3, 8, 8)), r"videos is channels-first \(2, 3, 3, 8, 8\); expected channels last"),
        (np.zeros((3, *FRAME)), r"videos must have shape \(B, T, 8, 8, 3\) \(channels last\); got \(3, 8, 8, 3\)"),
        (np.zeros((0, 3, *FRAME)), r"videos must have shape \(B, T, 8, 8, 3\)"),
        (np.zeros((2, 3, 8, 8, 1)), r"videos must have shape \(B, T, 8, 8, 3\); got \(2, 3, 8, 8, 1\)"),
        (np.full((2, 3, *FRAME), 200.0), r"videos: float values span \[200, 200\].*look like 0..255.*videos / 255"),
        (np.full((2, 3, *FRAME), -0.5), r"look like \[-1, 1\] pixels: pass \(videos \+ 1\) / 2"),
        (np.full((2, 3, *FRAME), 1000.0), r"float values span \[1000, 1000\]; expected pixels in \[0, 1\]$"),
        (np.full((2, 3, *FRAME), np.nan), r"videos: 1152 values are NaN or infinite"),
    ],
)
def test_bad_pixels_are_refused_by_name(values, message):
    with pytest.raises(ValueError, match=message):
        _check(values)


def test_rounding_slightly_outside_the_unit_range_is_accepted():
    assert float(_check(np.full((1, 1, *FRAME), 1.0005)).max()) == pytest.approx(1.0005)
