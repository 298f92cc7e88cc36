"""Samplers on tiny in-memory clips whose pixels encode (record index, frame index)."""

from __future__ import annotations

import numpy as np
import pytest

from data_prep.errors import DataError
from data_prep.samplers import (
    ArrayWindowSampler,
    FourFrameSampler,
    PairSampler,
    SplitSource,
    WindowSampler,
    make_sampler,
)

SIZE = 6


def clip(index: int, length: int, channels: int = 1) -> np.ndarray:
    """uint8 (length, SIZE, SIZE, channels): pixel (0, 0) = frame number, (0, 1) = record index, row 1 = a ramp."""
    video = np.zeros((length, SIZE, SIZE, channels), np.uint8)
    video[:, 0, 0] = np.arange(length)[:, None]
    video[:, 0, 1] = index
    video[:, 1] = np.arange(SIZE)[:, None] * 10  # left-right asymmetric, so flips are visible
    return video


def clips_source(lengths, name="fake", channels=1) -> SplitSource:
    records = [{"video": clip(i, n, channels), "clip": i, "length": n} for i, n in enumerate(lengths)]
    return SplitSource(name, "train", records, location="/data/fake/1.0.0")


def sprites_source(characters=4, actions=3, frames=8) -> SplitSource:
    records = []
    for c in range(characters):
        for a in range(actions):
            video = clip(len(records), frames, channels=3)
            video[:, 0, 2] = [c, a, 0]
            records.append({"video": video, "character": c, "action": a, "body": c % 2})
    return SplitSource("sprites", "train", records, location="/data/sprites/1.0.0")


def rng(seed=0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_window_shape_content_and_random_start():
    data = clips_source([12, 9, 7])
    sampler = make_sampler("window", data, seq_len=5)
    assert isinstance(sampler, WindowSampler) and sampler.num_items == 3
    starts = set()
    for seed in range(40):
        example = sampler(1, rng(seed))
        assert example["video"].shape == (5, SIZE, SIZE, 1) and example["video"].dtype == np.uint8
        frames = example["frame_index"]
        np.testing.assert_array_equal(frames, np.arange(frames[0], frames[0] + 5))
        np.testing.assert_array_equal(example["video"][:, 0, 0, 0], frames)  # the frames really are those
        assert (example["video"][:, 0, 1, 0] == 1).all() and example["index"] == 1
        assert example["clip"] == 1 and example["length"] == 9
        starts.add(int(frames[0]))
    assert starts == set(range(0, 9 - 5 + 1))  # every start of the 9-frame clip is reachable


def test_window_of_exact_length_is_whole_clip():
    sampler = make_sampler("window", clips_source([7]), seq_len=7)
    example = sampler(0, rng())
    np.testing.assert_array_equal(example["frame_index"], np.arange(7))
    np.testing.assert_array_equal(example["video"], clip(0, 7))


def test_window_short_clip_error_names_split_index_and_lengths():
    sampler = make_sampler("window", clips_source([9, 9, 3]), seq_len=5)
    with pytest.raises(DataError, match=r"/data/fake/1\.0\.0 \(fake split 'train'\) \[index 2\]: clip has 3 frames.*5"):
        sampler(2, rng())


def test_window_flips_with_flip_prob_and_never_without():
    data = clips_source([10, 10], name="mug_fed")
    stage1 = make_sampler("window", data, seq_len=4, flip_prob=0.5)
    flips = []
    for seed in range(200):
        example = stage1(0, rng(seed))
        original = clip(0, 10)[example["frame_index"]]
        expected = original[:, :, ::-1] if example["flipped"] else original
        np.testing.assert_array_equal(example["video"], expected)
        flips.append(bool(example["flipped"]))
    assert 70 < sum(flips) < 130
    stage2 = make_sampler("window", data, seq_len=4)(0, rng())
    assert "flipped" not in stage2 and stage2["video"].shape == (4, SIZE, SIZE, 1)


def test_sprites_pairs_same_character_different_actions():
    data = sprites_source(characters=4, actions=3)
    sampler = make_sampler("pair", data, group_by="character", distinct_by="action", seq_len=16)
    assert isinstance(sampler, PairSampler) and sampler.num_items == 4
    seen_pairs = set()
    for seed in range(60):
        character = seed % 4
        example = sampler(character, rng(seed))
        assert example["video"].shape == (16, SIZE, SIZE, 3) and example["index"].shape == (2,)
        np.testing.assert_array_equal(example["character"], [character, character])
        assert example["action"][0] != example["action"][1]
        for half, record in enumerate(example["index"]):
            frames = example["video"][8 * half : 8 * (half + 1)]
            np.testing.assert_array_equal(frames, data[record]["video"])  # each half is a whole clip
            assert frames[0, 0, 2, 0] == character and frames[0, 0, 2, 1] == example["action"][half]
        np.testing.assert_array_equal(example["frame_index"], np.tile(np.arange(8), 2))
        assert example["body"].shape == (2,)
        seen_pairs.add(tuple(example["action"]))
    assert len(seen_pairs) == 6  # all ordered pairs of 3 actions occur


def test_pair_sampler_errors():
    with pytest.raises(DataError, match=r"sprites split 'train'.*seq_len=8"):
        make_sampler("pair", sprites_source(), group_by="character", distinct_by="action", seq_len=8)(0, rng())
    lonely = sprites_source(characters=2, actions=2)
    lonely.records = [r for r in lonely.records if not (r["character"] == 1 and r["action"] == 1)]
    with pytest.raises(DataError, match=r"1 character group\(s\) have fewer than 2 distinct 'action' values.*\[1\]"):
        make_sampler("pair", lonely, group_by="character", distinct_by="action", seq_len=16)
    with pytest.raises(DataError, match=r"needs a 'character' label"):
        make_sampler("pair", clips_source([8, 8]), group_by="character", distinct_by="clip")


def test_four_frames_first4_are_frames_0_to_3():
    data = clips_source([20, 20], channels=3)
    sampler = make_sampler("four_frames", data, max_step=20, frame_selection="first4")
    assert isinstance(sampler, FourFrameSampler)
    for seed in range(5):
        example = sampler(1, rng(seed))
        np.testing.assert_array_equal(example["video"], clip(1, 20, 3)[:4])
        np.testing.assert_array_equal(example["frame_index"], np.arange(4))


def test_four_frames_random_frames_within_max_step():
    data = clips_source([30])
    sampler = make_sampler("four_frames", data, max_step=10, frame_selection="random")
    spans, firsts = [], set()
    for seed in range(100):
        example = sampler(0, rng(seed))
        frames = example["frame_index"]
        assert example["video"].shape == (4, SIZE, SIZE, 1)  # grayscale keeps C=1
        np.testing.assert_array_equal(example["video"][:, 0, 0, 0], frames)
        assert len(set(frames.tolist())) == 4 and frames.max() - frames.min() < 10
        spans.append(frames.max() - frames.min())
        firsts.add(int(frames.min()))
    assert max(spans) >= 7 and max(firsts) > 15  # windows move along the clip, frames spread within them


def test_four_frames_short_clip_and_bad_arguments():
    with pytest.raises(DataError, match=r"\[index 0\]: clip has 12 frames but the max_step=20 window needs 20"):
        make_sampler("four_frames", clips_source([12]), max_step=20)(0, rng())
    with pytest.raises(ValueError, match="frame_selection"):
        make_sampler("four_frames", clips_source([12]), frame_selection="last4")
    with pytest.raises(ValueError, match="max_step must be >= 4"):
        make_sampler("four_frames", clips_source([12]), max_step=3)


def test_registry_errors():
    with pytest.raises(ValueError, match=r"unknown sampler 'windows'; known samplers: \[.*'window'"):
        make_sampler("windows", clips_source([5]))
    with pytest.raises(TypeError, match=r"sampler 'window' takes seq_len.*\['length'\]"):
        make_sampler("window", clips_source([5]), length=3)


def test_label_table_uses_label_records_and_reserved_names():
    records = [{"video": clip(i, 4), "clip": i} for i in range(5)]
    label_records = [{"video": b"skipped", "clip": i} for i in range(5)]

    class NoRandomAccess(list):
        def __getitem__(self, i):
            raise AssertionError("label table must not read decoded records")

    data = SplitSource("fake", "train", NoRandomAccess(records), label_records=label_records)
    np.testing.assert_array_equal(data.labels()["clip"], np.arange(5))
    assert set(data.labels()) == {"clip"}
    bad = SplitSource("fake", "test", [{"video": clip(0, 4), "index": 3}], location="/d")
    with pytest.raises(DataError, match=r"fake split 'test'\) \[index 0\]: label name 'index' clashes"):
        make_sampler("window", bad, seq_len=2)(0, rng())


def test_array_windows_are_the_video_windows_of_the_same_draws():
    lengths = [7, 9, 7, 12]
    source = clips_source(lengths)
    codes = [np.arange(n, dtype=np.float32)[:, None] * [1, -1] + 100 * i for i, n in enumerate(lengths)]
    last = [np.arange(n - 5 + 1) + 1000 * i for i, n in enumerate(lengths)]  # one entry per window start
    arrays = ArrayWindowSampler({"codes": codes}, 5, {"last": last})
    videos = WindowSampler(source, 5)
    for item in (0, 1, 3, 3, 2):
        for seed in range(4):
            by_video, by_array = videos(item, rng(seed)), arrays(item, rng(seed))
            np.testing.assert_array_equal(by_array["frame_index"], by_video["frame_index"])
            assert by_array["index"] == by_video["index"] == item
            start = by_video["frame_index"][0]
            np.testing.assert_array_equal(
                by_array["codes"][:, 0], by_video["video"][:, 0, 0, 0].astype(np.float32) + 100 * item
            )
            assert by_array["last"] == 1000 * item + start


def test_array_window_errors_name_the_arrays_clip_and_lengths():
    codes = [np.zeros((6, 2)), np.zeros((4, 2))]
    with pytest.raises(DataError, match=r"codes of x \[index 1\]: clip has 4 frames but the window needs seq_len=5"):
        ArrayWindowSampler({"poses": codes}, 5, where="codes of x")
    with pytest.raises(DataError, match=r"\[index 0\]: 'last' holds 3 entries for a clip of 2 window starts"):
        ArrayWindowSampler({"poses": codes[:1]}, 5, {"last": [np.zeros(3)]}, where="codes of x")
    with pytest.raises(DataError, match=r"different numbers of clips: \{'poses': 2, 'last': 1\}"):
        ArrayWindowSampler({"poses": codes}, 4, {"last": [np.zeros(3)]})
    with pytest.raises(ValueError, match=r"array names \['index'\] clash"):
        ArrayWindowSampler({"index": codes}, 4)
