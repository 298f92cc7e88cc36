"""Input pipeline end to end: tiny TFDS builders (two fakes defined here, and Moving MNIST) -> batches."""

from __future__ import annotations

import numpy as np
import pytest

from data_prep import input_pipeline
from data_prep.builders import get_builder
from data_prep.builders.base import VideoBuilderConfig, VideoDatasetBuilder, int_label
from data_prep.builders.moving_mnist import MovingMnistConfig
from data_prep.errors import DataError
from data_prep.input_pipeline import DatasetNotBuiltError, ensure_built, make_batches, open_dataset, split_source

SIZE = 8
CLIP_LENGTHS = [6, 9, 7, 12, 6, 8, 10, 6, 11, 7, 6, 9]  # FakeClips train split: 12 clips, shortest 6


def _frames(record: int, length: int, channels: int) -> np.ndarray:
    """Pixel (0, 0) = frame number, (0, 1) = record number, the rest a bright ramp."""
    video = np.full((length, SIZE, SIZE, channels), 255, np.uint8)
    video[:, :, :, :] = np.linspace(0, 255, SIZE, dtype=np.uint8)[None, None, :, None]
    video[:, 0, 0] = np.arange(length)[:, None]
    video[:, 0, 1] = record
    return video


class FakeSprites(VideoDatasetBuilder, skip_registration=True):
    """Sprites-like: 6 characters x 3 actions, 8-frame RGB clips; pixel (0, 2) holds (character, action)."""

    name = "sprites"
    BUILDER_CONFIGS = [VideoBuilderConfig(name="tiny")]

    def _video_shape(self):
        return (8, SIZE, SIZE, 3)

    def _label_features(self):
        return {"character": int_label(), "action": int_label(), "hair": int_label()}

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(range(6)), "test": self._generate_examples(range(6, 8))}

    def _generate_examples(self, characters):
        for character in characters:
            for action in range(3):
                key = character * 3 + action
                video = _frames(key, 8, 3)
                video[:, 0, 2] = [character, action, 0]
                yield key, {"video": video, "character": character, "action": action, "hair": character % 2}


class FakeClips(VideoDatasetBuilder, skip_registration=True):
    """Variable-length grayscale clips (lengths CLIP_LENGTHS); label `clip` = record number."""

    name = "fake_clips"
    BUILDER_CONFIGS = [VideoBuilderConfig(name="tiny")]

    def _video_shape(self):
        return (None, SIZE, SIZE, 1)

    def _label_features(self):
        return {"clip": int_label(), "length": int_label()}

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(CLIP_LENGTHS), "test": self._generate_examples([5, 7])}

    def _generate_examples(self, lengths):
        for i, length in enumerate(lengths):
            yield i, {"video": _frames(i, length, 1), "clip": i, "length": length}


def _build(builder: VideoDatasetBuilder) -> VideoDatasetBuilder:
    builder.download_and_prepare()
    return builder


@pytest.fixture(scope="session")
def sprites(tmp_path_factory):
    return _build(FakeSprites(data_dir=tmp_path_factory.mktemp("sprites"), config="tiny"))


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    return _build(FakeClips(data_dir=tmp_path_factory.mktemp("clips"), config="tiny"))


TINY_MNIST = MovingMnistConfig(name="tiny20", seq_len=20, num_train=16, num_test=4, digits="bundled")


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("mnist")
    ensure_built("moving_mnist", data_dir, TINY_MNIST)
    return data_dir


def take(batches, n):
    return [next(batches) for _ in range(n)]


def check_video(batch, shape):
    video = batch["video"]
    assert video.dtype == np.float32 and video.shape == shape
    assert video.min() >= 0.0 and video.max() <= 1.0 and video.max() == 1.0


def test_window_batches_shapes_labels_and_content(clips):
    batches = make_batches(clips, "train", "window", {"seq_len": 6}, batch_size=4, num_devices=1)
    assert batches.local_batch_size == 4 and batches.num_items == 12 and batches.steps_per_epoch == 3
    batch = next(batches)
    check_video(batch, (4, 6, SIZE, SIZE, 1))
    assert batch["index"].shape == (4,) and batch["frame_index"].shape == (4, 6)
    stored = clips.as_data_source(split="train")  # 'index' is the record's position in the stored split
    np.testing.assert_array_equal(batch["clip"], [stored[int(i)]["clip"] for i in batch["index"]])
    np.testing.assert_array_equal(batch["length"], np.asarray(CLIP_LENGTHS)[batch["clip"]])
    pixels = np.rint(batch["video"][:, :, 0, :2, 0] * 255).astype(int)
    np.testing.assert_array_equal(pixels[..., 0], batch["frame_index"])
    np.testing.assert_array_equal(pixels[..., 1], np.repeat(batch["clip"][:, None], 6, axis=1))


def _character_pairs(sprites):
    pairs = {"group_by": "character", "distinct_by": "action", "seq_len": 16}
    return make_batches(sprites, "train", "pair", pairs, batch_size=3, num_devices=1, seed=4)


def test_sprites_stage1_pairs_iterate_characters(sprites):
    batches = _character_pairs(sprites)
    assert batches.num_items == 6  # characters, not records
    labels = batches.sampler.data.labels()
    for batch in take(batches, 4):
        check_video(batch, (3, 16, SIZE, SIZE, 3))
        assert batch["index"].shape == (3, 2) and batch["character"].shape == (3, 2)
        np.testing.assert_array_equal(batch["character"][:, 0], batch["character"][:, 1])
        assert (batch["action"][:, 0] != batch["action"][:, 1]).all()
        np.testing.assert_array_equal(labels["character"][batch["index"]], batch["character"])
        np.testing.assert_array_equal(labels["action"][batch["index"]], batch["action"])
        codes = np.rint(batch["video"][:, [0, 8], 0, 2, :2] * 255).astype(int)  # (B, half, [character, action])
        np.testing.assert_array_equal(codes[..., 0], batch["character"])
        np.testing.assert_array_equal(codes[..., 1], batch["action"])
    epoch = np.concatenate([b["character"][:, 0] for b in take(_character_pairs(sprites), 2)])
    assert sorted(epoch.tolist()) == list(range(6))  # one epoch visits every character once


def test_sprites_stage2_windows(sprites):
    batch = next(make_batches(sprites, "test", "window", {"seq_len": 8}, batch_size=2, num_devices=1))
    check_video(batch, (2, 8, SIZE, SIZE, 3))
    assert batch["character"].shape == (2,) and set(batch["character"].tolist()) <= {6, 7}


def test_drnet_stage1_first4_on_moving_mnist(mnist_dir):
    batches = make_batches(
        "moving_mnist",
        "train",
        "four_frames",
        {"max_step": 20},
        batch_size=4,
        data_dir=mnist_dir,
        config=TINY_MNIST,
        num_devices=1,
    )
    batch = next(batches)
    check_video(batch, (4, 4, 64, 64, 3))
    source = open_dataset("moving_mnist", mnist_dir, TINY_MNIST).as_data_source(split="train")
    for row, record in enumerate(batch["index"]):
        np.testing.assert_array_equal(batch["video"][row], source[int(record)]["video"][:4] / np.float32(255))
        np.testing.assert_array_equal(batch["digits"][row], source[int(record)]["digits"])
    assert batch["digits"].shape == (4, 2) and batch["velocities"].shape == (4, 2, 2)


def test_drnet_stage1_random_and_stage2_on_variable_length(clips):
    batch = next(
        make_batches(
            clips, "train", "four_frames", {"max_step": 6, "frame_selection": "random"}, batch_size=6, num_devices=1
        )
    )
    check_video(batch, (6, 4, SIZE, SIZE, 1))
    frames = batch["frame_index"]
    assert (frames.max(1) - frames.min(1) < 6).all() and all(len(set(f)) == 4 for f in frames.tolist())
    batch = next(make_batches(clips, "train", "window", {"seq_len": 6}, batch_size=6, num_devices=1))
    check_video(batch, (6, 6, SIZE, SIZE, 1))


def test_each_epoch_is_a_new_permutation(clips):
    batches = make_batches(clips, "train", "window", {"seq_len": 6}, batch_size=4, num_devices=1, seed=1)
    epochs = [np.concatenate([b["index"] for b in take(batches, 3)]) for _ in range(3)]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(12))
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])


def test_finite_epochs_drop_the_remainder(clips):
    batches = make_batches(clips, "train", "window", {"seq_len": 6}, batch_size=5, num_devices=1, num_epochs=2)
    assert [len(b["index"]) for b in batches] == [5] * 4  # 24 examples -> 4 full batches, 4 dropped


def test_same_seed_same_batches_other_seed_other_batches(clips):
    def run(seed, **kwargs):
        return take(
            make_batches(clips, "train", "window", {"seq_len": 6}, batch_size=4, num_devices=1, seed=seed, **kwargs), 6
        )

    first, again, other = run(3), run(3, read_threads=1, prefetch=1), run(4)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a["video"], b["video"])
        np.testing.assert_array_equal(a["index"], b["index"])
    assert any(not np.array_equal(a["index"], b["index"]) for a, b in zip(first, other, strict=True))
    # Windows are redrawn every epoch: the same clip gets other frames in later epochs.
    starts = {}
    for batch in first:
        for record, frames in zip(batch["index"], batch["frame_index"], strict=True):
            starts.setdefault(int(record), set()).add(int(frames[0]))
    assert any(len(s) > 1 for s in starts.values())


def test_worker_processes_give_the_same_batches(clips):
    source = split_source(clips, "train")
    args = dict(sampler="window", sampler_args={"seq_len": 6}, batch_size=4, num_devices=1, seed=2)
    inline = take(make_batches(source, **args), 3)
    workers = take(make_batches(source, worker_count=1, **args), 3)
    for a, b in zip(inline, workers, strict=True):
        np.testing.assert_array_equal(a["video"], b["video"])
        np.testing.assert_array_equal(a["index"], b["index"])


def test_processes_read_disjoint_rows_of_the_same_global_batches(clips):
    args = dict(sampler="window", sampler_args={"seq_len": 6}, batch_size=6, seed=3)
    single = take(make_batches(clips, "train", num_devices=1, **args), 4)
    per_process = [
        take(make_batches(clips, "train", num_devices=3, process_index=p, process_count=3, **args), 4) for p in range(3)
    ]
    for step, whole in enumerate(single):
        rows = [per_process[p][step] for p in range(3)]
        assert all(len(r["index"]) == 2 for r in rows)
        np.testing.assert_array_equal(np.concatenate([r["index"] for r in rows]), whole["index"])
        np.testing.assert_array_equal(np.concatenate([r["video"] for r in rows]), whole["video"])
    for epoch in (slice(0, 2), slice(2, 4)):  # 12 records, 6 per global batch: each epoch reads each once
        read = np.concatenate([b["index"] for p in range(3) for b in per_process[p][epoch]])
        assert sorted(read.tolist()) == list(range(12))
    with pytest.raises(ValueError, match=r"process_index must be in \[0, 5\), got 5"):
        make_batches(clips, "train", num_devices=1, process_index=5, process_count=5, batch_size=10)


def test_batch_not_divisible_by_devices_fails_before_reading(tmp_path):
    with pytest.raises(ValueError, match=r"batch size 6 is not divisible by the 4 devices.*e\.g\. 4 or 8"):
        make_batches("moving_mnist", "train", "window", {"seq_len": 4}, batch_size=6, data_dir=tmp_path, num_devices=4)
    with pytest.raises(ValueError, match=r"batch size 6 is not divisible by the 4 processes"):
        make_batches("moving_mnist", batch_size=6, data_dir=tmp_path, num_devices=2, process_count=4)


def test_short_clip_error_surfaces_from_the_pipeline(clips):
    batches = make_batches(clips, "train", "window", {"seq_len": 8}, batch_size=12, num_devices=1)
    with pytest.raises(
        DataError,
        match=r"fake_clips split 'train'\) \[index \d+\]: clip has [67] frames but the window of seq_len=8 needs 8",
    ):
        next(batches)


def test_open_dataset_not_built_names_the_build_command(tmp_path, mnist_dir):
    with pytest.raises(
        DatasetNotBuiltError,
        match=(
            rf"dataset 'moving_mnist' \(config 'drnet'\) is not built in {tmp_path}; build it with: "
            rf"python -m data_prep.build moving_mnist --config drnet --data_dir {tmp_path}$"
        ),
    ):
        open_dataset("moving_mnist", tmp_path, "drnet")
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        make_batches("mnist", batch_size=2, data_dir=tmp_path, num_devices=1)
    with pytest.raises(ValueError, match="has no split 'validation'"):
        split_source(get_builder("moving_mnist", mnist_dir, TINY_MNIST), "validation")


def test_ensure_built_manual_dataset_needs_its_flag(tmp_path, monkeypatch):
    monkeypatch.setattr(
        input_pipeline, "get_builder", lambda name, data_dir, config: FakeSprites(data_dir=data_dir, config=config)
    )
    with pytest.raises(
        DatasetNotBuiltError,
        match=(
            r"dataset 'sprites' \(config 'tiny'\) is not built in .*; build it with: python -m data_prep.build "
            r"sprites --config tiny --data_dir .* --lpc_dir <directory with the LPC layer sheets>"
        ),
    ):
        ensure_built("sprites", tmp_path, "tiny")
    assert "--manual_dir" in input_pipeline.build_command("kth", "default", tmp_path)
    assert "--manual_dir" in input_pipeline.build_command("mug_fed", "default", tmp_path)
    builder = ensure_built("sprites", tmp_path, "tiny", manual_dir=tmp_path)  # with the files it builds
    assert builder.is_prepared() and open_dataset("sprites", tmp_path, "tiny") is not None


def test_label_table_reads_no_video(sprites):
    source = split_source(sprites, "train")
    assert isinstance(source._label_records[0]["video"], bytes)  # SkipDecoding: raw bytes, no zlib/numpy decode
    labels = source.labels()
    np.testing.assert_array_equal(np.sort(labels["character"]), np.repeat(np.arange(6), 3))
    assert set(labels) == {"character", "action", "hair"}


def test_collate_rejects_mixed_shapes():
    a = {"video": np.zeros((2, 4, 4, 1), np.uint8), "index": np.int64(0)}
    b = {"video": np.zeros((3, 4, 4, 1), np.uint8), "index": np.int64(1)}
    with pytest.raises(ValueError, match=r"record 1 has keys .* video \(3, 4, 4, 1\)"):
        input_pipeline.collate([a, b])
