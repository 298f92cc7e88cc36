"""What a DRNet run shows every `model_test_interval` epochs, written under <workdir>/outputs/.

N = config.num_test_sequences fixed test clips (seeded, from the test split); E = the epoch.
Stage 1 (BatchNorm with running averages, as the original's eval-mode pictures):
- `rec_eE.png`: triplets (x_c, x_p, D(EC(x_c), EP(x_p))) with x_c a clip's first frame and x_p its last;
- `analogy_eE.png` / `.gif`: content × pose. Top row: the pose frames (clip 0, all T frames); left
  column: each clip's first frame (the content); cell (i, t) = D(EC(clip i frame 0), EP(clip 0 frame t))
  (the GIF animates clip 0 first, then each analogy row);
- `codes_eE.npz`: content codes (N, content_dim) of frame 0, pose codes (N, T, pose_dim), inputs, analogies.
Stage 2 (the frozen networks' BatchNorm as in training, config.frozen_bn_train_mode):
- `gen_eE.png`: per clip two rows: the n_past + n_future true frames, then the n_past true frames
  followed by n_future frames generated from the LSTM's own predictions;
- `rec_eE.png`: per clip the true frames and the one-step (teacher-forced) predictions decoded;
- `gen_long_eE.gif` / `.png`: n_past true frames then max(config.gen_horizon, n_future) generated frames,
  produced in chunks of config.gen_chunk frames (the PNG shows every k-th frame, at most 20 columns);
  `gen_eE.png` shows the first n_future of them.
"""

from __future__ import annotations

import os

import ml_collections
import numpy as np

from drnet_jax.api import DRNet
from drnet_jax.models import DRNetModules
from drnet_jax.state import variables
from vdcore import images
from vdcore.files import write_npz
from vdcore.training import TestSet

MAX_GRID_COLUMNS = 20


def analogy_grid(content_frames: np.ndarray, pose_frames: np.ndarray, analogies: np.ndarray) -> np.ndarray:
    """(N, S, S, C) content frames, (T, S, S, C) pose frames, (N, T, S, S, C) analogies → one image.

    Row 0: a blank cell, then the pose frames; row i + 1: content frame i, then analogy row i.
    """
    n, t = analogies.shape[:2]
    blank = np.ones_like(pose_frames[:1])
    header = np.concatenate([blank, pose_frames], axis=0)
    body = np.concatenate([content_frames[:, None], analogies], axis=1)
    cells = np.concatenate([header[None], body], axis=0).reshape((n + 1) * (t + 1), *pose_frames.shape[1:])
    return images.image_grid(cells, ncols=t + 1)


def write_stage1(model: DRNet, test: TestSet, out_dir: str, tag: str, fps: float) -> dict[str, str]:
    videos = test.videos
    n = videos.shape[0]
    paths: dict[str, str] = {}
    x_c, x_p = videos[:, 0], videos[:, -1]
    rec = model.decode(model.content(x_c), model.pose(x_p))
    triplets = np.stack([x_c, x_p, rec], axis=1).reshape(3 * n, *x_c.shape[1:])
    per_row = min(4, n)
    paths["rec"] = images.save_png(
        os.path.join(out_dir, f"rec_{tag}.png"), images.image_grid(triplets, ncols=3 * per_row)
    )

    pose_videos = np.repeat(videos[:1], n, axis=0)
    analogies = model.analogy(x_c, pose_videos)
    grid = analogy_grid(x_c, videos[0], analogies)
    paths["analogy"] = images.save_png(os.path.join(out_dir, f"analogy_{tag}.png"), grid)
    paths["analogy_gif"] = images.save_gif(
        os.path.join(out_dir, f"analogy_{tag}.gif"), np.concatenate([videos[:1], analogies]), fps, ncols=min(6, n + 1)
    )

    content = model.content(x_c)["content"]
    poses = model.pose(videos.reshape(-1, *videos.shape[2:])).reshape(n, videos.shape[1], -1)
    exported = {f"label_{k}": np.asarray(v) for k, v in test.labels.items()}
    paths["codes"] = os.path.join(out_dir, f"codes_{tag}.npz")
    write_npz(paths["codes"], inputs=videos, content=content, poses=poses, analogies=analogies, **exported)
    return paths


def write_stage2(
    model: DRNet, test: TestSet, out_dir: str, tag: str, config: ml_collections.ConfigDict
) -> dict[str, str]:
    videos = test.videos
    n_past, n_future = config.n_past, config.n_future
    paths: dict[str, str] = {}
    past = videos[:, :n_past]
    # One chunked generation serves both pictures: its first n_future frames are the short prediction.
    horizon = max(config.gen_horizon, n_future)
    chunks = [images.to_uint8(c) for c in model.predict_chunks(past, horizon, chunk_size=config.gen_chunk)]
    long_video = np.concatenate([images.to_uint8(past), *chunks], axis=1)
    rows = np.stack([images.to_uint8(videos), long_video[:, : n_past + n_future]], axis=1)
    rows = rows.reshape(-1, *videos.shape[1:])
    paths["gen"] = images.save_png(os.path.join(out_dir, f"gen_{tag}.png"), images.video_grid(rows))

    one_step = model.one_step_predictions(videos, n_past)
    rec = np.concatenate([videos[:, :1], one_step], axis=1)
    rows = np.stack([videos, rec], axis=1).reshape(-1, *videos.shape[1:])
    paths["rec"] = images.save_png(os.path.join(out_dir, f"rec_{tag}.png"), images.video_grid(rows))

    paths["gen_long_gif"] = images.save_gif(
        os.path.join(out_dir, f"gen_long_{tag}.gif"), long_video, config.gif_fps, ncols=min(5, len(long_video))
    )
    every = max(1, -(-long_video.shape[1] // MAX_GRID_COLUMNS))
    paths["gen_long"] = images.save_png(
        os.path.join(out_dir, f"gen_long_{tag}.png"), images.video_grid(long_video[:, ::every])
    )
    return paths


def write_all(
    config: ml_collections.ConfigDict, modules: DRNetModules, state, test: TestSet, workdir: str, epoch: int
) -> dict[str, str]:
    """Write every picture (and the stage-1 code export) for this epoch; returns {kind: path}."""
    params, batch_stats = variables(state)
    batch_statistics = config.stage == 2 and bool(config.frozen_bn_train_mode)
    model = DRNet(modules, params, batch_stats, config, batch_statistics)
    out_dir = os.path.join(workdir, "outputs")
    tag = f"e{epoch:04d}"
    if config.stage == 1:
        return write_stage1(model, test, out_dir, tag, config.gif_fps)
    return write_stage2(model, test, out_dir, tag, config)
