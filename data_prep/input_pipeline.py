"""Input pipeline: prepared TFDS datasets -> endless, seeded, per-epoch shuffled batches.

    batches = make_batches("sprites", "train", "window", {"seq_len": 8},
                           batch_size=20, data_dir="data", seed=0)
    batch = next(batches)   # {'video': float32 (20, 8, 64, 64, 3) in [0, 1], 'index': ..., labels ...}

The pipeline is grain over the items of a sampler (record indices, or characters
for the Sprites pair sampler):

    MapDataset.source(items).seed(seed).shuffle().repeat(num_epochs)   # a new order every epoch
      .random_map(sampler)                                             # per-element rng: windows, pairs, flips
      .batch(B_local, drop_remainder=True, batch_fn=collate)           # stack; uint8 -> float32 / 255 once
      [process_index::process_count]                                   # this process's rows of each global batch
      .to_iter_dataset(ReadOptions(threads, prefetch)) [.mp_prefetch(workers)]

Everything random is a function of (seed, position in the stream), so the same seed gives
the same batches whatever the thread, worker or process count. The stream of examples is
one global sequence (a new permutation of all items every epoch); global batch k is its
examples k·B .. (k+1)·B - 1, and with P processes process p reads only rows
p·B/P .. (p+1)·B/P - 1 of each (`[p::P]` over the B/P-example batches, evaluated lazily,
so no process touches another's examples). Within an epoch every item is therefore read
exactly once by exactly one process, and a run over P processes sees the same global
batches as one over a single process; `vdcore.sharding.shard_batch` assembles them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import grain
import numpy as np
import tensorflow_datasets as tfds
from absl import flags

from data_prep.batch_split import check_divisible
from data_prep.builders import get_builder
from data_prep.builders.base import VideoBuilderConfig, VideoDatasetBuilder
from data_prep.errors import DatasetNotBuiltError as DatasetNotBuiltError  # re-exported
from data_prep.samplers import Sampler, SplitSource, make_sampler

PROCEDURAL_DATASETS = ("moving_mnist", "pendulum")
# The flag `python -m data_prep.build` needs to find each manual dataset's files.
MANUAL_FLAGS = {
    "sprites": "--lpc_dir <directory with the LPC layer sheets>",
    "mug_fed": "--manual_dir <directory with the MUG-FED images npz and labels.npz>",
    "kth": "--manual_dir <directory with the KTH .avi files and 00sequences.txt>",
}


def _config_name(builder: VideoDatasetBuilder) -> str:
    return builder.builder_config.name if builder.builder_config is not None else "default"


def build_command(name: str, config_name: str, data_dir: str | os.PathLike) -> str:
    """The shell command that prepares dataset `name` (config `config_name`) in `data_dir`."""
    command = f"python -m data_prep.build {name} --config {config_name} --data_dir {os.fspath(data_dir)}"
    return f"{command} {MANUAL_FLAGS[name]}" if name in MANUAL_FLAGS else command


def _not_built(builder: VideoDatasetBuilder, data_dir: str | os.PathLike) -> DatasetNotBuiltError:
    name, config_name = builder.name, _config_name(builder)
    return DatasetNotBuiltError(
        f"dataset '{name}' (config '{config_name}') is not built in {os.fspath(data_dir)}; "
        f"build it with: {build_command(name, config_name, data_dir)}"
    )


def open_dataset(
    name: str, data_dir: str | os.PathLike, config: str | VideoBuilderConfig | None = None
) -> VideoDatasetBuilder:
    """The prepared builder of dataset `name` in `data_dir`; DatasetNotBuiltError (with the build command) if absent."""
    builder = get_builder(name, data_dir, config)
    if not builder.is_prepared():
        raise _not_built(builder, data_dir)
    return builder


def ensure_built(
    name: str,
    data_dir: str | os.PathLike,
    config: str | VideoBuilderConfig | None = None,
    manual_dir: str | os.PathLike | None = None,
) -> VideoDatasetBuilder:
    """Like `open_dataset`, but prepares the dataset first when it is missing.

    Procedural datasets (moving_mnist, pendulum) are built from nothing (`manual_dir`
    optional, e.g. the full MNIST). Manual datasets (sprites, mug_fed, kth) are built
    from `manual_dir` (for sprites: the LPC sheets directory); without it they raise
    DatasetNotBuiltError naming the flag to pass.
    """
    builder = get_builder(name, data_dir, config)
    if builder.is_prepared():
        return builder
    if name not in PROCEDURAL_DATASETS and manual_dir is None:
        raise _not_built(builder, data_dir)
    download_config = tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir)) if manual_dir else None
    builder.download_and_prepare(download_config=download_config)
    return builder


def split_source(builder: VideoDatasetBuilder, split: str) -> SplitSource:
    """Random access to one split of a prepared builder, with a label-only view for label tables."""
    if not builder.is_prepared():
        raise _not_built(builder, builder.data_dir_root)
    splits = list(builder.info.splits)
    if split not in splits:
        raise ValueError(
            f"dataset '{builder.name}' (config '{_config_name(builder)}') has no split {split!r}; splits: {splits}"
        )
    records = builder.as_data_source(split=split)
    label_records = builder.as_data_source(split=split, decoders={"video": tfds.decode.SkipDecoding()})
    return SplitSource(builder.name, split, records, location=builder.data_dir, label_records=label_records)


def collate(examples: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack examples into a batch; `video` uint8 (T, H, W, C) -> float32 (B, T, H, W, C) in [0, 1].

    The conversion writes straight into the float32 batch (one pass, no uint8 stack).
    """
    first = examples[0]
    keys = list(first)
    batch: dict[str, np.ndarray] = {}
    shape = np.shape(first["video"])
    video = np.empty((len(examples), *shape), np.float32)
    for i, example in enumerate(examples):
        if list(example) != keys or np.shape(example["video"]) != shape:
            raise ValueError(
                f"examples of one batch differ: record {example.get('index')} has keys {list(example)} and video "
                f"{np.shape(example['video'])}, record {first.get('index')} has keys {keys} and video {shape}"
            )
        np.divide(example["video"], np.float32(255), out=video[i])
    batch["video"] = video
    for key in keys:
        if key != "video":
            batch[key] = np.stack([np.asarray(example[key]) for example in examples])
    return batch


def ordered_clips(
    source: SplitSource, seq_len: int, indices: Sequence[int] | None = None, batch_size: int = 64
) -> Iterator[dict[str, np.ndarray]]:
    """The clips of `source` at `indices` (default: all, in record order), each its first `seq_len` frames, in
    batches of `batch_size` (the last one shorter), collated as the training batches ('video' float32 in [0, 1],
    'index', the labels). For evaluation: no shuffling, nothing random, nothing left out.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    sampler = make_sampler("prefix", source, seq_len=seq_len)
    order = np.arange(len(source)) if indices is None else np.asarray(indices, np.int64)
    rng = np.random.default_rng(0)  # the prefix sampler draws nothing from it
    for start in range(0, len(order), batch_size):
        yield collate([sampler(int(i), rng) for i in order[start : start + batch_size]])


def stream_seed(seed: int) -> int:
    """The shuffle/sampling seed of a run's example stream, derived from the run seed (the same in every process)."""
    return int(np.random.SeedSequence([seed, 0]).generate_state(1, np.uint32)[0])


class Batches(Iterator[dict[str, np.ndarray]]):
    """Iterator of batches plus what the training loop needs to know about them.

    batch_size: global batch size; local_batch_size: examples per step from this process.
    num_items: items (records or groups) of one epoch, over all processes.
    steps_per_epoch: num_items // batch_size (batches run across epoch boundaries).
    get_state() / set_state(): grain iterator state (the number of global batches read, the same in every
    process), for resuming exactly where a run stopped, with the same or another number of processes.
    """

    def __init__(
        self,
        dataset: grain.IterDataset,
        sampler: Sampler,
        batch_size: int,
        local_batch_size: int,
        num_items: int,
    ):
        self.dataset = dataset
        self.sampler = sampler
        self.batch_size = batch_size
        self.local_batch_size = local_batch_size
        self.num_items = num_items
        self.steps_per_epoch = num_items // batch_size
        self._iterator = iter(dataset)

    def __next__(self) -> dict[str, np.ndarray]:
        return next(self._iterator)

    def get_state(self) -> dict[str, Any]:
        return self._iterator.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self._iterator.set_state(state)


def _check_stream(
    batch_size: int,
    num_devices: int | None,
    process_index: int,
    process_count: int,
    num_epochs: int | None,
    read_threads: int,
    prefetch: int,
    worker_count: int,
) -> None:
    """The stream settings' errors, raised before any data is read."""
    if num_devices is None:
        import jax

        num_devices = jax.device_count()
    check_divisible(batch_size, num_devices)
    if batch_size % process_count:
        raise ValueError(f"batch size {batch_size} is not divisible by the {process_count} processes")
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index must be in [0, {process_count}), got {process_index}")
    if num_epochs is not None and num_epochs < 1:
        raise ValueError(f"num_epochs must be >= 1 or None (endless), got {num_epochs}")
    if min(read_threads, prefetch, worker_count) < 0:
        raise ValueError(
            f"read_threads, prefetch and worker_count must be >= 0; got {read_threads}, {prefetch}, {worker_count}"
        )


def _collate_any(examples: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return (collate if "video" in examples[0] else stack_examples)(examples)


def make_batches(
    dataset: str | VideoDatasetBuilder | SplitSource,
    split: str = "train",
    sampler: str = "window",
    sampler_args: Mapping[str, Any] | None = None,
    *,
    batch_size: int,
    data_dir: str | os.PathLike | None = None,
    config: str | VideoBuilderConfig | None = None,
    seed: int = 0,
    num_epochs: int | None = None,
    num_devices: int | None = None,
    process_index: int = 0,
    process_count: int = 1,
    read_threads: int = 2,
    prefetch: int = 2,
    worker_count: int = 0,
) -> Batches:
    """Endless (num_epochs=None) iterator of batches of `dataset`'s `split` drawn by sampler `sampler`.

    dataset: a registered dataset name (opened in `data_dir` with `config`; it must be built),
        a prepared builder, or a SplitSource.
    sampler, sampler_args: see data_prep.samplers.make_sampler (e.g. 'window', {'seq_len': 16}).
    batch_size: global batch size B; must divide over `num_devices` (default: jax.device_count())
        and over `process_count`; checked here, before any data is read.
    Each batch: 'video' float32 (B/process_count, T, H, W, C) in [0, 1], 'index' (record indices),
    'frame_index', and the stacked labels (leading axis B/process_count); see the samplers.
    Deterministic given the seed; process p of P gets rows p·B/P .. (p+1)·B/P - 1 of each global batch
    (see the module docstring); reshuffled every epoch; the last incomplete global batch of a finite run
    is dropped.
    read_threads / prefetch: threads computing batches and batches buffered ahead (grain ReadOptions;
    0 threads: batches are computed on demand in the caller's thread); worker_count > 0 moves that work
    into worker processes (grain mp_prefetch, `prefetch` batches buffered per worker). Every setting
    gives the same batches.
    """
    _check_stream(
        batch_size, num_devices, process_index, process_count, num_epochs, read_threads, prefetch, worker_count
    )
    if isinstance(dataset, str):
        if data_dir is None:
            raise ValueError(f"make_batches({dataset!r}) needs data_dir (where the dataset is built)")
        dataset = open_dataset(dataset, data_dir, config)
    data = dataset if isinstance(dataset, SplitSource) else split_source(dataset, split)
    return sampler_batches(
        make_sampler(sampler, data, **dict(sampler_args or {})),
        batch_size=batch_size,
        seed=seed,
        num_epochs=num_epochs,
        num_devices=num_devices,
        process_index=process_index,
        process_count=process_count,
        read_threads=read_threads,
        prefetch=prefetch,
        worker_count=worker_count,
    )


def stack_examples(examples: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack examples of arrays (no video to convert) into a batch: {name: (B, ...)}."""
    return {key: np.stack([np.asarray(example[key]) for example in examples]) for key in examples[0]}


def sampler_batches(
    item_sampler: Sampler,
    *,
    batch_size: int,
    seed: int = 0,
    num_epochs: int | None = None,
    num_devices: int | None = None,
    process_index: int = 0,
    process_count: int = 1,
    read_threads: int = 2,
    prefetch: int = 2,
    worker_count: int = 0,
    batch_fn: Callable[[Sequence[Mapping[str, np.ndarray]]], dict[str, np.ndarray]] | None = None,
) -> Batches:
    """`make_batches` over any sampler (e.g. data_prep.samplers.ArrayWindowSampler of precomputed codes): the
    same shuffled, seeded, per-process stream of items; batch_fn collates (default: `collate` when the examples
    hold a video, else `stack_examples`)."""
    _check_stream(
        batch_size, num_devices, process_index, process_count, num_epochs, read_threads, prefetch, worker_count
    )
    local_batch_size = batch_size // process_count

    if batch_fn is None:
        batch_fn = _collate_any

    batched = (
        grain.MapDataset.source(np.arange(item_sampler.num_items, dtype=np.int64))
        .seed(stream_seed(seed))
        .shuffle()
        .repeat(num_epochs)
        .random_map(item_sampler)
        .batch(local_batch_size, drop_remainder=True, batch_fn=batch_fn)
    )
    whole_global_batches = len(batched) // process_count * process_count
    pipeline = batched[:whole_global_batches][process_index::process_count]
    iterable = pipeline.to_iter_dataset(grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=prefetch))
    if worker_count > 0:
        # grain reads absl flags in its workers; outside absl.app nothing has parsed them.
        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
        iterable = iterable.mp_prefetch(
            grain.MultiprocessingOptions(num_workers=worker_count, per_worker_buffer_size=max(1, prefetch))
        )
    return Batches(iterable, item_sampler, batch_size, local_batch_size, item_sampler.num_items)
