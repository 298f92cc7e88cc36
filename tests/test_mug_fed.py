"""MUG-FED builder on a small synthetic npz pair (no licensed data needed)."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image
from sklearn.model_selection import train_test_split

from data_prep.builders import get_builder
from data_prep.builders.mug_fed import MugFedConfig, process_frames, split_sequences
from data_prep.errors import DataError, MissingManualFilesError

IMAGES = "MUG_0-255_OF_112x112_color.npz"
N = 12
ACTIONS = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 7, 8])
IDENTITIES = np.arange(N) // 2  # 6 persons, 2 sequences each
LENGTHS = 10 + (np.arange(N) * 7) % 11  # 10..20 frames
KEPT = np.array([i for i in range(N) if ACTIONS[i] not in (2, 5, 6)])
NEW_ACTION = {0: 0, 1: 1, 3: 3, 4: 4, 7: 2, 8: 5}


def frame_value(seq: int, t: int) -> int:
    """Constant grey level of frame t of sequence seq: distinct within a sequence."""
    return 5 + 12 * t + seq


def make_sequences(lengths=LENGTHS) -> list[np.ndarray]:
    return [
        np.stack([np.full((112, 112, 3), frame_value(i, t), np.uint8) for t in range(n)]) for i, n in enumerate(lengths)
    ]


def write_mug(directory: pathlib.Path, sequences=None, labels=None, images_name: str = IMAGES) -> pathlib.Path:
    directory.mkdir(parents=True, exist_ok=True)
    sequences = make_sequences() if sequences is None else sequences
    labels = np.stack([IDENTITIES, ACTIONS], axis=1) if labels is None else labels
    container = np.empty(len(sequences), dtype=object)
    for i, seq in enumerate(sequences):
        container[i] = seq
    np.savez(directory / images_name, container)
    np.savez(directory / "labels.npz", labels)
    return directory


def build(tmp: pathlib.Path, manual_dir: pathlib.Path, **config):
    config.setdefault("min_frames", 5)
    builder = get_builder("mug_fed", tmp / "data", MugFedConfig(name=config.pop("name", "t"), **config))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


def examples(builder, split: str) -> list[dict]:
    source = builder.as_data_source()[split]
    return [source[i] for i in range(len(source))]


@pytest.fixture(scope="module")
def manual(tmp_path_factory) -> pathlib.Path:
    return write_mug(tmp_path_factory.mktemp("mug_manual"))


@pytest.fixture(scope="module")
def by_identity(tmp_path_factory, manual):
    builder = build(tmp_path_factory.mktemp("mug_by_id"), manual, name="t_by_identity", seed=3)
    return builder, {split: examples(builder, split) for split in ("train", "test")}


def test_shapes_dtypes_and_labels(by_identity):
    builder, splits = by_identity
    features = builder.info.features
    assert features["video"].shape == (None, 64, 64, 3) and features["video"].np_dtype == np.uint8
    for key in ("identity", "action", "source_index"):
        assert features[key].shape == () and features[key].np_dtype == np.int64
    for split_examples in splits.values():
        for ex in split_examples:
            i = int(ex["source_index"])
            assert ex["video"].dtype == np.uint8
            assert ex["video"].shape == ((LENGTHS[i] + 1) // 2, 64, 64, 3)
            for key in ("identity", "action", "source_index"):
                assert np.asarray(ex[key]).dtype == np.int64
            assert 0 <= ex["action"] < 6
            assert ex["identity"] == IDENTITIES[i]


def test_filtering_and_remapping(by_identity):
    builder, splits = by_identity
    all_examples = splits["train"] + splits["test"]
    assert sorted(int(ex["source_index"]) for ex in all_examples) == KEPT.tolist()
    for ex in all_examples:
        assert ex["action"] == NEW_ACTION[int(ACTIONS[int(ex["source_index"])])]
    assert builder.info.metadata["label_classes"]["action"] == [f"action_{k}" for k in range(6)]
    assert builder.info.metadata["bad_samples"]["skipped_total"] == 0


def test_every_other_frame_in_order(by_identity):
    _, splits = by_identity
    source = make_sequences()
    for ex in splits["train"] + splits["test"]:
        i = int(ex["source_index"])
        video = ex["video"]
        np.testing.assert_array_equal(video, process_frames(source[i][::2], 64))
        for k in range(len(video)):
            assert video[k, 32, 32, 0] == frame_value(i, 2 * k)


def test_black_border_and_face_in_middle_70_percent(by_identity):
    _, splits = by_identity
    ex = splits["train"][0]
    video = ex["video"].astype(int)
    values = np.array([frame_value(int(ex["source_index"]), 2 * k) for k in range(len(video))])[:, None, None, None]
    # 24 px of 160 -> 9.6 px of 64: 9 black pixels, one 40% face pixel, then 44 face pixels (~70% of 64).
    for profile in (video, video.transpose(0, 2, 1, 3)):
        assert np.all(profile[:, :9] == 0) and np.all(profile[:, 55:] == 0)
        assert np.all(np.abs(profile[:, 9:55:45, 10:54] - 0.4 * values) <= 1)
        assert np.all(profile[:, 10:54, 10:54] == values)


def test_processing_matches_pasting_into_black_160_canvas():
    face = np.random.default_rng(0).integers(0, 256, (2, 112, 112, 3), dtype=np.uint8)
    for size in (64, 32):
        expected = []
        for frame in face:
            canvas = Image.new("RGB", (160, 160))
            canvas.paste(Image.fromarray(frame), (24, 24))
            expected.append(np.asarray(canvas.resize((size, size), Image.BILINEAR)))
        np.testing.assert_array_equal(process_frames(face, size), np.stack(expected))


def test_by_identity_split_is_disjoint_and_seeded(by_identity):
    builder, splits = by_identity
    persons = {split: {int(ex["identity"]) for ex in exs} for split, exs in splits.items()}
    assert persons["train"].isdisjoint(persons["test"])
    assert persons["train"] | persons["test"] == set(IDENTITIES[KEPT].tolist())
    assert len(persons["test"]) == 2  # ceil(0.25 * 6)
    assert builder.info.metadata["split_identities"] == {k: sorted(v) for k, v in persons.items()}


def test_original_split_equals_sklearn(tmp_path, manual):
    builder = build(tmp_path, manual, name="t_original", split_method="original", seed=7)
    train, test = train_test_split(np.arange(len(KEPT)), test_size=0.25, random_state=7)
    for split, positions in (("train", train), ("test", test)):
        got = sorted(int(ex["source_index"]) for ex in examples(builder, split))
        assert got == sorted(KEPT[positions].tolist())


def test_split_deterministic_by_seed():
    identities = np.repeat(np.arange(40), 3)
    for method in ("by_identity", "original"):
        first = split_sequences(identities, method, 1, "labels.npz")
        again = split_sequences(identities, method, 1, "labels.npz")
        other = split_sequences(identities, method, 2, "labels.npz")
        np.testing.assert_array_equal(first[1], again[1])
        assert not np.array_equal(first[1], other[1])
        assert sorted(np.concatenate(first).tolist()) == list(range(len(identities)))


def test_missing_files_are_listed(tmp_path):
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "readme.txt").write_text("not the data")
    with pytest.raises(MissingManualFilesError, match=r"(?s)MUG_0-255_OF_112x112_color\.npz.*labels\.npz.*licen"):
        build(tmp_path, tmp_path / "manual")


def test_wrong_dtype_names_file_and_index(tmp_path):
    sequences = make_sequences()
    sequences[4] = sequences[4].astype(np.float32)
    manual = write_mug(tmp_path / "manual", sequences=sequences)
    with pytest.raises(DataError, match=r"MUG_0-255_OF_112x112_color\.npz \[index 4\].*dtype float32"):
        build(tmp_path, manual)


def test_wrong_shape_names_file_and_index(tmp_path):
    sequences = make_sequences()
    sequences[3] = sequences[3][:, :100]
    manual = write_mug(tmp_path / "manual", sequences=sequences)
    with pytest.raises(DataError, match=r"color\.npz \[index 3\].*shape \(\d+, 100, 112, 3\)"):
        build(tmp_path, manual)


def test_images_must_be_a_list_of_sequences(tmp_path):
    manual = write_mug(tmp_path / "manual")
    np.savez(manual / IMAGES, np.zeros((N, 4, 112, 112), np.uint8))
    with pytest.raises(
        DataError, match=r"color\.npz: 'arr_0' must be a 1-D object array .* got uint8 \(12, 4, 112, 112\)"
    ):
        build(tmp_path, manual)


def test_unreadable_npz_and_missing_key(tmp_path):
    manual = write_mug(tmp_path / "manual")
    (manual / "labels.npz").write_bytes(b"not a zip file")
    with pytest.raises(DataError, match=r"labels\.npz: cannot read 'arr_0'"):
        build(tmp_path / "a", manual)
    np.savez(manual / "labels.npz", labels=np.stack([IDENTITIES, ACTIONS], axis=1))
    with pytest.raises(DataError, match=r"labels\.npz: expected key 'arr_0' .*found keys \['labels'\]"):
        build(tmp_path / "b", manual)


def test_length_mismatch(tmp_path):
    labels = np.stack([IDENTITIES, ACTIONS], axis=1)[:-1]
    manual = write_mug(tmp_path / "manual", labels=labels)
    with pytest.raises(DataError, match=r"color\.npz: 12 sequences but .*labels\.npz has 11 label rows"):
        build(tmp_path, manual)


@pytest.mark.parametrize(
    "labels, pattern",
    [
        (np.stack([IDENTITIES, ACTIONS, ACTIONS], axis=1), r"labels\.npz: 'arr_0' must be an integer array \[N, 2\]"),
        (np.stack([IDENTITIES, ACTIONS], axis=1).astype(np.float64), r"labels\.npz: .*integer array"),
        (np.stack([IDENTITIES, np.where(ACTIONS == 4, 9, ACTIONS)], axis=1), r"labels\.npz \[index 4\]: action code"),
    ],
)
def test_bad_labels(tmp_path, labels, pattern):
    manual = write_mug(tmp_path / "manual", labels=labels)
    with pytest.raises(DataError, match=pattern):
        build(tmp_path, manual)


def test_short_sequence_error_or_skip(tmp_path):
    lengths = LENGTHS.copy()
    lengths[7] = 8  # 4 frames after [::2] < min_frames=5; action 7 is kept
    manual = write_mug(tmp_path / "manual", sequences=make_sequences(lengths))
    with pytest.raises(DataError, match=r"color\.npz \[index 7\]: sequence has 8 frames, 4 after"):
        build(tmp_path / "error", manual)
    builder = build(tmp_path / "skip", manual, on_bad_sample="skip")
    summary = builder.info.metadata["bad_samples"]
    assert summary["skipped_total"] == 1
    assert summary["skipped_by_reason"] == {"too_short": 1}
    kept = sorted(int(ex["source_index"]) for split in ("train", "test") for ex in examples(builder, split))
    assert kept == [i for i in KEPT.tolist() if i != 7]


def test_config_validation():
    with pytest.raises(ValueError, match="split_method"):
        MugFedConfig(name="x", split_method="random")
