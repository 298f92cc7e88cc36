"""Scoring predictions over a horizon: per-step PSNR / SSIM against the ground truth and per-step judge accuracy.

A model conditions on the first n_past frames of each real test clip and predicts `horizon` frames after them
(DRNet, Denton & Birodkar 2017, judge their 'hundreds of steps'). For every predicted step t = 1 … horizon:

- PSNR and SSIM of the predicted frame against the clip's real frame n_past + t - 1, for the steps the clip has
  (ground_truth_steps = clip length - n_past, at most horizon);
- the accuracy of each framewise (identity) head of the judge on the predicted frame, against the clip's label:
  does the digit / character stay legible and the same as it moves on; with two or more identity heads also
  ALL_IDENTITY, every one of them right on the same frame (two-digit Moving MNIST: both digits read).

Each clip is scored once (the models are deterministic); the repeats are seeded 80 % subsets of the clips, so
mean ± std says how much the numbers depend on which clips were judged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from data_prep.input_pipeline import ordered_clips
from data_prep.samplers import SplitSource
from vdeval import metrics
from vdeval.factors import ALL_IDENTITY, head_classes, joint_identity_heads, with_all_identity
from vdeval.trained_judge import TrainedJudge

SUBSET_FRACTION = 0.8
PICTURE_STEPS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)

PredictChunks = Callable[[np.ndarray, int], Iterator[np.ndarray]]


def picture_steps(horizon: int) -> list[int]:
    """The steps shown in the horizon picture: 1, 2, 5, 10, … up to the horizon, and the horizon itself."""
    steps = [s for s in PICTURE_STEPS if s <= horizon]
    return steps if steps[-1] == horizon else [*steps, horizon]


def score_prediction(
    predict_chunks: PredictChunks,
    judge: TrainedJudge,
    source: SplitSource,
    indices: np.ndarray,
    n_past: int,
    horizon: int,
    seeds: Sequence[int],
    batch_size: int = 32,
    samples: int = 8,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """→ (the 'prediction' section of the metrics, predicted frames (samples, steps, S, S, C) at picture_steps,
    their ground truth where the clip has it (else zeros)).

    predict_chunks(videos (B, n_past, S, S, C), horizon) yields the predicted frames in chunks (B, k, S, S, C).
    """
    if n_past < 1 or horizon < 1:
        raise ValueError(f"n_past and horizon must be >= 1, got {n_past}, {horizon}")
    clip_len = int(np.asarray(source.records[int(indices[0])]["video"]).shape[0])
    if clip_len <= n_past:
        raise ValueError(
            f"{source.location} ({source.split}): clips of {clip_len} frames leave nothing to predict after "
            f"n_past={n_past} frames"
        )
    length = min(clip_len, n_past + horizon)
    truth_steps = length - n_past
    framewise = [h for h in judge.heads if h.framewise]
    joint = [h.name for h in joint_identity_heads(judge.heads)]
    shown = np.asarray(picture_steps(horizon)) - 1
    names = [h.name for h in framewise] + ([ALL_IDENTITY] if joint else [])
    psnr, ssim, correct = [], [], {name: [] for name in names}
    pictures, truth_pictures = [], []
    with tqdm(total=len(indices), desc=f"prediction to step {horizon}", unit="clip") as bar:
        for batch in ordered_clips(source, length, indices, batch_size):
            videos = batch["video"]
            classes = head_classes(tuple(framewise), batch)
            batch_psnr, batch_ssim = [], []
            batch_correct = {name: [] for name in names}
            keep = []
            done = 0
            for chunk in predict_chunks(videos[:, :n_past], horizon):
                k = chunk.shape[1]
                real = videos[:, n_past + done : n_past + done + k]
                if real.shape[1]:
                    batch_psnr.append(metrics.psnr(chunk[:, : real.shape[1]], real))
                    batch_ssim.append(metrics.ssim(chunk[:, : real.shape[1]], real))
                frames = chunk.reshape(-1, *chunk.shape[2:])
                probs = judge.classify_frames(frames)
                hits = {
                    head.name: probs[head.name].argmax(-1).reshape(chunk.shape[:2]) == classes[head.name][:, None]
                    for head in framewise
                }
                for name, hit in with_all_identity(hits, joint).items():
                    batch_correct[name].append(hit)
                wanted = shown[(shown >= done) & (shown < done + k)] - done
                keep.append(chunk[:, wanted])
                done += k
            psnr.append(np.concatenate(batch_psnr, axis=1))
            ssim.append(np.concatenate(batch_ssim, axis=1))
            for name, parts in batch_correct.items():
                correct[name].append(np.concatenate(parts, axis=1))
            if sum(len(p) for p in pictures) < samples:
                pictures.append(np.concatenate(keep, axis=1))
                real = np.zeros_like(pictures[-1])
                have = shown < truth_steps
                real[:, have] = videos[:, n_past + shown[have]]
                truth_pictures.append(real)
            bar.update(len(videos))
    psnr_all, ssim_all = np.concatenate(psnr), np.concatenate(ssim)
    correct_all = {k: np.concatenate(v).astype(np.float64) for k, v in correct.items()}
    count = len(psnr_all)
    repeats = []
    for seed in seeds:
        rows = np.random.default_rng([seed, 17]).choice(count, max(1, int(SUBSET_FRACTION * count)), replace=False)
        repeats.append(
            {
                "psnr": psnr_all[rows].mean(0),
                "ssim": ssim_all[rows].mean(0),
                "frame_accuracy": {k: v[rows].mean(0) for k, v in correct_all.items()},
            }
        )
    section = {
        "n_past": n_past,
        "steps": list(range(1, horizon + 1)),
        "ground_truth_steps": truth_steps,
        "clips": count,
        **metrics.summarize_repeats(repeats),
    }
    return section, np.concatenate(pictures)[:samples], np.concatenate(truth_pictures)[:samples]
