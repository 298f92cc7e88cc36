"""The judge network: a frame CNN, a bidirectional LSTM over the frames, one linear head per factor.

The protocol of DSVAE (Li & Mandt 2018), S3VAE (Zhu et al. 2020) and C-DSVAE (Bai et al. 2021): a DCGAN-style
frame encoder (stride-2 4x4 convolutions down to 4x4, then a linear map to `frame_features`), a bidirectional
LSTM over the frames, and a classifier per labelled factor on the LSTM's final forward and backward states.
Identity factors (the static ones) also get a per-frame head on the frame features, so a single frame (a
predicted DRNet frame, say) can be judged.

Digit judges can look through a window centred on each frame's centre of mass (`centroid_crop`): the CNN then
classifies a translation-normalised digit at full resolution, as an MNIST classifier does, and the window's
position (the centre of mass, scaled to [-1, 1]) joins the frame features so motion stays readable.

Convolutions use vdcore.layers.Conv2D (im2col + one matmul on CPU, the XLA convolution elsewhere).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from vdcore.layers import Conv2D
from vdcore.rnn import LSTM


def is_power_of_two_from_8(size: int) -> bool:
    """Whether the frame CNN's stride-2 levels can take `size` px (frames, or a centroid window) down to 4 px."""
    return size >= 8 and not size & (size - 1)


def average_pool(frames: jax.Array, resolution: int) -> jax.Array:
    """(N, S, S, C) → (N, r, r, C) by averaging S/r x S/r blocks (identity when S <= r)."""
    n, size, _, c = frames.shape
    if size <= resolution:
        return frames
    f = size // resolution
    return frames.reshape(n, resolution, f, resolution, f, c).mean(axis=(2, 4))


def centre_of_mass(frames: jax.Array) -> jax.Array:
    """(N, H, W, C) → (N, 2) intensity-weighted (row, column) of each frame, in pixels; a blank frame's middle."""
    _, h, w, _ = frames.shape
    mass = frames.sum(-1)
    total = mass.sum((1, 2))
    rows = (mass.sum(2) * jnp.arange(h, dtype=frames.dtype)).sum(1)
    cols = (mass.sum(1) * jnp.arange(w, dtype=frames.dtype)).sum(1)
    centre = jnp.stack([rows, cols], -1) / jnp.maximum(total, 1e-6)[:, None]
    middle = jnp.array([(h - 1) / 2, (w - 1) / 2], frames.dtype)
    return jnp.where(total[:, None] > 0, centre, middle)


def centroid_windows(frames: jax.Array, window: int) -> tuple[jax.Array, jax.Array]:
    """(N, S, S, C) → the (N, window, window, C) crops centred on each frame's centre of mass (shifted inside
    the frame where the centre is nearer an edge than window / 2), and the centres scaled to [-1, 1] (N, 2)."""
    size = frames.shape[1]
    if not 0 < window <= size:
        raise ValueError(f"centroid_crop must be in [1, {size}] for frames of {size} px; got {window}")
    centre = jax.lax.stop_gradient(centre_of_mass(frames))
    corner = jnp.clip(jnp.floor(centre + 0.5) - window // 2, 0, size - window).astype(jnp.int32)
    crop = lambda frame, at: jax.lax.dynamic_slice(frame, (at[0], at[1], 0), (window, window, frame.shape[-1]))  # noqa: E731
    return jax.vmap(crop)(frames, corner), centre / max(size - 1, 1) * 2 - 1


class FrameEncoder(nn.Module):
    """(N, S, S, C) frames in [0, 1] → (N, features). S must be a power of two >= 8.

    Frames larger than `resolution` are first averaged down to it: on a 2-core CPU a 64 px judge step (batch
    32 x 8 frames) costs ~1.5 s against ~0.25 s at 32 px, and 32 px keeps what the factors need (colours,
    poses, digit shapes drawn at >= 16 px).
    """

    features: int = 128
    width: int = 32
    resolution: int = 32
    convs_per_level: int = 1  # > 1: that many - 1 extra 3x3 stride-1 convolutions after each stride-2 one
    centroid_crop: int = 0  # > 0: look through a window this wide (power of two) centred on the centre of mass

    @nn.compact
    def __call__(self, frames: jax.Array) -> jax.Array:
        size = frames.shape[1]
        if frames.shape[2] != size or not is_power_of_two_from_8(size):
            raise ValueError(f"the judge's frames must be square with a power-of-two size >= 8; got {frames.shape}")
        position = None
        if self.centroid_crop:
            if not is_power_of_two_from_8(self.centroid_crop):
                raise ValueError(f"centroid_crop must be a power of two >= 8; got {self.centroid_crop}")
            frames, position = centroid_windows(frames, self.centroid_crop)
        x, channels = average_pool(frames, self.resolution), self.width
        while x.shape[1] > 4:
            x = nn.leaky_relu(Conv2D(channels, 4, stride=2, padding=1)(x), 0.2)
            for _ in range(self.convs_per_level - 1):
                x = nn.leaky_relu(Conv2D(channels, 3, stride=1, padding=1)(x), 0.2)
            channels = min(2 * channels, 8 * self.width)
        x = x.reshape(x.shape[0], -1)
        if position is not None:
            x = jnp.concatenate([x, position.astype(x.dtype)], -1)
        x = nn.Dense(self.features)(x)
        return nn.LayerNorm()(nn.leaky_relu(x, 0.2))


class Judge(nn.Module):
    """Classifies videos (B, T, S, S, C) in [0, 1].

    heads: ((name, num_classes, framewise), ...). Returns {'logits': {name: (B, K)}, 'frame_logits':
    {name: (B, T, K)} for the framewise heads, 'features': (B, 2·hidden)} — the penultimate features are the
    LSTM's final states, both directions concatenated (the features of the Fréchet distance).
    """

    heads: tuple[tuple[str, int, bool], ...]
    frame_features: int = 128
    hidden: int = 128
    width: int = 32
    resolution: int = 32
    convs_per_level: int = 1
    pool_frame_logits: bool = False  # framewise heads' clip logits += their frame logits averaged over time
    centroid_crop: int = 0  # FrameEncoder.centroid_crop

    @nn.compact
    def __call__(self, videos: jax.Array) -> dict:
        b, t = videos.shape[:2]
        frames = FrameEncoder(
            self.frame_features, self.width, self.resolution, self.convs_per_level, self.centroid_crop
        )(videos.reshape(b * t, *videos.shape[2:]))
        frames = frames.reshape(b, t, -1)
        zeros = jnp.zeros((2, b, self.hidden), frames.dtype)
        _, (h_n, _) = LSTM(self.hidden, bidirectional=True)(frames, (zeros, zeros))
        features = jnp.concatenate([h_n[0], h_n[1]], axis=-1)
        logits = {name: nn.Dense(k, name=f"head_{name}")(features) for name, k, _ in self.heads}
        frame_logits = {
            name: nn.Dense(k, name=f"frame_{name}")(frames) for name, k, framewise in self.heads if framewise
        }
        if self.pool_frame_logits:
            logits = {
                name: value + frame_logits[name].mean(1) if name in frame_logits else value
                for name, value in logits.items()
            }
        return {"logits": logits, "frame_logits": frame_logits, "features": features}
