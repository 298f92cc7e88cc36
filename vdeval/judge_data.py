"""Which real clips a judge learns from and is scored on.

A judge reads every clip from its first frame (`seq_len` frames: Moving MNIST's direction is the initial
velocity's) and is trained on the dataset's train split and scored on its test split, whose identities are
disjoint from the train split's (characters, digit instances, appearances). Every factor a judge classifies
still has all its classes in both splits — except MUG-FED's subjects, which the by-identity split keeps apart:
there the judge pools both splits and holds out `HELD_OUT_FRACTION` of each subject's clips (seeded), so its
identity head can know every subject a model's test clip may show.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from data_prep.input_pipeline import open_dataset, split_source
from data_prep.samplers import SplitSource
from vdeval.factors import Head, judge_heads

POOLED_DATASETS = ("mug_fed",)
HELD_OUT_FRACTION = 0.2
DEFAULT_VARIABLE_SEQ_LEN = 10  # datasets with clips of varying length (KTH, MUG-FED)


class _PickedRecords(Sequence):
    """Records of several sequences, picked by (part, index) pairs."""

    def __init__(self, parts: Sequence[Sequence[Mapping[str, Any]]], picks: np.ndarray):
        self.parts, self.picks = parts, picks

    def __len__(self) -> int:
        return len(self.picks)

    def __getitem__(self, i: int) -> Mapping[str, Any]:
        part, index = self.picks[int(i)]
        return self.parts[int(part)][int(index)]


@dataclasses.dataclass
class JudgeData:
    """A judge's data: its heads, train and test clips, and the clip shape it classifies."""

    dataset: str
    dataset_config: str
    heads: tuple[Head, ...]
    train: SplitSource
    test: SplitSource
    seq_len: int
    image_size: int
    channels: int


def _pooled_split(builder: Any, seed: int, by: str) -> tuple[SplitSource, SplitSource, dict[str, np.ndarray]]:
    sources = [split_source(builder, split) for split in ("train", "test")]
    labels = {k: np.concatenate([s.labels()[k] for s in sources]) for k in sources[0].labels()}
    picks = np.concatenate([np.stack([np.full(len(s), p), np.arange(len(s))], 1) for p, s in enumerate(sources)])
    rng = np.random.default_rng([seed, 7])
    held = np.zeros(len(picks), bool)
    for value in np.unique(labels[by]):
        members = rng.permutation(np.flatnonzero(labels[by] == value))
        held[members[: int(round(HELD_OUT_FRACTION * len(members)))]] = True
    location = builder.data_dir
    views = []
    for name, keep in (("judge_train", ~held), ("judge_test", held)):
        records = _PickedRecords([s.records for s in sources], picks[keep])
        label_records = _PickedRecords([s._label_records or s.records for s in sources], picks[keep])
        views.append(SplitSource(builder.name, name, records, location=location, label_records=label_records))
    return views[0], views[1], labels


def judge_data(
    dataset: str, data_dir: str | os.PathLike, dataset_config: str | None = None, seq_len: int = 0, seed: int = 0
) -> JudgeData:
    """The judge's data for a built dataset; seq_len 0 = the dataset's clip length."""
    builder = open_dataset(dataset, data_dir, dataset_config)
    frames, height, width, channels = builder.info.features["video"].shape
    if height != width:
        raise ValueError(f"dataset '{dataset}': the judge needs square frames, got {height}x{width}")
    if seq_len == 0:
        seq_len = frames if frames is not None else DEFAULT_VARIABLE_SEQ_LEN
    if seq_len < 1 or (frames is not None and seq_len > frames):
        raise ValueError(
            f"dataset '{dataset}': judge seq_len must be in [1, {frames}] (its clip length), got {seq_len}"
        )
    if dataset in POOLED_DATASETS:
        train, test, labels = _pooled_split(builder, seed, "identity")
        heads = judge_heads(builder, labels)
    else:
        train, test = split_source(builder, "train"), split_source(builder, "test")
        heads = judge_heads(builder)
    config_name = builder.builder_config.name if builder.builder_config is not None else "default"
    return JudgeData(dataset, config_name, heads, train, test, int(seq_len), int(height), int(channels))
