"""The pixel inputs the Python APIs accept, checked once at the API boundary (never inside `jit`).

Both models compute on float frames in [0, 1], channels last (H, W, C), as the datasets store them (uint8) after
dividing by 255. The rule for what a user passes:
- uint8 (0..255) is divided by 255: the datasets' own storage format;
- float16 / float32 / float64 must already lie in [0, 1] (within 1e-3) and be finite; values in 0..255 or in
  [-1, 1] are refused with the conversion that was probably meant;
- any other dtype (other integers, bool, complex) is refused: its scale is ambiguous;
- the last three axes must be (H, W, C) of the model; channels-first frames (C, H, W) are refused by name.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

RANGE_TOLERANCE = 1e-3


def unit_pixels(values: Any, name: str, frame_shape: tuple[int, int, int], leading: tuple[str, ...]) -> jax.Array:
    """`values` (*leading, H, W, C) as float32 in [0, 1], or ValueError naming `name`, what it got and what is
    expected. leading: the names of the axes before the frame, e.g. ('B', 'T'), each of size >= 1."""
    array = np.asarray(values)
    height, width, channels = frame_shape
    expected = f"({', '.join(leading)}, {height}, {width}, {channels})"
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"{name}: dtype {array.dtype} is not a pixel format; expected uint8 0..255 (divided by 255) or float in "
            f"[0, 1], shape {expected}"
        )
    if array.ndim != len(leading) + 3 or min(array.shape[: len(leading)], default=1) < 1:
        raise ValueError(f"{name} must have shape {expected} (channels last); got {array.shape}")
    frame = array.shape[-3:]
    if frame != (height, width, channels):
        if frame == (channels, height, width):
            raise ValueError(
                f"{name} is channels-first {array.shape}; expected channels last {expected}: "
                f"np.moveaxis({name}, -3, -1)"
            )
        raise ValueError(f"{name} must have shape {expected}; got {array.shape}")
    if array.dtype == np.uint8:
        return jnp.asarray(array, jnp.float32) / 255.0
    _check_unit_range(array, name)
    return jnp.asarray(array, jnp.float32)


def _check_unit_range(array: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name}: {bad} values are NaN or infinite; expected float pixels in [0, 1]")
    if array.size == 0:
        return
    low, high = float(array.min()), float(array.max())
    if low >= -RANGE_TOLERANCE and high <= 1 + RANGE_TOLERANCE:
        return
    hint = ""
    if low >= 0 and high <= 255:
        hint = f" (they look like 0..255 pixels: pass {name} / 255, or the uint8 array)"
    elif low >= -1 - RANGE_TOLERANCE and high <= 1 + RANGE_TOLERANCE:
        hint = f" (they look like [-1, 1] pixels: pass ({name} + 1) / 2)"
    raise ValueError(f"{name}: float values span [{low:g}, {high:g}]; expected pixels in [0, 1]{hint}")
