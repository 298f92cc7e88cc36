"""The Python API of a trained DRNet.

    from drnet_jax import DRNet
    model = DRNet.from_checkpoint("runs/mnist/stage2")   # a workdir or its checkpoints folder
    model = DRNet.from_checkpoint("drnet-py/model.pth", config)   # or the authors' PyTorch file (needs its config)
    code = model.content(frames)      # frames: float (B, S, S, nc) in [0, 1]
    code["content"]                   # (B, content_dim)
    code["skips"]                     # tuple of EC's feature maps (B, h, w, c) the unet decoders use; () for 'dcgan'
    poses = model.pose(frames)        # (B, pose_dim)
    model.decode(code, poses)         # → frames (B, S, S, nc); `code` may also be (h_c, skips) or, for
                                      #   content_model 'dcgan', the bare (B, content_dim) array
    model.analogy(content_frames, pose_videos)   # (B, S, S, nc), (B, T, S, S, nc) → (B, T, S, S, nc)
    model.predict(videos, n_future)   # videos (B, n_past, S, S, nc) → the next n_future frames (stage-2 models)
    for chunk in model.predict_chunks(videos, 1000, chunk_size=50): ...   # the same, chunk by chunk

Every array comes back as numpy float32. BatchNorm uses the stage-1 running averages
(each example independent of the rest of its batch) unless `batch_statistics=True`,
which normalises with the batch's own statistics, as the original's stage-2 code does
(then every call needs B >= 2, and results depend on the batch).

`predict` conditions the LSTM on the poses of the given frames, takes the content (and
skips) of the last given frame, and feeds each predicted pose back. It runs in compiled
chunks of `chunk_size` steps, each decoded and moved to the host before the next, so
device memory stays that of one chunk whatever the horizon.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from drnet_jax.config_defaults import stage_config
from drnet_jax.models import BatchStats, DRNetModules, LSTMCarry, Params
from drnet_jax.networks import expected_skip_shapes
from drnet_jax.state import config_from_meta, read_meta, restore_state, variables
from drnet_jax.torch_import import load_torch_checkpoint
from vdcore.pixels import unit_pixels
from vdcore.torch_checkpoint import is_torch_checkpoint_path

DEFAULT_CHUNK = 50


@functools.partial(jax.jit, static_argnums=(0, 4))
def _content(modules: DRNetModules, params: Params, stats: BatchStats, frames: jax.Array, train: bool):
    return modules.encode_content(params, stats, frames, train)[0]


@functools.partial(jax.jit, static_argnums=(0, 4))
def _pose(modules: DRNetModules, params: Params, stats: BatchStats, frames: jax.Array, train: bool):
    return modules.encode_pose(params, stats, frames, train)[0]


@functools.partial(jax.jit, static_argnums=(0, 6))
def _decode(modules: DRNetModules, params: Params, stats: BatchStats, h_c, skips, h_p, train: bool):
    return modules.decode(params, stats, h_c, skips, h_p, train)[0]


@functools.partial(jax.jit, static_argnums=(0, 5))
def _analogy(modules: DRNetModules, params: Params, stats: BatchStats, content_frames, pose_videos, train: bool):
    (h_c, skips), _ = modules.encode_content(params, stats, content_frames, train)
    poses = modules.pose_sequence(params, stats, pose_videos, train)
    return modules.decode_sequence(params, stats, h_c, skips, poses, train)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _condition(
    modules: DRNetModules, params: Params, stats: BatchStats, videos: jax.Array, train: bool
) -> tuple[LSTMCarry, jax.Array, tuple[jax.Array, ...]]:
    (h_c, skips), _ = modules.encode_content(params, stats, videos[:, -1], train)
    poses = modules.pose_sequence(params, stats, videos, train)
    return modules.lstm_condition(params, poses, h_c), h_c, skips


@functools.partial(jax.jit, static_argnums=(0, 6, 7))
def _rollout(
    modules: DRNetModules,
    params: Params,
    stats: BatchStats,
    carry: LSTMCarry,
    h_c: jax.Array,
    skips: tuple[jax.Array, ...],
    steps: int,
    train: bool,
) -> tuple[LSTMCarry, jax.Array]:
    carry, poses = modules.lstm_rollout(params, carry, h_c, steps)
    return carry, modules.decode_sequence(params, stats, h_c, skips, poses, train)


@functools.partial(jax.jit, static_argnums=(0, 4, 5))
def _one_step(modules: DRNetModules, params: Params, stats: BatchStats, videos, n_past: int, train: bool):
    (h_c, skips), _ = modules.encode_content(params, stats, videos[:, n_past - 1], train)
    poses = modules.pose_sequence(params, stats, videos, train)
    preds = modules.lstm_teacher_forced(params, poses[:, :-1], h_c)
    return modules.decode_sequence(params, stats, h_c, skips, preds, train)


class DRNet:
    """A trained DRNet: its networks, variables and flat config.

    params: {'content_encoder', 'pose_encoder', 'decoder'[, 'scene_discriminator'][, 'lstm']};
    batch_stats: BatchNorm running averages of the first three. `batch_statistics`: see the module docstring.
    """

    def __init__(
        self,
        modules: DRNetModules,
        params: Params,
        batch_stats: BatchStats,
        config: ml_collections.ConfigDict,
        batch_statistics: bool = False,
    ):
        self.modules = modules
        self.params = jax.device_put(params)  # on the device once, not per call
        self.batch_stats = jax.device_put(batch_stats)
        self.config = config
        self.batch_statistics = bool(batch_statistics)

    @classmethod
    def from_checkpoint(
        cls,
        workdir_or_path: str | os.PathLike,
        config: ml_collections.ConfigDict | None = None,
        step: int | None = None,
        batch_statistics: bool = False,
        stage1_checkpoint: str | os.PathLike | None = None,
    ) -> DRNet:
        """Load a drnet_jax run (its workdir or checkpoints folder; newest step unless `step`), or an authors'
        PyTorch checkpoint (a path ending in .pth / .pt, or any file; see drnet_jax.torch_import).

        `config` defaults to the one stored in the run's checkpoint; a given config must match its shapes. A torch
        checkpoint needs `config` (its networks' models and sizes; its stage must be the file's, or 0 for either).
        `stage1_checkpoint`: the stage-1 model.pth of an authors' LSTM-only stage-2 file, where it is not found
        by itself (drnet_jax.torch_import).
        """
        if is_torch_checkpoint_path(workdir_or_path):
            if config is None:
                raise ValueError(
                    f"{workdir_or_path}: loading a torch checkpoint needs the config of its networks "
                    "(the get_config() of the configs/drnet/*.py file that describes them)"
                )
            if step is not None:
                raise ValueError(f"{workdir_or_path}: a torch checkpoint holds one state; step={step} does not apply")
            loaded = load_torch_checkpoint(os.fspath(workdir_or_path), config, stage1_checkpoint)
            modules = DRNetModules.from_config(loaded.config)
            return cls(modules, loaded.params, loaded.batch_stats, loaded.config, batch_statistics)
        if stage1_checkpoint is not None:
            raise ValueError(f"{workdir_or_path}: stage1_checkpoint is for an authors' torch file, not a drnet_jax run")
        meta = read_meta(workdir_or_path, step)
        config = config_from_meta(meta) if config is None else stage_config(config, meta["stage"])
        modules = DRNetModules.from_config(config)
        state, _ = restore_state(config, modules, workdir_or_path, step)
        params, batch_stats = variables(state)
        return cls(modules, params, batch_stats, config, batch_statistics)

    @property
    def stage(self) -> int:
        return 2 if "lstm" in self.params else 1

    # -- input checks -------------------------------------------------------------------------------------------------
    @property
    def _frame_shape(self) -> tuple[int, int, int]:
        return (self.modules.image_width, self.modules.image_width, self.modules.channels)

    def _frames(self, frames: Any, name: str = "frames") -> jax.Array:
        """uint8 0..255 or float [0, 1] frames (B, H, W, C) → float32 (vdcore.pixels states the rule)."""
        return self._batch_ok(unit_pixels(frames, name, self._frame_shape, ("B",)), name)

    def _videos(self, videos: Any, name: str = "videos") -> jax.Array:
        """uint8 0..255 or float [0, 1] videos (B, T, H, W, C) → float32 (vdcore.pixels states the rule)."""
        return self._batch_ok(unit_pixels(videos, name, self._frame_shape, ("B", "T")), name)

    def _batch_ok(self, x: jax.Array, name: str) -> jax.Array:
        if x.shape[0] < 1 or (self.batch_statistics and x.shape[0] < 2):
            need = "B >= 2 (batch_statistics=True normalises over the batch)" if self.batch_statistics else "B >= 1"
            raise ValueError(f"{name} needs {need}; got shape {x.shape}")
        return x

    def _content_code(self, content: Any, batch: int) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        if isinstance(content, dict):
            h_c, skips = content.get("content"), content.get("skips", ())
        elif isinstance(content, (tuple, list)) and len(content) == 2:
            h_c, skips = content
        else:
            h_c, skips = content, ()
        h_c = jnp.asarray(h_c, jnp.float32)
        skips = tuple(jnp.asarray(s, jnp.float32) for s in skips)
        if h_c.shape != (batch, self.modules.content_dim):
            raise ValueError(f"content must be ({batch}, {self.modules.content_dim}); got {h_c.shape}")
        expected = tuple(
            (batch, *shape) for shape in expected_skip_shapes(self.modules.content_model, self.modules.image_width)
        )
        got = tuple(s.shape for s in skips)
        if got != expected:
            raise ValueError(
                f"content_model {self.modules.content_model!r} decodes with skips of shapes {expected}; got {got} "
                "(pass the dict that model.content() returns)"
            )
        return h_c, skips

    # -- the API --------------------------------------------------------------------------------------------------------
    def content(self, frames: Any) -> dict[str, Any]:
        """frames (B, S, S, nc) → {'content': (B, content_dim), 'skips': tuple of (B, h, w, c) feature maps}."""
        h_c, skips = _content(self.modules, self.params, self.batch_stats, self._frames(frames), self.batch_statistics)
        return {"content": np.asarray(h_c), "skips": tuple(np.asarray(s) for s in skips)}

    def pose(self, frames: Any) -> np.ndarray:
        """frames (B, S, S, nc) → pose vectors (B, pose_dim)."""
        return np.asarray(
            _pose(self.modules, self.params, self.batch_stats, self._frames(frames), self.batch_statistics)
        )

    def decode(self, content: Any, pose: Any) -> np.ndarray:
        """content (see the module docstring) and pose (B, pose_dim) → frames (B, S, S, nc) in (0, 1)."""
        pose = jnp.asarray(pose, jnp.float32)
        if pose.ndim != 2 or pose.shape[1] != self.modules.pose_dim:
            raise ValueError(f"pose must be (B, {self.modules.pose_dim}); got {pose.shape}")
        self._batch_ok(pose, "pose")
        h_c, skips = self._content_code(content, pose.shape[0])
        return np.asarray(_decode(self.modules, self.params, self.batch_stats, h_c, skips, pose, self.batch_statistics))

    def analogy(self, content_frames: Any, pose_videos: Any) -> np.ndarray:
        """Video i = the content of content_frames[i] (B, S, S, nc) moving with the poses of pose_videos[i] (B, T, ...)."""
        frames = self._frames(content_frames, "content_frames")
        videos = self._videos(pose_videos, "pose_videos")
        if frames.shape[0] != videos.shape[0]:
            raise ValueError(
                f"content_frames and pose_videos need the same B; got {frames.shape[0]} and {videos.shape[0]}"
            )
        return np.asarray(_analogy(self.modules, self.params, self.batch_stats, frames, videos, self.batch_statistics))

    def _need_lstm(self) -> None:
        if self.stage != 2:
            raise ValueError("this is a stage-1 DRNet (no pose LSTM); load a stage-2 run to predict")

    def predict_chunks(self, videos: Any, n_future: int, chunk_size: int | None = None) -> Iterator[np.ndarray]:
        """Predict n_future frames after videos (B, n_past, S, S, nc), yielding (B, k, S, S, nc) chunks, k <= chunk_size.

        Each chunk is one compiled call (the last one computes a full chunk and is trimmed, so one program serves
        every horizon); its frames reach the host before the next chunk starts.
        """
        self._need_lstm()
        videos = self._videos(videos)
        if isinstance(n_future, bool) or not isinstance(n_future, (int, np.integer)) or n_future < 1:
            raise ValueError(f"n_future must be an int >= 1, got {n_future!r}")
        chunk = DEFAULT_CHUNK if chunk_size is None else chunk_size
        if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
            raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
        chunk = int(min(chunk, n_future))
        return self._generate(videos, int(n_future), chunk)

    def _generate(self, videos: jax.Array, n_future: int, chunk: int) -> Iterator[np.ndarray]:
        train = self.batch_statistics
        carry, h_c, skips = _condition(self.modules, self.params, self.batch_stats, videos, train)
        done = 0
        while done < n_future:
            carry, frames = _rollout(self.modules, self.params, self.batch_stats, carry, h_c, skips, chunk, train)
            take = min(chunk, n_future - done)
            out = np.asarray(jax.device_get(frames))[:, :take]
            del frames
            done += take
            yield out

    def predict(self, videos: Any, n_future: int, chunk_size: int | None = None) -> np.ndarray:
        """videos (B, n_past, S, S, nc) → the n_future predicted frames after them (B, n_future, S, S, nc)."""
        return np.concatenate(list(self.predict_chunks(videos, n_future, chunk_size)), axis=1)

    def one_step_predictions(self, videos: Any, n_past: int) -> np.ndarray:
        """Teacher forcing as in training: frame t+1's predicted pose from the true pose of frame t, decoded with the
        content of frame n_past-1 → (B, T-1, S, S, nc) for videos (B, T, S, S, nc)."""
        self._need_lstm()
        videos = self._videos(videos)
        if not 1 <= n_past <= videos.shape[1] or videos.shape[1] < 2:
            raise ValueError(f"need 1 <= n_past <= T and T >= 2; got n_past={n_past}, videos {videos.shape}")
        return np.asarray(
            _one_step(self.modules, self.params, self.batch_stats, videos, int(n_past), self.batch_statistics)
        )
