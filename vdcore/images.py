"""Pictures people look at: PNG grids of frames and videos, and animated GIFs.

Both model packages and the data tools write their previews, reconstructions and
swaps through these functions. Inputs are float arrays in [0, 1] or uint8 arrays,
channels last; 1-channel frames are written as grayscale. Files are written
atomically (temporary file, then rename), so a crash never leaves a broken picture.
"""

from __future__ import annotations

import os

import imageio.v3 as iio
import numpy as np

from vdcore.files import atomic_write


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """float in [0, 1] (clipped) or uint8 → uint8, same shape."""
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    return (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def image_grid(images: np.ndarray, ncols: int | None = None, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile images (N, H, W, C) into one uint8 image of ceil(N / ncols) rows × ncols columns."""
    images = to_uint8(images)
    if images.ndim != 4:
        raise ValueError(f"image_grid expects (N, H, W, C), got shape {images.shape}")
    n, h, w, c = images.shape
    ncols = n if ncols is None else max(1, min(ncols, n))
    nrows = -(-n // ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), pad_value, np.uint8)
    for k in range(n):
        r, q = divmod(k, ncols)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        grid[y : y + h, x : x + w] = images[k]
    return grid


def video_grid(videos: np.ndarray, max_frames: int | None = None, pad: int = 2) -> np.ndarray:
    """Videos (N, T, H, W, C) → one image: a row per video, a column per frame."""
    videos = np.asarray(videos)
    if videos.ndim != 5:
        raise ValueError(f"video_grid expects (N, T, H, W, C), got shape {videos.shape}")
    if max_frames is not None:
        videos = videos[:, :max_frames]
    n, t = videos.shape[:2]
    return image_grid(videos.reshape(n * t, *videos.shape[2:]), ncols=t, pad=pad)


def _squeeze_gray(image: np.ndarray) -> np.ndarray:
    return image[..., 0] if image.shape[-1] == 1 else image


def save_png(path: str | os.PathLike, image: np.ndarray) -> str:
    """Write one image (H, W, C) with C in {1, 3, 4}; returns the path."""
    image = to_uint8(image)
    return atomic_write(path, lambda tmp: iio.imwrite(tmp, _squeeze_gray(image), extension=".png"))


def save_gif(
    path: str | os.PathLike, videos: np.ndarray, fps: float = 10.0, pad: int = 2, ncols: int | None = None
) -> str:
    """Animate videos tiled `ncols` per row (default: all in one row): (N, T, H, W, C) or (T, H, W, C); loops."""
    videos = np.asarray(videos)
    if videos.ndim == 4:
        videos = videos[None]
    if videos.ndim != 5:
        raise ValueError(f"save_gif expects (N, T, H, W, C) or (T, H, W, C), got shape {videos.shape}")
    frames = np.stack([image_grid(videos[:, t], ncols=ncols, pad=pad) for t in range(videos.shape[1])])
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    duration_ms = 1000.0 / fps
    return atomic_write(path, lambda tmp: iio.imwrite(tmp, frames, extension=".gif", duration=duration_ms, loop=0))
