"""A trained judge: load it from its workdir, classify videos, check it fits a run, score it on real clips.

    judge = TrainedJudge.from_workdir("data/judges/sprites-standard-T8")
    out = judge.classify(videos)       # videos float (N, T, S, S, C) in [0, 1], T = judge.seq_len
    out.probs["action"]                # (N, 9) softmax of each head
    out.frame_probs["body"]            # (N, T, 7) per-frame softmax of the identity heads
    out.features                       # (N, 2·hidden) penultimate features (the Fréchet distance's)
    judge.check_matches("sprites", 64, 3, "run runs/sprites/stage2")   # ValueError naming both otherwise

The judge's workdir holds `checkpoints/<step>/` (orbax; the meta has the dataset, clip shape, heads and
network sizes) and `judge.json`, its held-out accuracy per head on real test clips (what every evaluation
report prints beside its numbers).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from data_prep.input_pipeline import ordered_clips
from data_prep.samplers import SplitSource
from vdcore.checkpoint import (
    CHECKPOINT_SUBDIR,
    Checkpointer,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    check_meta_format,
)
from vdcore.train_state import TrainState
from vdeval.factors import ALL_IDENTITY, Head, head_classes, joint_identity_heads, with_all_identity
from vdeval.judge_model import Judge

META_FORMAT = "vdeval.judge/1"
REPORT_FILE = "judge.json"
REQUIRED_ACCURACY = 0.99  # the bar for a judge whose numbers mean something (Sprites, Moving MNIST digits)
EVAL_BATCH = 32


def judge_network(meta: Mapping[str, Any]) -> Judge:
    heads = tuple(Head.from_json(h) for h in meta["heads"])
    net = meta["network"]
    return Judge(
        heads=tuple((h.name, h.num_classes, h.framewise) for h in heads),
        frame_features=net["frame_features"],
        hidden=net["hidden"],
        width=net["width"],
        resolution=net["resolution"],
        convs_per_level=net.get("convs_per_level", 1),  # judges trained before these settings existed
        pool_frame_logits=net.get("pool_frame_logits", False),
        centroid_crop=net.get("centroid_crop", 0),
    )


def judge_optimizer(meta: Mapping[str, Any]) -> optax.GradientTransformation:
    """Adam (β 0.5, 0.999, as the peers' judges) with a cosine decay of the learning rate over the run."""
    opt = meta["optimizer"]
    schedule = optax.cosine_decay_schedule(opt["lr"], max(1, opt["steps"]), alpha=opt["lr_final_fraction"])
    return optax.adam(schedule, b1=opt["b1"], b2=opt["b2"])


def abstract_state(model: Judge, tx: optax.GradientTransformation, video_shape: tuple[int, ...]) -> TrainState:
    """Shapes and dtypes of a judge's TrainState (nothing is computed or compiled)."""

    def create() -> TrainState:
        key = jax.random.key(0)
        params = model.init(key, jnp.zeros((1, *video_shape), jnp.float32))["params"]
        return TrainState.create(params, tx, key)

    return jax.eval_shape(create)


@functools.partial(jax.jit, static_argnums=0)
def _classify(model: Judge, params: Any, videos: jax.Array) -> dict:
    out = model.apply({"params": params}, videos)
    return {
        "probs": {k: jax.nn.softmax(v) for k, v in out["logits"].items()},
        "frame_probs": {k: jax.nn.softmax(v) for k, v in out["frame_logits"].items()},
        "features": out["features"],
    }


@dataclasses.dataclass
class JudgeOutputs:
    probs: dict[str, np.ndarray]  # head -> (N, K)
    frame_probs: dict[str, np.ndarray]  # identity head -> (N, T, K)
    features: np.ndarray  # (N, F)

    @classmethod
    def concatenate(cls, parts: Iterable[JudgeOutputs]) -> JudgeOutputs:
        parts = list(parts)
        cat = lambda key: {k: np.concatenate([getattr(p, key)[k] for p in parts]) for k in getattr(parts[0], key)}  # noqa: E731
        return cls(cat("probs"), cat("frame_probs"), np.concatenate([p.features for p in parts]))


class TrainedJudge:
    """A judge's network, parameters and meta (dataset, dataset_config, seq_len, image_size, channels, heads)."""

    def __init__(self, model: Judge, params: Any, meta: Mapping[str, Any], workdir: str | None = None):
        self.model, self.params, self.meta, self.workdir = model, params, dict(meta), workdir
        self.heads = tuple(Head.from_json(h) for h in meta["heads"])

    @classmethod
    def from_workdir(cls, workdir: str | os.PathLike, step: int | None = None) -> TrainedJudge:
        workdir = os.fspath(workdir)
        directory = os.path.join(workdir, CHECKPOINT_SUBDIR)
        if not os.path.isdir(directory):
            raise CheckpointNotFoundError(
                f"no judge at {workdir} (no {CHECKPOINT_SUBDIR}/); train one with: python -m vdeval.judge train "
                f"--dataset NAME --data_dir DIR --workdir {workdir}"
            )
        checkpoints = Checkpointer(directory, max_to_keep=None, create=False)
        meta = checkpoints.restore_meta(step)
        check_meta_format(workdir, meta, META_FORMAT, kind="judge")
        model = judge_network(meta)
        target = abstract_state(model, judge_optimizer(meta), tuple(meta["video_shape"]))
        state, meta = checkpoints.restore(target, step)
        report = os.path.join(workdir, REPORT_FILE)
        if os.path.isfile(report):
            with open(report) as f:
                meta = {**meta, "report": json.load(f)}
        return cls(model, jax.device_get(state.params), meta, workdir)

    @property
    def dataset(self) -> str:
        return self.meta["dataset"]

    @property
    def seq_len(self) -> int:
        return int(self.meta["video_shape"][0])

    @property
    def image_size(self) -> int:
        return int(self.meta["video_shape"][1])

    @property
    def channels(self) -> int:
        return int(self.meta["video_shape"][3])

    def head(self, name: str) -> Head:
        for head in self.heads:
            if head.name == name:
                return head
        raise KeyError(f"the judge has no head {name!r}; heads: {[h.name for h in self.heads]}")

    def check_matches(self, dataset: str, image_size: int, channels: int, what: str) -> None:
        """CheckpointMismatchError naming both sides unless the judge was trained on `dataset` clips of this
        frame shape."""
        ours = (self.dataset, self.image_size, self.channels)
        if ours != (dataset, int(image_size), int(channels)):
            raise CheckpointMismatchError(
                f"judge {self.workdir} was trained on '{self.dataset}' clips of {self.image_size}x{self.image_size}x"
                f"{self.channels}, but {what} is '{dataset}' at {image_size}x{image_size}x{channels}; train a judge on "
                f"that dataset: python -m vdeval.judge train --dataset {dataset} --data_dir DIR --workdir J"
            )

    def classify(self, videos: Any, batch_size: int = EVAL_BATCH) -> JudgeOutputs:
        """videos float (N, seq_len, S, S, C) in [0, 1] → JudgeOutputs, in fixed-size compiled batches."""
        videos = np.asarray(videos, np.float32)
        expected = (self.seq_len, self.image_size, self.image_size, self.channels)
        if videos.ndim != 5 or videos.shape[1:] != expected or len(videos) == 0:
            raise ValueError(
                f"the judge classifies videos (N >= 1, {', '.join(map(str, expected))}); got {videos.shape}"
            )
        parts = []
        for start in range(0, len(videos), batch_size):
            chunk = videos[start : start + batch_size]
            n = len(chunk)
            if n < batch_size:
                chunk = np.concatenate([chunk, np.zeros((batch_size - n, *expected), np.float32)])
            out = jax.device_get(_classify(self.model, self.params, jnp.asarray(chunk)))
            parts.append(
                JudgeOutputs(
                    {k: v[:n] for k, v in out["probs"].items()},
                    {k: v[:n] for k, v in out["frame_probs"].items()},
                    out["features"][:n],
                )
            )
        return JudgeOutputs.concatenate(parts)

    def classify_frames(self, frames: Any, batch_size: int = EVAL_BATCH) -> dict[str, np.ndarray]:
        """frames float (N, S, S, C) in [0, 1] → {framewise head: (N, K) probabilities}, each frame on its own.

        The framewise heads read one frame's features only, so frames are grouped into clips of seq_len (the last
        padded with zeros) without changing any frame's result. For judging predicted frames step by step."""
        frames = np.asarray(frames, np.float32)
        shape = (self.image_size, self.image_size, self.channels)
        if frames.ndim != 4 or frames.shape[1:] != shape or len(frames) == 0:
            raise ValueError(f"the judge classifies frames (N >= 1, {', '.join(map(str, shape))}); got {frames.shape}")
        count, t = len(frames), self.seq_len
        padded = np.concatenate([frames, np.zeros((-count % t, *shape), np.float32)])
        out = self.classify(padded.reshape(-1, t, *shape), batch_size)
        return {k: v.reshape(-1, v.shape[-1])[:count] for k, v in out.frame_probs.items()}


def split_accuracy(judge: TrainedJudge, source: SplitSource, progress: Any = None) -> dict[str, Any]:
    """Held-out accuracy per head (sequence heads, and the identity heads frame by frame) on every clip of a split;
    with two or more identity heads also ALL_IDENTITY, every one of them right at once: the ceiling of the
    evaluation's joint identity accuracy (a generator that keeps both digits scores at most this)."""
    joint = [h.name for h in joint_identity_heads(judge.heads)]
    extra = [ALL_IDENTITY] if joint else []
    correct = {name: 0 for name in [h.name for h in judge.heads] + extra}
    frame_correct = {name: 0 for name in [h.name for h in judge.heads if h.framewise] + extra}
    count = 0
    for batch in ordered_clips(source, judge.seq_len, batch_size=EVAL_BATCH):
        out = judge.classify(batch["video"])
        classes = head_classes(judge.heads, batch)
        hits = with_all_identity({name: p.argmax(-1) == classes[name] for name, p in out.probs.items()}, joint)
        frame_hits = with_all_identity(
            {name: p.argmax(-1) == classes[name][:, None] for name, p in out.frame_probs.items()}, joint
        )
        for name, hit in hits.items():
            correct[name] += int(np.sum(hit))
        for name, hit in frame_hits.items():
            frame_correct[name] += int(np.sum(hit)) / judge.seq_len
        count += len(batch["video"])
        if progress is not None:
            progress.update(len(batch["video"]))
    return {
        "clips": count,
        "accuracy": {k: v / count for k, v in correct.items()},
        "frame_accuracy": {k: v / count for k, v in frame_correct.items()},
    }


def below_required(accuracy: Mapping[str, float], required: float = REQUIRED_ACCURACY) -> list[str]:
    return [name for name, value in accuracy.items() if value < required]


def accuracy_lines(report: Mapping[str, Any]) -> list[str]:
    """A judge report as text lines: held-out accuracy per head, and which heads are below 99 %."""
    lines = [f"judge held-out accuracy on {report['clips']} real test clips ({report['split']}):"]
    for name, value in report["accuracy"].items():
        frame = report["frame_accuracy"].get(name)
        extra = f"   (single frames {100 * frame:.2f} %)" if frame is not None else ""
        lines.append(f"  {name:<14} {100 * value:6.2f} %{extra}")
    low = below_required(report["accuracy"])
    if low:
        lines.append(
            f"  BELOW {100 * REQUIRED_ACCURACY:.0f} %: {', '.join(low)} — numbers judged by these heads are weak"
        )
    return lines
