"""The frozen stage-1 encoders' codes of every training clip, computed once (config.pose_codes = 'cached').

A deviation from the original (Denton & Birodkar, NeurIPS 2017; github.com/edenton/drnet-py, train_lstm.py),
which runs the frozen content and pose encoders over every stage-2 batch with BatchNorm on batch statistics.
With the encoders frozen and BatchNorm on its stage-1 running averages (config.frozen_bn_train_mode False), a
frame's codes never change during stage 2: computing them once per clip of the training split and training the
LSTM on windows of them gives the loss and gradients of running the encoders in every step
(tests/test_drnet_train.py), and the step is the LSTM alone. The cost moves into one pass over the split when
stage 2 starts (or resumes): every frame through EP, and through EC the frames a window can observe last.

Codes of clip i (L_i frames), for windows of T = n_past + n_future frames:
  per frame  'poses'   (L_i, pose_dim):          EP(frame t);
  per start  'content' (L_i - T + 1, content_dim): EC(frame s + n_past - 1), the content code of the window
                                                   that starts at frame s (the LSTM's h_c).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from tqdm import tqdm

from data_prep.input_pipeline import Batches, open_dataset, sampler_batches, split_source
from data_prep.samplers import ArrayWindowSampler, SplitSource
from drnet_jax.models import BatchStats, DRNetModules, Params
from vdcore.training import stream_settings

CODE_INPUTS = ("poses", "content")  # the batch entries a cached stage-2 step takes


@functools.partial(jax.jit, static_argnums=(0, 1))
def _encode(modules: DRNetModules, network: str, params: Params, batch_stats: BatchStats, frames: jax.Array):
    """uint8 frames (F, S, S, nc) → EP codes (F, pose_dim) or EC codes (F, content_dim), BatchNorm on running
    averages (each frame independent of the others); frames are scaled to [0, 1] as the input pipeline does."""
    x = frames.astype(jnp.float32) / jnp.float32(255)
    if network == "pose_encoder":
        return modules.encode_pose(params, batch_stats, x, train=False)[0]
    return modules.encode_content(params, batch_stats, x, train=False)[0][0]


def _encode_in_chunks(encode: Callable[[np.ndarray], jax.Array], frames: np.ndarray, chunk: int) -> np.ndarray:
    """encode over frames (F, ...) in calls of exactly `chunk` frames (the last one zero-padded), so one compiled
    program serves every call → (F, D) float32."""
    out = []
    for start in range(0, len(frames), chunk):
        part = frames[start : start + chunk]
        padded = np.concatenate([part, np.zeros((chunk - len(part), *part.shape[1:]), part.dtype)])
        out.append(np.asarray(encode(padded))[: len(part)])
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def _clip_groups(source: SplitSource, frames_per_group: int) -> Iterator[list[np.ndarray]]:
    """The clips of `source` in order, in groups of at most `frames_per_group` frames (a longer clip alone), so
    a group's frames fill one compiled call with little padding."""
    group: list[np.ndarray] = []
    for index in range(len(source)):
        video, _ = source.video(index)
        if group and sum(len(v) for v in group) + len(video) > frames_per_group:
            yield group
            group = []
        group.append(video)
    if group:
        yield group


def clip_codes(
    modules: DRNetModules,
    params: Params,
    batch_stats: BatchStats,
    source: SplitSource,
    n_past: int,
    n_future: int,
    chunk: int = 256,
) -> tuple[dict[str, list[np.ndarray]], dict[str, list[np.ndarray]]]:
    """(per_frame {'poses': [(L_i, pose_dim)]}, per_start {'content': [(L_i - T + 1, content_dim)]}) of every clip
    of `source`, T = n_past + n_future (see the module docstring); `chunk` frames per compiled call."""
    seq_len = n_past + n_future
    poses: list[np.ndarray] = []
    content: list[np.ndarray] = []
    encode_pose = functools.partial(_encode, modules, "pose_encoder", params, batch_stats)
    encode_content = functools.partial(_encode, modules, "content_encoder", params, batch_stats)
    content_chunk = None  # about the content frames of one group (L - T + 1 of each clip's L), fixed once
    with tqdm(total=len(source), desc="DRNet stage 2: pose codes", unit="clip") as progress:
        for group in _clip_groups(source, chunk):
            if content_chunk is None:
                content_chunk = max(1, chunk * (len(group[0]) - seq_len + 1) // len(group[0]))
            first = len(poses)
            for offset, video in enumerate(group):
                if len(video) < seq_len:
                    raise source.error(
                        f"clip has {len(video)} frames but stage 2 needs n_past + n_future = {seq_len}", first + offset
                    )
            lengths = [len(v) for v in group]
            pose_codes = _encode_in_chunks(encode_pose, np.concatenate(group), chunk)
            poses.extend(np.split(pose_codes, np.cumsum(lengths)[:-1]))
            last_observed = [v[n_past - 1 : len(v) - n_future] for v in group]
            content_codes = _encode_in_chunks(encode_content, np.concatenate(last_observed), content_chunk)
            content.extend(np.split(content_codes, np.cumsum([len(v) for v in last_observed])[:-1]))
            progress.update(len(group))
    return {"poses": poses}, {"content": content}


def code_batches(
    config: ml_collections.ConfigDict, modules: DRNetModules, params: Params, batch_stats: BatchStats, num_devices: int
) -> Batches:
    """Stage-2 training batches of codes {'poses' (B, T, pose_dim), 'content' (B, content_dim), 'index',
    'frame_index'}: the windows (clips, starts, order) the video batches of the same config and seed would hold.

    Every process computes the codes of the whole split (the encoders are replicated) and reads its rows of each
    global batch, as with videos.
    """
    source = split_source(open_dataset(config.dataset, config.data_dir, config.dataset_config), config.train_split)
    started = time.perf_counter()
    per_frame, per_start = clip_codes(modules, params, batch_stats, source, config.n_past, config.n_future)
    seconds = time.perf_counter() - started
    logging.info(
        "pose codes of %d clips of %s computed in %.1f s, once for stage 2", len(source), source.where, seconds
    )
    sampler = ArrayWindowSampler(per_frame, config.n_past + config.n_future, per_start, f"codes of {source.where}")
    return sampler_batches(sampler, batch_size=config.batch_size, **stream_settings(config, num_devices))
