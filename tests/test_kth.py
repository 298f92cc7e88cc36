"""KTH builder on tiny synthetic .avi files and a synthetic 00sequences.txt."""

from __future__ import annotations

import pathlib
import shutil

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_prep.builders import get_builder
from data_prep.builders.kth import CLASSES, KthConfig, parse_sequences
from data_prep.errors import DataError, MissingManualFilesError

# name -> frame count; persons 2 and 15 are train, 22 test.
VIDEOS = {
    "person02_boxing_d1": 24,
    "person15_walking_d3": 30,
    "person15_boxing_d2": 22,  # present but not annotated: reported, not used
    "person22_boxing_d4": 20,
    "person22_walking_d2": 26,
}
SEQUENCES = """\
This database contains sequences of six classes of actions (synthetic copy).
Training:   person11, 12, 13

person02_boxing_d1\t\tframes\t1-5, 6-12, 15-24
person02_boxing_d2\t*missing*
person15_walking_d3    \tframes\t1-10,  12-20 ,21-30

person22_boxing_d4\t\tframes\t3-20
person22_walking_d2\t\tframes\t1-8, 9-26, 2-4
"""
# (name, subsequence) -> 1-based inclusive range
RANGES = {
    ("person02_boxing_d1", 0): (1, 5),
    ("person02_boxing_d1", 1): (6, 12),
    ("person02_boxing_d1", 2): (15, 24),
    ("person15_walking_d3", 0): (1, 10),
    ("person15_walking_d3", 1): (12, 20),
    ("person15_walking_d3", 2): (21, 30),
    ("person22_boxing_d4", 0): (3, 20),
    ("person22_walking_d2", 0): (1, 8),
    ("person22_walking_d2", 1): (9, 26),
    ("person22_walking_d2", 2): (2, 4),
}


def brightness(t: int) -> int:
    """Grey level of 0-based frame t of every synthetic video."""
    return 20 + 7 * t


def write_video(path: pathlib.Path, num_frames: int) -> None:
    frames = np.stack([np.full((120, 160), brightness(t), np.uint8) for t in range(num_frames)])
    # mpeg4 (DivX-like, as the real KTH files) is lossy: tests compare brightness approximately.
    iio.imwrite(path, frames, plugin="FFMPEG", fps=25, codec="mpeg4", macro_block_size=8, output_params=["-q:v", "2"])


def parse_name(name: str) -> tuple[int, str, int]:
    person, action, scenario = name.split("_")
    return int(person[len("person") :]), action, int(scenario[1:])


@pytest.fixture(scope="module")
def manual(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("kth_manual")
    for action in CLASSES:
        (root / action).mkdir()
    for name, num_frames in VIDEOS.items():
        write_video(root / parse_name(name)[1] / f"{name}_uncomp.avi", num_frames)
    (root / "00sequences.txt").write_text(SEQUENCES)
    return root


def copy_manual(manual: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(shutil.copytree(manual, tmp_path / "manual"))


def build(data_dir: pathlib.Path, manual_dir: pathlib.Path, config: str | KthConfig = "kth64"):
    builder = get_builder("kth", data_dir, config)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


def examples(builder, split: str) -> list[dict]:
    source = builder.as_data_source()[split]
    return [source[i] for i in range(len(source))]


def example_name(ex: dict) -> str:
    return f"person{int(ex['person']):02d}_{CLASSES[int(ex['action'])]}_d{int(ex['scenario']) + 1}"


@pytest.fixture(scope="module")
def built(tmp_path_factory, manual):
    builder = build(tmp_path_factory.mktemp("kth_data"), manual)
    return builder, {split: examples(builder, split) for split in ("train", "test")}


def test_parse_sequences(tmp_path):
    path = tmp_path / "00sequences.txt"
    path.write_text(SEQUENCES)
    entries = parse_sequences(path)
    assert sorted(entries) == sorted({name for name, _ in RANGES} | {"person02_boxing_d2"})
    assert entries["person15_walking_d3"].ranges == ((1, 10), (12, 20), (21, 30))
    assert entries["person02_boxing_d2"].ranges == ()
    entry = entries["person22_walking_d2"]
    assert (entry.person, entry.action, entry.scenario, entry.line) == (22, CLASSES.index("walking"), 1, 9)


def test_shapes_dtypes_and_labels(built):
    builder, splits = built
    features = builder.info.features
    assert features["video"].shape == (None, 64, 64, 1) and features["video"].np_dtype == np.uint8
    for key in ("action", "person", "scenario", "subsequence"):
        assert features[key].shape == () and features[key].np_dtype == np.int64
    for exs in splits.values():
        for ex in exs:
            name = example_name(ex)
            person, action, scenario = parse_name(name)
            assert ex["video"].dtype == np.uint8 and ex["video"].shape[1:] == (64, 64, 1)
            assert (int(ex["action"]), int(ex["person"]), int(ex["scenario"])) == (
                CLASSES.index(action),
                person,
                scenario - 1,
            )
    assert builder.info.metadata["label_classes"] == {"action": list(CLASSES), "scenario": ["d1", "d2", "d3", "d4"]}


def test_frame_ranges_counts_and_order(built):
    _, splits = built
    got = {}
    for ex in splits["train"] + splits["test"]:
        got[(example_name(ex), int(ex["subsequence"]))] = ex["video"]
    assert set(got) == set(RANGES)
    for key, (first, last) in RANGES.items():
        video = got[key]
        assert len(video) == last - first + 1, key
        expected = np.array([brightness(t - 1) for t in range(first, last + 1)])
        measured = video[:, 16:48, 16:48, 0].mean(axis=(1, 2))
        np.testing.assert_allclose(measured, expected, atol=3, err_msg=str(key))


def test_person_split(built):
    _, splits = built
    train_persons = {int(ex["person"]) for ex in splits["train"]}
    test_persons = {int(ex["person"]) for ex in splits["test"]}
    assert train_persons == {2, 15} and test_persons == {22}
    assert len(splits["train"]) == 6 and len(splits["test"]) == 4


def test_unannotated_and_missing_are_reported(built):
    builder, _ = built
    assert builder.info.metadata["annotation_report"] == {
        "videos_without_entry": ["person15_boxing_d2"],
        "entries_marked_missing": ["person02_boxing_d2"],
    }
    assert builder.info.metadata["bad_samples"]["skipped_total"] == 0


def test_kth128_config_shape(tmp_path):
    builder = get_builder("kth", tmp_path, "kth128")
    assert builder.info.features["video"].shape == (None, 128, 128, 1)
    assert get_builder("kth", tmp_path).builder_config.name == "kth64"


@pytest.mark.parametrize(
    "line, problem",
    [
        ("person03_boxing_d1\t\tframes\t1-5; 6-9", r"expected a frame range 'first-last', got '1-5; 6-9'"),
        ("person03_boxing_d1\t\t1-5, 6-9", r"expected 'personNN_<class>_dK  frames"),
        ("person03_boxing_d1\t\tframes\t", r"expected 'personNN_<class>_dK  frames"),
        ("person03_boxing_d1\t\tframes\t9-5", r"frame range 9-5 must satisfy 1 <= first <= last"),
        ("person03_boxing_d1\t\tframes\t0-5", r"frame range 0-5"),
        ("person26_boxing_d1\t\tframes\t1-5", r"person 26 outside 1..25"),
        ("person03_boxing_d5\t\tframes\t1-5", r"scenario d5 outside d1..d4"),
        ("person03_skipping_d1\t\tframes\t1-5", r"unknown action 'skipping'"),
        ("person02_boxing_d1\t\tframes\t1-5", r"person02_boxing_d1 already given on line 4"),
        ("Some free text after the entries", r"expected 'personNN_<class>_dK  frames"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, line, problem):
    path = tmp_path / "00sequences.txt"
    path.write_text(SEQUENCES + line + "\n")
    with pytest.raises(DataError, match=r"00sequences\.txt: line 10: .*" + problem):
        parse_sequences(path)


def test_missing_files_are_listed(tmp_path):
    manual = tmp_path / "manual"
    (manual / "boxing").mkdir(parents=True)
    pattern = r"(?s)Missing:.*00sequences\.txt.*handclapping.*walking.*How to obtain.*boxing\.zip"
    with pytest.raises(MissingManualFilesError, match=pattern) as info:
        build(tmp_path / "data", manual)
    assert "boxing" not in info.value.missing


def test_missing_annotated_video(tmp_path, manual):
    manual = copy_manual(manual, tmp_path)
    (manual / "walking" / "person15_walking_d3_uncomp.avi").unlink()
    with pytest.raises(
        MissingManualFilesError, match=r"walking/person15_walking_d3_uncomp\.avi \(00sequences\.txt line 6\)"
    ):
        build(tmp_path / "error", manual)
    builder = build(tmp_path / "skip", manual, KthConfig(name="skip64", on_bad_sample="skip"))
    assert builder.info.metadata["bad_samples"]["skipped_by_reason"] == {"missing_video": 1}
    assert {int(ex["person"]) for ex in examples(builder, "train")} == {2}


def test_unreadable_video_error_or_skip(tmp_path, manual):
    manual = copy_manual(manual, tmp_path)
    bad = manual / "boxing" / "person22_boxing_d4_uncomp.avi"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(DataError, match=r"person22_boxing_d4_uncomp\.avi: cannot decode"):
        build(tmp_path / "error", manual)
    builder = build(tmp_path / "skip", manual, KthConfig(name="skip64", on_bad_sample="skip"))
    assert builder.info.metadata["bad_samples"]["skipped_by_reason"] == {"unreadable_video": 1}
    test_names = {(example_name(ex), int(ex["subsequence"])) for ex in examples(builder, "test")}
    assert test_names == {("person22_walking_d2", k) for k in range(3)}


def test_range_beyond_video(tmp_path, manual):
    manual = copy_manual(manual, tmp_path)
    (manual / "00sequences.txt").write_text(SEQUENCES.replace("3-20", "3-25"))
    pattern = r"person22_boxing_d4_uncomp\.avi: subsequence 0 frames 3-25 .*line 8.* beyond the video's 20 frames"
    with pytest.raises(DataError, match=pattern):
        build(tmp_path / "data", manual)


def test_unexpected_avi_name(tmp_path, manual):
    manual = copy_manual(manual, tmp_path)
    shutil.copy(
        manual / "boxing" / "person02_boxing_d1_uncomp.avi", manual / "walking" / "person02_boxing_d1_uncomp.avi"
    )
    with pytest.raises(DataError, match=r"walking/person02_boxing_d1_uncomp\.avi: expected a file named"):
        build(tmp_path / "data", manual)
