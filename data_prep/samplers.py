"""Samplers: turn one item of a dataset split into one training example.

A sampler is a callable `sampler(item, rng) -> example` with a `num_items`
attribute. The input pipeline iterates over `range(num_items)` (shuffled per
epoch) and calls the sampler with a per-element `np.random.Generator`, so every
random choice (window start, frames, pairing, flip) is reproducible from the
pipeline seed. For most samplers an item is a record index; the pair sampler
iterates over groups (e.g. Sprites characters) instead.

Every example is a dict of numpy arrays:
- `video`: uint8 (T, H, W, C), frames as stored (grayscale keeps C=1). The
  conversion to float32 in [0, 1] happens once per batch in the pipeline.
- `index`: int64, the source record's position in the stored split (its index in
  `builder.as_data_source(split)`, not the generation key); shape (2,) for pair samplers.
- `frame_index`: int64 (T,), the position in its source clip of every output frame.
- every label of the source record (for pair samplers stacked: leading axis 2).

Samplers never pad or trim silently: a clip too short for the request raises
`DataError` naming the dataset, split, record index and both lengths.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from data_prep.errors import DataError

Example = dict[str, np.ndarray]
RESERVED_KEYS = ("video", "index", "frame_index", "flipped")


class SplitSource:
    """Random access to the records of one split of one dataset, plus a cheap label table.

    name: dataset name as registered ('sprites', 'mug_fed', ...); samplers dispatch on it.
    split: split name, used in error messages.
    records: random-access sequence of record dicts (`video` uint8 (T, H, W, C) + labels),
        e.g. a TFDS array_record data source or a list.
    location: where the data lives (the prepared dataset directory), for error messages.
    label_records: optional random-access sequence of the same records without decoded
        video (e.g. a TFDS data source with `SkipDecoding` on `video`); used to build
        label tables without decompressing any frames.
    """

    def __init__(
        self,
        name: str,
        split: str,
        records: Sequence[Mapping[str, Any]],
        location: str | os.PathLike | None = None,
        label_records: Sequence[Mapping[str, Any]] | None = None,
    ):
        self.name = name
        self.split = split
        self.records = records
        self.location = os.fspath(location) if location is not None else f"<{name}>"
        self._label_records = label_records
        self._labels: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Mapping[str, Any]:
        return self.records[int(index)]

    @property
    def where(self) -> str:
        """'<location> (<name> split '<split>')', the file part of a DataError."""
        return f"{self.location} ({self.name} split '{self.split}')"

    def error(self, problem: str, index: int | str | None = None) -> DataError:
        return DataError(self.where, problem, index)

    def video(self, index: int) -> tuple[np.ndarray, Mapping[str, Any]]:
        """(the video uint8 (T, H, W, C), the whole record) of record `index`; DataError naming it otherwise."""
        record = self[index]
        video = np.asarray(record["video"])
        if video.ndim != 4 or video.dtype != np.uint8:
            raise self.error(f"expected a uint8 video (T, H, W, C), got {video.dtype} {video.shape}", index)
        return video, record

    def labels(self, chunk: int = 512) -> dict[str, np.ndarray]:
        """Every label of every record, stacked: {label name: array with leading len(self)}.

        Computed once and cached. Reads `label_records` when given (no video decoding),
        otherwise the records themselves.
        """
        if self._labels is None:
            source = self._label_records if self._label_records is not None else self.records
            rows: list[Mapping[str, Any]] = []
            getitems = getattr(source, "__getitems__", None)
            for start in range(0, len(source), chunk):
                keys = list(range(start, min(start + chunk, len(source))))
                rows.extend(getitems(keys) if getitems is not None else [source[k] for k in keys])
            names = [k for k in (rows[0] if rows else {}) if k != "video"]
            self._labels = {k: np.stack([np.asarray(r[k]) for r in rows]) for k in names}
        return self._labels


class Sampler(Protocol):
    num_items: int

    def __call__(self, item: int, rng: np.random.Generator) -> Example: ...


def _record_labels(data: SplitSource, record: Mapping[str, Any], index: int) -> Example:
    labels = {}
    for key, value in record.items():
        if key == "video":
            continue
        if key in RESERVED_KEYS:
            raise data.error(f"label name {key!r} clashes with a key the samplers add {RESERVED_KEYS}", index)
        labels[key] = np.asarray(value)
    return labels


def _window_start(data: SplitSource, index: int, length: int, needed: int, rng: np.random.Generator, what: str) -> int:
    if length < needed:
        raise data.error(
            f"clip has {length} frames but the {what} needs {needed}; "
            "build the dataset with longer clips or ask for a shorter window",
            index,
        )
    return int(rng.integers(0, length - needed + 1))


class WindowSampler:
    """A random contiguous window of `seq_len` frames from one clip (the whole clip if it is exactly that long;
    with `from_start` always the first `seq_len` frames, for labels that describe the clip's start, such as
    Moving MNIST's initial velocity).

    Output: video (seq_len, H, W, C) uint8, frame_index (seq_len,), index (), the record's labels,
    and with `flip_prob` > 0 also flipped () bool: the window mirrored left-right (width axis)
    with that probability.
    """

    def __init__(self, data: SplitSource, seq_len: int, flip_prob: float = 0.0, from_start: bool = False):
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}")
        self.data, self.seq_len, self.flip_prob, self.from_start = data, seq_len, flip_prob, from_start
        self.num_items = len(data)

    def __call__(self, item: int, rng: np.random.Generator) -> Example:
        index = int(item)
        video, record = self.data.video(index)
        start = _window_start(self.data, index, len(video), self.seq_len, rng, f"window of seq_len={self.seq_len}")
        start = 0 if self.from_start else start
        window = video[start : start + self.seq_len]
        example = {"video": window, "index": np.int64(index), "frame_index": np.arange(start, start + self.seq_len)}
        if self.flip_prob > 0:
            flipped = bool(rng.random() < self.flip_prob)
            example["video"] = window[:, :, ::-1] if flipped else window
            example["flipped"] = np.bool_(flipped)
        example.update(_record_labels(self.data, record, index))
        return example


class ArrayWindowSampler:
    """The windows a `WindowSampler` of `seq_len` draws, cut from per-clip arrays computed from a split's clips
    (e.g. a frozen encoder's code of every frame) instead of from the videos: for the same item and rng the
    window starts where WindowSampler's would, so both see the same windows of the same clips.

    per_frame: {name: per clip i an array (L_i, ...)}, one entry per frame of clip i.
    per_start: {name: per clip i an array (L_i - seq_len + 1, ...)}, one entry per window start (e.g. the code of
        the window's last observed frame).
    where: what the arrays were computed from, for error messages.

    Output: per_frame[name][i][start : start + seq_len], per_start[name][i][start], index (), frame_index (seq_len,).
    """

    def __init__(
        self,
        per_frame: Mapping[str, Sequence[np.ndarray]],
        seq_len: int,
        per_start: Mapping[str, Sequence[np.ndarray]] | None = None,
        where: str = "<arrays>",
    ):
        per_start = dict(per_start or {})
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        if not per_frame:
            raise ValueError("per_frame needs at least one array")
        clashes = sorted(set(per_frame) & set(per_start) | (set(per_frame) | set(per_start)) & set(RESERVED_KEYS))
        if clashes:
            raise ValueError(f"{where}: array names {clashes} clash with each other or with {RESERVED_KEYS}")
        counts = {name: len(arrays) for name, arrays in {**per_frame, **per_start}.items()}
        if len(set(counts.values())) != 1:
            raise DataError(where, f"the arrays hold different numbers of clips: {counts}")
        first = next(iter(per_frame.values()))
        self.lengths = np.asarray([len(clip) for clip in first], np.int64)
        for name, arrays in per_frame.items():
            self._check_lengths(name, arrays, self.lengths, "frames", where)
        for name, arrays in per_start.items():
            self._check_lengths(name, arrays, self.lengths - seq_len + 1, "window starts", where)
        short = np.flatnonzero(self.lengths < seq_len)
        if short.size:
            raise DataError(
                where, f"clip has {self.lengths[short[0]]} frames but the window needs seq_len={seq_len}", int(short[0])
            )
        self.per_frame, self.per_start, self.seq_len = dict(per_frame), per_start, seq_len
        self.num_items = len(self.lengths)

    @staticmethod
    def _check_lengths(name: str, arrays: Sequence[np.ndarray], expected: np.ndarray, what: str, where: str) -> None:
        for i, (clip, length) in enumerate(zip(arrays, expected, strict=True)):
            if len(clip) != length:
                raise DataError(where, f"{name!r} holds {len(clip)} entries for a clip of {length} {what}", i)

    def __call__(self, item: int, rng: np.random.Generator) -> Example:
        index = int(item)
        start = int(rng.integers(0, self.lengths[index] - self.seq_len + 1))  # as _window_start draws it
        example = {
            name: np.asarray(arrays[index][start : start + self.seq_len]) for name, arrays in self.per_frame.items()
        }
        example.update({name: np.asarray(arrays[index][start]) for name, arrays in self.per_start.items()})
        example.update(index=np.int64(index), frame_index=np.arange(start, start + self.seq_len))
        return example


class PairSampler:
    """Two clips of the same group with different values of `distinct_by`, concatenated in time.

    VDSM stage 1 on Sprites: group_by='character', distinct_by='action' gives two different
    actions of one character (2 x 8 = 16 frames). Items are the groups present in the split
    (sorted ids), so an epoch visits every character once.

    Output: video (T1 + T2, H, W, C) uint8, frame_index (T1 + T2,), index (2,) the two record
    indices, and every label of both records stacked along a leading axis of 2.
    """

    def __init__(self, data: SplitSource, group_by: str, distinct_by: str, seq_len: int | None = None):
        labels = data.labels()
        for name in (group_by, distinct_by):
            if name not in labels:
                raise data.error(f"the pair sampler needs a {name!r} label; labels are {sorted(labels)}")
        groups, values = labels[group_by], labels[distinct_by]
        self.data, self.group_by, self.distinct_by, self.seq_len = data, group_by, distinct_by, seq_len
        self.groups = np.unique(groups)
        # Per group: the distinct values and, per value, the record indices holding it.
        self.table: list[list[np.ndarray]] = []
        too_few = []
        for group in self.groups:
            members = np.flatnonzero(groups == group)
            per_value = [members[values[members] == v] for v in np.unique(values[members])]
            if len(per_value) < 2:
                too_few.append(int(group))
            self.table.append(per_value)
        if too_few:
            raise data.error(
                f"{len(too_few)} {group_by} group(s) have fewer than 2 distinct {distinct_by!r} values, "
                f"so no pair can be drawn: {too_few[:20]}"
            )
        self.num_items = len(self.groups)

    def __call__(self, item: int, rng: np.random.Generator) -> Example:
        per_value = self.table[int(item)]
        first, second = rng.choice(len(per_value), size=2, replace=False)
        indices = [int(rng.choice(per_value[v])) for v in (first, second)]
        clips, records = zip(*(self.data.video(i) for i in indices), strict=True)
        if clips[0].shape != clips[1].shape:
            raise self.data.error(
                f"records {indices} of {self.group_by} {self.groups[int(item)]} have different shapes "
                f"{clips[0].shape} and {clips[1].shape}; pairs need equal clips",
                indices[0],
            )
        total = len(clips[0]) + len(clips[1])
        if self.seq_len is not None and total != self.seq_len:
            raise self.data.error(
                f"a pair of {len(clips[0])}-frame clips gives {total} frames, not the requested seq_len={self.seq_len}",
                indices[0],
            )
        example = {
            "video": np.concatenate(clips),
            "index": np.asarray(indices, np.int64),
            "frame_index": np.concatenate([np.arange(len(c)) for c in clips]),
        }
        label_pairs = [_record_labels(self.data, r, i) for r, i in zip(records, indices, strict=True)]
        example.update({k: np.stack([label_pairs[0][k], label_pairs[1][k]]) for k in label_pairs[0]})
        return example


class FourFrameSampler:
    """Frames (x_c1, x_c2, x_p1, x_p2) of one clip, all within a window of `max_step` frames.

    frame_selection='first4': frames 0..3 of a random max_step-frame window (the original
    Moving MNIST recipe: a fresh max_step-frame sequence, its first four frames; for a
    stored clip of exactly max_step frames these are the clip's frames 0..3).
    frame_selection='random': four distinct random frames (in random order) of a random
    max_step-frame window (the KTH recipe).

    Output: video (4, H, W, C) uint8 in order c1, c2, p1, p2; frame_index (4,); index (); labels.
    """

    SELECTIONS = ("first4", "random")

    def __init__(self, data: SplitSource, max_step: int = 20, frame_selection: str = "first4"):
        if frame_selection not in self.SELECTIONS:
            raise ValueError(f"frame_selection must be one of {self.SELECTIONS}, got {frame_selection!r}")
        if max_step < 4:
            raise ValueError(f"max_step must be >= 4 (four frames are drawn from the window), got {max_step}")
        self.data, self.max_step, self.frame_selection = data, max_step, frame_selection
        self.num_items = len(data)

    def __call__(self, item: int, rng: np.random.Generator) -> Example:
        index = int(item)
        video, record = self.data.video(index)
        start = _window_start(self.data, index, len(video), self.max_step, rng, f"max_step={self.max_step} window")
        if self.frame_selection == "first4":
            frames = start + np.arange(4)
        else:
            frames = start + rng.choice(self.max_step, size=4, replace=False)
        example = {"video": video[frames], "index": np.int64(index), "frame_index": frames.astype(np.int64)}
        example.update(_record_labels(self.data, record, index))
        return example


def _window(data: SplitSource, seq_len: int, flip_prob: float = 0.0) -> WindowSampler:
    return WindowSampler(data, seq_len=seq_len, flip_prob=flip_prob)


def _prefix(data: SplitSource, seq_len: int) -> WindowSampler:
    return WindowSampler(data, seq_len=seq_len, from_start=True)


def _four_frames(data: SplitSource, max_step: int = 20, frame_selection: str = "first4") -> FourFrameSampler:
    return FourFrameSampler(data, max_step=max_step, frame_selection=frame_selection)


def _pair(data: SplitSource, group_by: str, distinct_by: str, seq_len: int | None = None) -> PairSampler:
    return PairSampler(data, group_by=group_by, distinct_by=distinct_by, seq_len=seq_len)


# Named by what they sample; which model stage trains on which sampler is each model's choice (its `data` module).
SAMPLERS: dict[str, Callable[..., Sampler]] = {
    "window": _window,
    "prefix": _prefix,
    "pair": _pair,
    "four_frames": _four_frames,
}
SAMPLERS_DOC = {
    "window": "seq_len, flip_prob=0 -> (seq_len, H, W, C) random contiguous window, mirrored with prob flip_prob",
    "prefix": "seq_len -> (seq_len, H, W, C): the clip's first seq_len frames",
    "pair": "group_by, distinct_by, seq_len=None -> two clips of one group, different distinct_by, concatenated",
    "four_frames": "max_step=20, frame_selection='first4'|'random' -> (4, H, W, C): c1, c2, p1, p2",
}


def make_sampler(kind: str, dataset: SplitSource, **kwargs: Any) -> Sampler:
    """The sampler `kind` over `dataset` (a SplitSource), configured by `kwargs` (see SAMPLERS_DOC)."""
    if kind not in SAMPLERS:
        raise ValueError(f"unknown sampler {kind!r}; known samplers: {sorted(SAMPLERS)}")
    factory = SAMPLERS[kind]
    try:
        inspect.signature(factory).bind(dataset, **kwargs)
    except TypeError as e:
        raise TypeError(f"sampler {kind!r} takes {SAMPLERS_DOC[kind]}; got arguments {sorted(kwargs)}: {e}") from e
    return factory(dataset, **kwargs)
