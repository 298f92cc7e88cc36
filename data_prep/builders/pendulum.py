"""Procedural damped-pendulum videos whose factors of variation are all known.

VDSM shows 60-frame pendulum swings but its generator is unpublished; this is an
independent design, not a reproduction.

Appearance ("identity", categorical): bob colour (a named palette), bob radius and
rod length. Every combination is one identity, numbered
`identity = (colour * n_radii + radius) * n_lengths + length`. Train and test use
disjoint identities: a seeded random `test_fraction` of the combinations (at least
one, and at least one left for training) is held out for test, so test videos show
pendulums never seen in training.

Dynamics: initial angle θ0 (radians; 0 = hanging straight down, positive = bob to
the right), initial angular velocity ω0 (rad/s) and linear damping c (1/s), drawn
uniformly from the config ranges and stored both as floats and as integer bins.
The motion is the damped nonlinear pendulum

    θ'' = -(g / L) sin θ - c θ'

with L the rod length in metres and g in m/s², integrated with fixed-step RK4
(`substeps` steps per frame of `frame_dt` seconds). Frame t shows the state at time
t * frame_dt seconds, so frame 0 shows θ0.

Rendering (pixels, y pointing down): the pivot sits at (image_size / 2,
pivot_y * image_size); the bob centre at pivot + L_px * (sin θ, cos θ) where one
metre spans `metre_fraction * image_size` pixels; bob radius and rod width are
fractions of image_size. Rod and bob are drawn with analytic box-filter coverage:
a pixel whose centre lies at distance d from a shape's centre line (rod) or centre
(bob) of half-width h is blended by |[d - 1/2, d + 1/2] ∩ [-h, h]|, the exact
coverage of a one-pixel box by a straight edge, so edges get intermediate values.
All frames are rendered at once with coordinate grids. Configs whose bob could leave
the frame are rejected in `PendulumConfig.__post_init__`. Every sequence is a pure
function of (seed, split, index).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import tensorflow_datasets as tfds

from data_prep.builders.base import VideoBuilderConfig, VideoDatasetBuilder, float_label, int_label

SPLIT_IDS = {"train": 0, "test": 1}
# Random stream that picks the held-out identities; distinct from the per-example streams.
IDENTITY_SPLIT_STREAM = 2

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (235, 50, 40),
    "green": (40, 200, 60),
    "blue": (50, 100, 250),
    "yellow": (245, 215, 40),
    "cyan": (40, 215, 225),
    "magenta": (220, 60, 220),
    "orange": (250, 140, 30),
    "white": (245, 245, 245),
}
DEFAULT_COLOURS = ("red", "green", "blue", "yellow", "cyan", "magenta")


def _check_rgb(name: str, field: str, value: Sequence[int]) -> tuple[int, int, int]:
    rgb = tuple(int(v) for v in value)
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise ValueError(f"{name}: {field} must be 3 integers in [0, 255], got {value!r}")
    return rgb


def _check_range(name: str, field: str, value: Sequence[float]) -> tuple[float, float]:
    pair = tuple(float(v) for v in value)
    if len(pair) != 2 or not all(math.isfinite(v) for v in pair) or pair[0] > pair[1]:
        raise ValueError(f"{name}: {field} must be a finite (low, high) pair with low <= high, got {value!r}")
    return pair


@dataclasses.dataclass
class PendulumConfig(VideoBuilderConfig):
    """Pendulum geometry, physics and sampling ranges (units in the field comments)."""

    image_size: int = 64  # pixels (square frames)
    seq_len: int = 60  # frames
    num_train: int = 5_000
    num_test: int = 1_000
    test_fraction: float = 0.2  # fraction of appearance combinations held out for test
    colours: tuple[str, ...] = DEFAULT_COLOURS  # names from PALETTE
    bob_radii: tuple[float, ...] = (0.05, 0.07, 0.09)  # fractions of image_size
    rod_lengths: tuple[float, ...] = (0.6, 0.8, 1.0)  # metres
    metre_fraction: float = 0.4  # one metre spans metre_fraction * image_size pixels
    pivot_y: float = 0.25  # pivot below the top edge, fraction of image_size; x is the centre
    rod_width: float = 0.025  # fraction of image_size
    rod_colour: tuple[int, int, int] = (150, 150, 150)  # RGB
    background: tuple[int, int, int] = (0, 0, 0)  # RGB
    angle_range: tuple[float, float] = (-math.pi / 3, math.pi / 3)  # radians, within [-pi, pi]
    velocity_range: tuple[float, float] = (-2.0, 2.0)  # rad/s
    damping_range: tuple[float, float] = (0.0, 0.5)  # 1/s, >= 0
    num_bins: int = 5  # bins of each dynamics factor over its range
    gravity: float = 9.81  # m/s^2
    frame_dt: float = 0.05  # seconds between frames
    substeps: int = 10  # RK4 steps per frame

    def __post_init__(self):
        super().__post_init__()
        name = self.name
        if self.image_size < 8 or self.seq_len < 2 or self.num_train < 1 or self.num_test < 1:
            raise ValueError(f"{name}: need image_size >= 8, seq_len >= 2, num_train >= 1 and num_test >= 1")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"{name}: test_fraction must be in (0, 1), got {self.test_fraction}")
        self.colours = tuple(self.colours)
        unknown = [c for c in self.colours if c not in PALETTE]
        if unknown or not self.colours or len(set(self.colours)) != len(self.colours):
            raise ValueError(f"{name}: colours must be distinct names from {sorted(PALETTE)}, got {self.colours!r}")
        self.bob_radii = tuple(float(r) for r in self.bob_radii)
        self.rod_lengths = tuple(float(v) for v in self.rod_lengths)
        for field, values in (("bob_radii", self.bob_radii), ("rod_lengths", self.rod_lengths)):
            if not values or min(values) <= 0 or len(set(values)) != len(values):
                raise ValueError(f"{name}: {field} must be distinct positive values, got {values!r}")
        if self.num_identities < 2:
            raise ValueError(
                f"{name}: need at least 2 appearance combinations (one for train, one for test), "
                f"got {self.num_identities}"
            )
        if min(self.bob_radii) * self.image_size < 1.0:
            raise ValueError(f"{name}: bob radius {min(self.bob_radii)} is under 1 px at image_size {self.image_size}")
        if self.rod_width <= 0 or self.metre_fraction <= 0 or not 0.0 <= self.pivot_y < 1.0:
            raise ValueError(f"{name}: need rod_width > 0, metre_fraction > 0 and 0 <= pivot_y < 1")
        self.rod_colour = _check_rgb(name, "rod_colour", self.rod_colour)
        self.background = _check_rgb(name, "background", self.background)
        self.angle_range = _check_range(name, "angle_range", self.angle_range)
        self.velocity_range = _check_range(name, "velocity_range", self.velocity_range)
        self.damping_range = _check_range(name, "damping_range", self.damping_range)
        if max(abs(a) for a in self.angle_range) > math.pi:
            raise ValueError(f"{name}: angle_range must lie within [-pi, pi] radians, got {self.angle_range}")
        if self.damping_range[0] < 0:
            raise ValueError(f"{name}: damping_range must be >= 0 (1/s), got {self.damping_range}")
        if self.num_bins < 1 or self.substeps < 1 or self.gravity <= 0 or self.frame_dt <= 0:
            raise ValueError(f"{name}: need num_bins >= 1, substeps >= 1, gravity > 0 and frame_dt > 0")
        self._check_bob_in_frame()

    # -- geometry in pixels ---------------------------------------------------------
    @property
    def num_identities(self) -> int:
        return len(self.colours) * len(self.bob_radii) * len(self.rod_lengths)

    @property
    def pivot_px(self) -> tuple[float, float]:
        """Pivot (x, y) in pixels; pixel i spans [i, i + 1)."""
        return self.image_size / 2.0, self.pivot_y * self.image_size

    def length_px(self, length_m: float) -> float:
        return length_m * self.metre_fraction * self.image_size

    def radius_px(self, radius_fraction: float) -> float:
        return radius_fraction * self.image_size

    def max_swing(self, length_m: float) -> float:
        """Largest |θ| (radians) any sampled motion with rod `length_m` can reach.

        Damping is >= 0, so the energy never exceeds the initial one; the worst case
        starts at the largest |θ0| with the largest |ω0|. Returns pi when the
        pendulum can go over the top.
        """
        theta0 = max(abs(a) for a in self.angle_range)
        omega0 = max(abs(v) for v in self.velocity_range)
        height = (1.0 - math.cos(theta0)) + omega0**2 * length_m / (2.0 * self.gravity)  # in units of L
        return math.pi if height >= 2.0 else math.acos(1.0 - height)

    def _check_bob_in_frame(self) -> None:
        px, py = self.pivot_px
        radius = self.radius_px(max(self.bob_radii))
        for length_m in self.rod_lengths:
            swing, length = self.max_swing(length_m), self.length_px(length_m)
            reach_x = length * math.sin(min(swing, math.pi / 2))
            top, bottom = py + length * math.cos(swing) - radius, py + length + radius
            left, right = px - reach_x - radius, px + reach_x + radius
            if top < 0 or left < 0 or bottom > self.image_size or right > self.image_size:
                raise ValueError(
                    f"{self.name}: the bob can leave the {self.image_size}x{self.image_size} frame: rod "
                    f"{length_m:g} m ({length:.1f} px) with radius {radius:.1f} px can swing to "
                    f"{math.degrees(swing):.0f} deg, spanning x [{left:.1f}, {right:.1f}], y [{top:.1f}, "
                    f"{bottom:.1f}]; shorten rod_lengths/metre_fraction, shrink bob_radii or narrow "
                    "angle_range/velocity_range"
                )


# -- identities and splits ------------------------------------------------------------
def decode_identity(identity: int, cfg: PendulumConfig) -> tuple[int, int, int]:
    """(colour, radius, length) class indices of an identity number."""
    shape = (len(cfg.colours), len(cfg.bob_radii), len(cfg.rod_lengths))
    colour, radius, length = np.unravel_index(identity, shape)
    return int(colour), int(radius), int(length)


def identity_split(cfg: PendulumConfig) -> dict[str, np.ndarray]:
    """Sorted identity numbers of each split: a seeded random `test_fraction` goes to test."""
    n = cfg.num_identities
    n_test = min(n - 1, max(1, round(cfg.test_fraction * n)))
    order = np.random.default_rng([cfg.seed, IDENTITY_SPLIT_STREAM]).permutation(n)
    return {"train": np.sort(order[n_test:]), "test": np.sort(order[:n_test])}


def value_bin(value: float, value_range: tuple[float, float], num_bins: int) -> int:
    """Index of the equal-width bin of `value_range` holding `value` (0 for a degenerate range)."""
    low, high = value_range
    if high <= low:
        return 0
    return int(min(max(math.floor((value - low) / (high - low) * num_bins), 0), num_bins - 1))


# -- physics --------------------------------------------------------------------------
def simulate(
    theta0: float,
    omega0: float,
    damping: float,
    length_m: float,
    *,
    gravity: float,
    frame_dt: float,
    substeps: int,
    num_frames: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Angles (rad) and angular velocities (rad/s), each (num_frames,) float64, at t = k * frame_dt s.

    Fixed-step RK4 on θ'' = -(g/L) sin θ - c θ' with step frame_dt / substeps.
    Scalar Python floats: one sequence needs only num_frames * substeps steps.
    """
    h = frame_dt / substeps
    k = gravity / length_m

    def accel(theta: float, omega: float) -> float:
        return -k * math.sin(theta) - damping * omega

    angles = np.empty(num_frames)
    velocities = np.empty(num_frames)
    theta, omega = float(theta0), float(omega0)
    for t in range(num_frames):
        angles[t], velocities[t] = theta, omega
        for _ in range(substeps):
            a1 = accel(theta, omega)
            w2 = omega + 0.5 * h * a1
            a2 = accel(theta + 0.5 * h * omega, w2)
            w3 = omega + 0.5 * h * a2
            a3 = accel(theta + 0.5 * h * w2, w3)
            w4 = omega + h * a3
            a4 = accel(theta + h * w3, w4)
            theta += h / 6.0 * (omega + 2.0 * w2 + 2.0 * w3 + w4)
            omega += h / 6.0 * (a1 + 2.0 * a2 + 2.0 * a3 + a4)
    return angles, velocities


# -- rendering ------------------------------------------------------------------------
def bob_centres(angles: np.ndarray, length_px: float, cfg: PendulumConfig) -> np.ndarray:
    """Bob centres (T, 2) as (x, y) pixels: pivot + length_px * (sin θ, cos θ)."""
    px, py = cfg.pivot_px
    return np.stack([px + length_px * np.sin(angles), py + length_px * np.cos(angles)], axis=-1)


def _coverage(distance: np.ndarray, half_width: float) -> np.ndarray:
    """Fraction of a 1-px box at `distance` (>= 0) from a centre line covered by a band of `half_width`."""
    return np.clip(np.minimum(distance + 0.5, half_width) - np.maximum(distance - 0.5, -half_width), 0.0, 1.0)


def render(
    angles: np.ndarray, colour: Sequence[int], radius_px: float, length_px: float, cfg: PendulumConfig
) -> np.ndarray:
    """uint8 video (T, H, W, 3): rod then bob, antialiased, over the background; all frames at once."""
    grid = np.arange(cfg.image_size, dtype=np.float32) + 0.5  # pixel centres
    gx, gy = grid[None, None, :], grid[None, :, None]
    px, py = (np.float32(v) for v in cfg.pivot_px)
    ux = np.sin(angles).astype(np.float32)[:, None, None]  # unit vector pivot -> bob, (T, 1, 1)
    uy = np.cos(angles).astype(np.float32)[:, None, None]
    rx, ry = gx - px, gy - py  # pixel centres relative to the pivot
    along = np.clip(rx * ux + ry * uy, 0.0, length_px)  # closest point on the rod, as distance from the pivot
    dx, dy = rx - along * ux, ry - along * uy
    rod = _coverage(np.sqrt(dx * dx + dy * dy), 0.5 * cfg.rod_width * cfg.image_size)
    dx, dy = rx - length_px * ux, ry - length_px * uy
    bob = _coverage(np.sqrt(dx * dx + dy * dy), radius_px)
    video = np.empty(bob.shape + (3,), np.uint8)
    for c in range(3):  # per channel: broadcasting over a trailing axis of 3 is several times slower
        channel = cfg.background[c] + rod * np.float32(cfg.rod_colour[c] - cfg.background[c])
        channel += bob * (np.float32(colour[c]) - channel)
        video[..., c] = np.rint(channel)  # convex blends of values in [0, 255]: no clipping needed
    return video


def make_example(cfg: PendulumConfig, split: str, index: int, identities: np.ndarray | None = None) -> dict:
    """One example (video + labels), a pure function of (cfg, split, index).

    `identities` is `identity_split(cfg)[split]`, passed in to avoid recomputing it.
    """
    if identities is None:
        identities = identity_split(cfg)[split]
    rng = np.random.default_rng([cfg.seed, SPLIT_IDS[split], index])
    identity = int(identities[rng.integers(len(identities))])
    colour, radius, length = decode_identity(identity, cfg)
    theta0 = float(rng.uniform(*cfg.angle_range))
    omega0 = float(rng.uniform(*cfg.velocity_range))
    damping = float(rng.uniform(*cfg.damping_range))
    length_m = cfg.rod_lengths[length]
    angles, _ = simulate(
        theta0,
        omega0,
        damping,
        length_m,
        gravity=cfg.gravity,
        frame_dt=cfg.frame_dt,
        substeps=cfg.substeps,
        num_frames=cfg.seq_len,
    )
    video = render(
        angles, PALETTE[cfg.colours[colour]], cfg.radius_px(cfg.bob_radii[radius]), cfg.length_px(length_m), cfg
    )
    return {
        "video": video,
        "colour": colour,
        "radius": radius,
        "length": length,
        "identity": identity,
        "angle_bin": value_bin(theta0, cfg.angle_range, cfg.num_bins),
        "velocity_bin": value_bin(omega0, cfg.velocity_range, cfg.num_bins),
        "damping_bin": value_bin(damping, cfg.damping_range, cfg.num_bins),
        "initial_angle": np.float32(theta0),
        "initial_velocity": np.float32(omega0),
        "damping": np.float32(damping),
        "angles": angles.astype(np.float32),
    }


class Pendulum(VideoDatasetBuilder):
    """Procedural damped pendulum swings; labels: appearance classes, identity, dynamics (bins and floats), angles."""

    BUILDER_CONFIGS = [
        PendulumConfig(name="pendulum64", description="60-frame pendulum swings at 64x64 RGB, 54 appearances."),
        PendulumConfig(
            name="pendulum32", description="60-frame pendulum swings at 32x32 RGB, 54 appearances.", image_size=32
        ),
    ]

    def _video_shape(self):
        cfg = self.builder_config
        return (cfg.seq_len, cfg.image_size, cfg.image_size, 3)

    def _label_features(self):
        return {
            **{name: int_label() for name in ("colour", "radius", "length", "identity")},
            **{name: int_label() for name in ("angle_bin", "velocity_bin", "damping_bin")},
            **{name: float_label() for name in ("initial_angle", "initial_velocity", "damping")},
            "angles": float_label((self.builder_config.seq_len,)),
        }

    def label_classes(self):
        cfg = self.builder_config
        radii = [f"{r:g}" for r in cfg.bob_radii]
        lengths = [f"{v:g} m" for v in cfg.rod_lengths]
        return {
            "colour": list(cfg.colours),
            "radius": radii,
            "length": lengths,
            "identity": [f"{c}/r{r}/{v}" for c in cfg.colours for r in radii for v in lengths],
        }

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        cfg = self.builder_config
        splits = identity_split(cfg)
        self.info.metadata["identity_split"] = {split: ids.tolist() for split, ids in splits.items()}
        counts = {"train": cfg.num_train, "test": cfg.num_test}
        return {split: self._generate_examples(split, splits[split], counts[split]) for split in SPLIT_IDS}

    def _generate_examples(self, split: str, identities: np.ndarray, count: int):
        cfg = self.builder_config
        for index in range(count):
            yield index, make_example(cfg, split, index, identities)
